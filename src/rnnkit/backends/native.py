"""The native backend: torch.nn's own fused kernels (oneDNN on CPU, cuDNN on CUDA) run a layer whose
options leave the recurrence as torch's; ``lengths`` become a packed sequence, and DropConnect runs
on the dropped matrices for the call (AWD-LSTM's WeightDrop, without patching the module).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..regularization import drop_connect


def forward(
    layer: nn.RNNBase,
    x: Tensor,
    state: tuple[Tensor, ...],
    lengths: Tensor | None,
    weight_drop: float = 0.0,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``torch.nn.RNNBase.forward`` of ``layer`` on time-major ``x (T, N, C)``.

    ``state`` is the layer's state as a tuple (``(h0,)`` or ``(h0, c0)``, torch's layout), ``lengths
    (N,)`` any order; ``weight_drop`` > 0 runs on DropConnected ``W_hh``. Returns ``(outputs (T, N,
    D*R), final state)`` with zeros at padded steps.
    """
    hx = state if len(state) > 1 else state[0]
    batch_first, layer.batch_first = layer.batch_first, False  # x is time-major here
    if weight_drop and hasattr(layer, "_update_flat_weights"):
        # torch's forward rebuilds its weight list when the parameters changed since the last
        # call (e.g. under torch.func.functional_call); bring it up to date first so the dropped
        # list handed over below is the one it runs with
        layer._update_flat_weights()
    flat = layer._flat_weights
    if weight_drop:
        # torch's forward reads this list of tensors; hand it the DropConnected W_hh for this call
        layer._flat_weights = [
            drop_connect(getattr(layer, n), weight_drop)
            if n.startswith("weight_hh")
            else getattr(layer, n)
            for n in layer._flat_weights_names
        ]
    run = _torch_forward(layer)
    try:
        if lengths is None:
            out, hn = run(layer, x, hx)
        else:
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            out, hn = run(layer, packed, hx)
            out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    finally:
        layer.batch_first = batch_first
        layer._flat_weights = flat
    return out, (tuple(hn) if isinstance(hn, tuple) else (hn,))


def _torch_forward(layer: nn.RNNBase):
    """The ``forward`` of the torch.nn class that ``layer`` derives from (``nn.LSTM.forward`` ...)."""
    for cls in (nn.LSTM, nn.GRU, nn.RNN):
        if isinstance(layer, cls):
            return cls.forward
    raise TypeError(f"expected a torch.nn LSTM, GRU or RNN, got {type(layer).__name__}")
