"""Dynamic int8 quantization of rnnkit models for CPU inference.

``torch.ao.quantization.quantize_dynamic`` matches module types exactly, so on its own it leaves
``rnnkit.LSTM``/``GRU`` in float and says nothing. :func:`quantize_dynamic` here converts rnnkit's
plain LSTM and GRU layers (no option that changes the recurrence) to torch's dynamically quantized
LSTM/GRU, and ``nn.Linear`` as torch does, and raises for any rnnkit layer or cell with an option
that changes the recurrence (layer norm, zoneout, recurrent dropout, peepholes): torch has no
quantized kernel for those. Plain RNN layers and cells stay float, as torch.nn's do. DropConnect and the
forget-gate bias do not change inference and convert. The converted layers are torch's: they take
no ``lengths=`` (pass a ``PackedSequence``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic as _torch_quantize_dynamic

from .backends.dispatch import weight_drop_only
from .layers import GRU, LSTM
from .variant_module import VariantModule


def _check_quantizable(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if not isinstance(module, VariantModule):
            continue
        variants = module.variants
        if variants.changes_recurrence and not weight_drop_only(variants):
            raise ValueError(
                f"quantize_dynamic: {name or 'the model'} ({type(module).__name__} with "
                f"{variants.describe()}) has no quantized kernel in torch; only plain LSTM and GRU "
                "layers (and nn.Linear) convert"
            )


def as_torch_layer(layer: LSTM | GRU) -> nn.LSTM | nn.GRU:
    """A torch.nn LSTM/GRU with ``layer``'s configuration and weights (a plain rnnkit layer's
    parameters are exactly torch's)."""
    base = nn.LSTM if isinstance(layer, LSTM) else nn.GRU
    kw = {"proj_size": layer.proj_size} if base is nn.LSTM else {}
    twin = base(
        layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
        batch_first=layer.batch_first, dropout=layer.dropout, bidirectional=layer.bidirectional,
        device=layer.weight_ih_l0.device, dtype=layer.weight_ih_l0.dtype, **kw,
    )  # fmt: skip
    twin.load_state_dict(layer.state_dict())
    return twin.train(layer.training)


def _swap_layers(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, (LSTM, GRU)):
            setattr(module, name, as_torch_layer(child))
        else:
            _swap_layers(child)


def quantize_dynamic(model: nn.Module, dtype: torch.dtype = torch.qint8) -> nn.Module:
    """A copy of ``model`` with its ``nn.Linear`` and plain ``rnnkit.LSTM``/``GRU`` layers (and
    torch.nn's) dynamically quantized to ``dtype`` (``torch.qint8`` or ``torch.float16``); raises
    ``ValueError`` naming the first layer whose options torch's quantized kernels cannot run."""
    _check_quantizable(model)
    holder = nn.Sequential(copy.deepcopy(model))  # torch swaps children, never the root itself
    _swap_layers(holder)
    return _torch_quantize_dynamic(holder, {nn.Linear, nn.LSTM, nn.GRU}, dtype=dtype)[0]
