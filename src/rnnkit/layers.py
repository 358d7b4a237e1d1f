"""LSTM, GRU and RNN sequence layers: drop-in ``torch.nn`` subclasses with rnnkit's variants.

Each layer *is* its ``torch.nn`` namesake (same constructor arguments, parameter names, shapes,
initialisation and outputs; ``isinstance(rnnkit.LSTM(...), torch.nn.LSTM)`` holds), plus:

* ``forward(input, hx=None, lengths=None)``: ``lengths (N,)`` gives each sequence's length (any
  order); outputs at padded steps are exactly zero and ``h_n``/``c_n`` hold each sequence's state after
  its own last valid step, in both directions -- what torch.nn gives for
  ``pack_padded_sequence(..., enforce_sorted=False)``. A ``PackedSequence`` input gives one back.
* the options of :mod:`rnnkit.options` (layer norm, recurrent dropout, DropConnect, zoneout,
  peepholes, forget-gate bias).

Dispatch (``backend=``, decided in :mod:`rnnkit.backends.dispatch`): ``"auto"`` runs torch's native
kernels (oneDNN/cuDNN) when no option changes the recurrence, otherwise the fused path; ``"native"``
insists on the native kernels and raises when an option rules them out; ``"fused"`` the fused path
(the C kernels on CPU, else torch ops); ``"cpu_kernels"`` or ``"torch_ops"`` one fused backend, raising
when it cannot serve the call; ``"reference"`` the plain time loop (:mod:`rnnkit.backends.reference`,
the oracle of the tests).

Extra parameters (named like torch's, per layer ``k`` and direction suffix ``""``/``"_reverse"``):
``layer_norm_ih_l{k}``, ``layer_norm_hh_l{k}`` ``(G*H,)``, ``layer_norm_c_weight_l{k}``,
``layer_norm_c_bias_l{k}`` ``(H,)`` (LSTM), ``peephole_l{k}`` ``(3, H)`` (rows i, f, o).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .backends import dispatch, native
from .functional import CellParams, StepOptions
from .options import Variants
from .registry import CellSpec, get_cell, rnn_cell
from .regularization import drop_connect_draw, dropout_mask, zoneout_draws
from .state import check_lengths, check_state, zero_state
from .variant_module import VariantModule


class _RecurrentLayer(VariantModule):
    """Shared machinery of the sequence layers (a mixin over ``torch.nn.RNNBase``), for any
    registered cell (:attr:`spec`)."""

    spec: CellSpec
    variants: Variants
    backend: str

    # ---------------------------------------------------------------- construction
    def _setup_variants(self, spec: CellSpec, variants: Variants, backend: str) -> None:
        self.backend = dispatch.check_backend(backend)
        dispatch.check_native(spec, variants, backend, isinstance(self, nn.RNNBase))
        self._add_variant_parameters(spec, variants, self.weight_ih_l0)

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _parameter_suffixes(self) -> list[str]:
        return [f"_l{k}{sfx}" for k in range(self.num_layers) for sfx in self._suffixes()]

    def reset_parameters(self) -> None:
        """torch.nn's initialisation (uniform(-1/sqrt(H), 1/sqrt(H)) on every weight and bias, in the
        same order, so a seed gives torch.nn's weights), then the variants' own."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for name in self._flat_weights_names:
            nn.init.uniform_(getattr(self, name), -stdv, stdv)
        if getattr(self, "variants", None) is not None:
            self.reset_variant_parameters()

    def cell_params(self, layer: int, direction: int) -> CellParams:
        """The :class:`CellParams` of one layer and direction (0 forward, 1 reverse)."""
        return CellParams.of(self, f"_l{layer}" + ("_reverse" if direction else ""))

    @property
    def _out_size(self) -> int:
        return getattr(self, "proj_size", 0) or self.hidden_size

    # ---------------------------------------------------------------- forward
    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> tuple[Any, Any]:
        """Run the layer over a sequence.

        Args:
            input: ``(T, N, C)``, ``(N, T, C)`` with ``batch_first``, ``(T, C)`` unbatched, or a
                ``PackedSequence``.
            hx: initial state in torch.nn's layout, ``(L*D, N, R)`` (LSTM: a tuple with ``c0
                (L*D, N, H)``); zeros when None.
            lengths: ``(N,)`` integer lengths, ``1 <= lengths <= T``, any order.

        Returns:
            ``(output, h_n)`` or, for LSTM, ``(output, (h_n, c_n))``; ``output`` is ``(T, N, D*R)``
            (``(N, T, D*R)`` with ``batch_first``), zero at padded steps.
        """
        like = input.data if isinstance(input, PackedSequence) else input
        like = like if isinstance(like, torch.Tensor) else None  # a bad input: checked below
        natively = dispatch.runs_natively(
            self.spec, self.variants, self.backend, isinstance(self, nn.RNNBase), like
        )
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths must be None for a PackedSequence input (it has its own)")
            if natively and not self.variants.weight_drop:
                return super().forward(input, hx)
            return self._forward_packed(input, hx)
        x, unbatched = self._check_input(input, natively)
        steps, batch = x.shape[0], x.shape[1]
        state = self._check_hx(hx, x, batch, unbatched)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
        if natively:
            drop = self.variants.weight_drop if self.training else 0.0
            out, state = native.forward(self, x, state, lengths, drop)
        else:
            out, state = self._forward_variants(x, state, lengths)
        if unbatched:
            out = out.squeeze(1)
            state = tuple(s.squeeze(1) for s in state)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (state if len(state) > 1 else state[0])

    def _check_input(self, input: Any, natively: bool) -> tuple[Tensor, bool]:
        """Validate ``input``; return it time-major ``(T, N, C)`` and whether it was unbatched."""
        name = type(self).__name__
        shapes = "of rank 3 ((T, N, C), or (N, T, C) with batch_first) or 2 (unbatched (T, C))"
        input = self._checked_input(input, (2, 3), shapes, natively, packed=True)
        steps = input.shape[1 if self.batch_first and input.dim() == 3 else 0]
        if not natively and steps == 0:  # torch.nn's kernels say it too
            raise ValueError(
                f"{name} expects at least one time step, got input of shape {tuple(input.shape)}"
            )
        if input.dim() == 2:
            return input.unsqueeze(1), True
        return (input.transpose(0, 1) if self.batch_first else input), False

    def _check_hx(self, hx: Any, x: Tensor, batch: int, unbatched: bool) -> tuple[Tensor, ...]:
        ld = self.num_layers * (2 if self.bidirectional else 1)
        sizes = self.spec.state_sizes(self.hidden_size, self._out_size)
        if hx is None:
            return zero_state(sizes, (ld, batch), x)
        lead = (ld,) if unbatched else (ld, batch)
        state = check_state(self.spec, hx, sizes, lead, x, suffix="_0")
        return tuple(t.unsqueeze(1) for t in state) if unbatched else state

    def _forward_packed(self, packed: PackedSequence, hx: Any) -> tuple[PackedSequence, Any]:
        batch_first, self.batch_first = self.batch_first, False
        try:
            x, lengths = pad_packed_sequence(packed)  # original batch order
            out, state = self.forward(x, hx, lengths)
        finally:
            self.batch_first = batch_first
        order = packed.sorted_indices
        if order is not None:
            out, lengths = out.index_select(1, order), lengths[order.cpu()]
        data = pack_padded_sequence(out, lengths, enforce_sorted=True).data
        return PackedSequence(
            data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        ), state

    def _step_options(self, p: CellParams, steps: int, batch: int, like: Tensor) -> StepOptions:
        v = self.variants
        if not self.training:
            return StepOptions(zoneout_h=v.zoneout_h, zoneout_c=v.zoneout_c)
        r, h = self._out_size, self.hidden_size
        return StepOptions(
            dropout_mask=dropout_mask((batch, r), v.recurrent_dropout, like)
            if v.recurrent_dropout
            else None,
            w_hh=drop_connect_draw(p.w_hh, v.weight_drop) if v.weight_drop else None,
            zoneout_h=zoneout_draws(steps, (batch, r), v.zoneout_h, like) if v.zoneout_h else 0.0,
            zoneout_c=zoneout_draws(steps, (batch, h), v.zoneout_c, like) if v.zoneout_c else 0.0,
        )

    def _forward_variants(
        self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        steps, batch = x.shape[0], x.shape[1]
        dirs = 2 if self.bidirectional else 1
        lengths_dev = None if lengths is None else lengths.to(x.device)
        backend = "fused" if self.backend == "auto" else self.backend
        layer_input = x
        if lengths_dev is not None:  # the padding is never read: a NaN there reaches no gradient
            valid = torch.arange(steps, device=x.device)[:, None] < lengths_dev  # (T, N)
            layer_input = x.masked_fill(~valid.unsqueeze(-1), 0.0)
        finals: list[list[Tensor]] = [[] for _ in state]
        for k in range(self.num_layers):
            outputs = []
            for d in range(dirs):
                p = self.cell_params(k, d)
                out, sn = dispatch.run_direction(
                    self.spec,
                    layer_input,
                    tuple(s[k * dirs + d] for s in state),
                    p,
                    lengths=lengths_dev,
                    reverse=d == 1,
                    options=self._step_options(p, steps, batch, x),
                    backend=backend,
                )
                outputs.append(out)
                for i, s in enumerate(sn):
                    finals[i].append(s)
            layer_input = outputs[0] if dirs == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, tuple(torch.stack(f) for f in finals)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        extra = self.variants.describe()
        if self.backend != "auto":
            extra = ", ".join(filter(None, [extra, f"backend={self.backend!r}"]))
        return ", ".join(filter(None, [base, extra]))


class LSTM(_RecurrentLayer, nn.LSTM):
    """Multi-layer LSTM, drop-in for :class:`torch.nn.LSTM` (gate order i, f, g, o), with rnnkit's options.

    Shapes: input ``(T, N, C)`` (``(N, T, C)`` with ``batch_first``); ``h_0``/``h_n`` ``(L*D, N, R)``,
    ``c_0``/``c_n`` ``(L*D, N, H)``; ``R = proj_size or H``. Step math:
    :func:`rnnkit.registry.lstm.lstm_step`.

    Example::

        >>> lstm = rnnkit.LSTM(10, 20, num_layers=2, layer_norm=True, zoneout=0.1)
        >>> out, (h, c) = lstm(torch.randn(5, 3, 10), lengths=torch.tensor([5, 2, 4]))
        >>> out.shape, h.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        peephole: bool = False,
        forget_bias: float | None = None,
        backend: str = "auto",
    ) -> None:
        spec = get_cell("lstm")
        variants = Variants.build(
            spec,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
            peephole=peephole,
            forget_bias=forget_bias,
        )
        super().__init__(
            input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
            dropout=dropout, bidirectional=bidirectional, proj_size=proj_size, device=device,
            dtype=dtype,
        )  # fmt: skip
        self._setup_variants(spec, variants, backend)


class GRU(_RecurrentLayer, nn.GRU):
    """Multi-layer GRU, drop-in for :class:`torch.nn.GRU` (gate order r, z, n), with rnnkit's options
    (no peephole/forget_bias). Shapes as :class:`LSTM` without ``c``; step math:
    :func:`rnnkit.registry.gru.gru_step`."""

    def __init__(
        self,
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
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float = 0.0,
        backend: str = "auto",
    ) -> None:
        spec = get_cell("gru")
        variants = Variants.build(
            spec,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
        )
        super().__init__(
            input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
            dropout=dropout, bidirectional=bidirectional, device=device, dtype=dtype,
        )  # fmt: skip
        self._setup_variants(spec, variants, backend)


class RNN(_RecurrentLayer, nn.RNN):
    """Multi-layer Elman RNN, drop-in for :class:`torch.nn.RNN` (``nonlinearity`` 'tanh' or 'relu'),
    with rnnkit's options (no peephole/forget_bias). Step math: :func:`rnnkit.registry.rnn.rnn_step`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float = 0.0,
        backend: str = "auto",
    ) -> None:
        spec = rnn_cell(nonlinearity)
        variants = Variants.build(
            spec,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
        )
        super().__init__(
            input_size, hidden_size, num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
            batch_first=batch_first, dropout=dropout, bidirectional=bidirectional, device=device,
            dtype=dtype,
        )  # fmt: skip
        self._setup_variants(spec, variants, backend)
