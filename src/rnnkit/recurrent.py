"""A sequence layer and a step-wise cell for any registered cell (:mod:`rnnkit.registry`), for the
cells that have no torch.nn twin: ``Recurrent("name", input_size, hidden_size, ...)`` is to a
registered cell what :class:`rnnkit.LSTM` is to the LSTM, with the same contract (``(T, N, C)`` or
``batch_first``, ``lengths=``, bidirectional, multi-layer, dropout between layers, state in and
out in torch.nn's layout, the variant options the cell accepts) and the same parameter names
(``weight_ih_l{k}`` ``(G*H, C)``, ``weight_hh_l{k}`` in the shape of the cell's kind of recurrent
weight (:meth:`rnnkit.registry.CellSpec.weight_hh_shape`: ``(G*H, H)`` dense, ``(G*H,)``
elementwise, ``(K, G*H/K, H/K)`` by heads, or none), ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(G*H,)``
(no ``bias_hh`` without ``weight_hh``), ``_reverse`` for the second direction). It runs on the
backends the spec lists (the reference loop at least); :class:`RecurrentCell` steps the same
math. :mod:`rnnkit.cell_layers` names one class per cell that has no torch.nn twin
(``rnnkit.MinGRU`` is ``Recurrent("mingru", ...)``).

Example::

    >>> layer = Recurrent("gru", 10, 20, num_layers=2, layer_norm=True)   # any registered name
    >>> out, h = layer(torch.randn(5, 3, 10), lengths=torch.tensor([5, 2, 4]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .cells import _RecurrentCell
from .layers import _RecurrentLayer
from .options import Variants
from .registry import CellSpec, get_cell


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _uniform_(params: list[nn.Parameter], hidden: int) -> None:
    stdv = 1.0 / math.sqrt(hidden) if hidden > 0 else 0.0
    for w in params:
        nn.init.uniform_(w, -stdv, stdv)


def _weight_shapes(
    spec: CellSpec, variants: Variants, input_size: int, hidden: int, bias: bool
) -> dict[str, tuple[int, ...]]:
    """``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` of one layer and direction, as the
    cell's spec shapes them (no ``weight_hh``/``bias_hh`` for a cell without a recurrent weight)."""
    g = spec.num_gates * hidden
    w_hh = spec.weight_hh_shape(hidden, variants)
    shapes = {"weight_ih": (g, input_size)}
    if w_hh is not None:
        shapes["weight_hh"] = w_hh
    if bias:
        shapes["bias_ih"] = (g,)
        if w_hh is not None:
            shapes["bias_hh"] = (g,)
    return shapes


class Recurrent(_RecurrentLayer, nn.Module):
    """Multi-layer sequence layer of registered cell ``cell`` (its name or spec).

    Shapes: input ``(T, N, C)`` (``(N, T, C)`` with ``batch_first``); each state ``(L*D, N, H)``,
    passed and returned as a tensor for a one-state cell, else a tuple in the order of the
    spec's ``states``. Options: the keyword arguments of :meth:`rnnkit.options.Variants.build`
    that the cell accepts; ``backend`` as for :class:`rnnkit.LSTM` (no ``"native"``)."""

    def __init__(
        self,
        cell: str | CellSpec,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        backend: str = "auto",
        **options: Any,
    ) -> None:
        super().__init__()
        spec = get_cell(cell)
        _check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        variants = Variants.build(spec, **options)
        self.mode = spec.title
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout, self.proj_size = float(dropout), 0
        factory = {"device": device, "dtype": dtype}
        self._flat_weights_names: list[str] = []
        for k in range(num_layers):
            layer_in = input_size if k == 0 else hidden_size * (2 if bidirectional else 1)
            for sfx in self._suffixes():
                shapes = _weight_shapes(spec, variants, layer_in, hidden_size, bias)
                for name, shape in shapes.items():
                    self.register_parameter(f"{name}_l{k}{sfx}",
                                            nn.Parameter(torch.empty(shape, **factory)))  # fmt: skip
                    self._flat_weights_names.append(f"{name}_l{k}{sfx}")
        _uniform_([getattr(self, n) for n in self._flat_weights_names], hidden_size)
        self._setup_variants(spec, variants, backend)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}", f"{self.hidden_size}"]
        if type(self) is Recurrent:  # a named subclass (rnnkit.MinGRU) says its cell itself
            parts.insert(0, f"{self.spec.name!r}")
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        parts.append(self.variants.describe())
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(filter(None, parts))


class RecurrentCell(_RecurrentCell, nn.Module):
    """One step of registered cell ``cell``: ``(N, C), state -> state`` (a tensor for a one-state
    cell, else a tuple in the spec's order), parameters ``weight_ih (G*H, C)``, ``weight_hh``
    (shaped as :class:`Recurrent`'s; none for a cell without one), ``bias_ih``/``bias_hh
    (G*H,)``; it loads layer ``k`` of :class:`Recurrent` with :meth:`load_from_layer`."""

    def __init__(
        self,
        cell: str | CellSpec,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        spec = get_cell(cell)
        _check_sizes(input_size=input_size, hidden_size=hidden_size)
        variants = Variants.build(spec, **options)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        factory = {"device": device, "dtype": dtype}
        shapes = _weight_shapes(spec, variants, input_size, hidden_size, bias)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            shape = shapes.get(name)
            param = None if shape is None else nn.Parameter(torch.empty(shape, **factory))
            self.register_parameter(name, param)
        _uniform_([getattr(self, n) for n in shapes], hidden_size)
        self._setup_variants(spec, variants)

    def forward(self, input: torch.Tensor, hx: Any = None) -> Any:
        return self._run(input, hx, self.spec.state_names)

    def extra_repr(self) -> str:
        base = f"{self.input_size}, {self.hidden_size}"
        if type(self) is RecurrentCell:
            base = f"{self.spec.name!r}, {base}"
        return ", ".join(filter(None, [base, self.variants.describe()]))
