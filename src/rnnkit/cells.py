"""LSTMCell, GRUCell and RNNCell: one step at a time, drop-in for ``torch.nn``'s cells, with rnnkit's
options.

A cell's parameters are named as torch's (``weight_ih (G*H, D)``, ``weight_hh (G*H, H)``, ``bias_ih``,
``bias_hh``) plus ``layer_norm_ih``, ``layer_norm_hh`` ``(G*H,)``, ``layer_norm_c_weight``,
``layer_norm_c_bias`` ``(H,)`` and ``peephole (3, H)`` when those options are on, so a cell can load
layer ``k`` of a sequence layer by stripping the ``_l{k}`` suffix (:meth:`load_from_layer`).

Masks that belong to a whole sequence (recurrent dropout, DropConnect) are drawn at the first step and
reused until :meth:`reset_dropout_mask` (call it at the start of each new sequence) or until the batch
size changes; zoneout masks are drawn at every step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .functional import CellParams, gru_step, input_projection, lstm_step, rnn_step, zoneout
from .options import Variants, init_forget_bias, init_variant_parameter, variant_parameter_shapes
from .regularization import dropout_mask, zoneout_masks
from .state import check_state_tensor


class _RecurrentCell:
    """Shared machinery of the three cells (a mixin over ``torch.nn.RNNCellBase``)."""

    mode: str
    variants: Variants

    def _setup_variants(self, variants: Variants) -> None:
        self.variants = variants
        factory = {"device": self.weight_ih.device, "dtype": self.weight_ih.dtype}
        for name, shape in variant_parameter_shapes(self.mode, self.hidden_size, variants).items():
            param = nn.Parameter(torch.empty(shape, **factory))
            init_variant_parameter(name, param, self.hidden_size)
            self.register_parameter(name, param)
        if variants.forget_bias is not None and self.bias:
            init_forget_bias(self.bias_ih, self.bias_hh, variants.forget_bias, self.hidden_size)
        self._masks: dict[str, Tensor] = {}

    def reset_dropout_mask(self) -> None:
        """Forget the per-sequence dropout masks; the next step draws new ones."""
        self._masks = {}

    def cell_params(self) -> CellParams:
        def get(name: str) -> Tensor | None:
            return getattr(self, name, None)

        return CellParams(
            w_ih=self.weight_ih,
            w_hh=self.weight_hh,
            b_ih=self.bias_ih if self.bias else None,
            b_hh=self.bias_hh if self.bias else None,
            ln_ih=get("layer_norm_ih"),
            ln_hh=get("layer_norm_hh"),
            ln_c_weight=get("layer_norm_c_weight"),
            ln_c_bias=get("layer_norm_c_bias"),
            peephole=get("peephole"),
        )

    def load_from_layer(self, layer: nn.Module, index: int = 0, reverse: bool = False) -> None:
        """Copy layer ``index`` (and direction) of a sequence layer's parameters into this cell."""
        sfx = f"_l{index}" + ("_reverse" if reverse else "")
        state = {k[: -len(sfx)]: v for k, v in layer.state_dict().items() if k.endswith(sfx)}
        self.load_state_dict(state)

    def _sequence_mask(self, key: str, shape: tuple[int, ...], rate: float, like: Tensor) -> Tensor:
        mask = self._masks.get(key)
        if mask is None or tuple(mask.shape) != shape or mask.device != like.device:
            mask = dropout_mask(shape, rate, like)
            self._masks[key] = mask
        return mask

    def _check_input(self, input: Any) -> tuple[Tensor, bool]:
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{type(self).__name__} expects input (N, {self.input_size}) or unbatched "
                f"({self.input_size},), got shape {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects {self.input_size} input features, "
                f"got {input.shape[-1]}"
            )
        unbatched = input.dim() == 1
        return (input.unsqueeze(0) if unbatched else input), unbatched

    def _check_state(self, name: str, t: Any, x: Tensor, unbatched: bool) -> Tensor:
        if t is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        shape = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        check_state_tensor(name, t, shape, x)
        return t.unsqueeze(0) if unbatched else t

    def _step(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        p, v = self.cell_params(), self.variants
        n = x.shape[0]
        mask = w_hh = None
        if self.training and v.recurrent_dropout:
            mask = self._sequence_mask("h", (n, self.hidden_size), v.recurrent_dropout, x)
        if self.training and v.weight_drop:
            w_hh = p.w_hh * self._sequence_mask("w", tuple(p.w_hh.shape), v.weight_drop, x)
        gx = input_projection(x, p)
        if self.mode == "LSTM":
            new = lstm_step(gx, state[0], state[1], p, w_hh, mask)
        elif self.mode == "GRU":
            new = (gru_step(gx, state[0], p, w_hh, mask),)
        else:
            new = (rnn_step(gx, state[0], p, self.nonlinearity, w_hh, mask),)
        rates = (v.zoneout_h, v.zoneout_c)
        out = []
        for prev, nxt, rate in zip(state, new, rates):
            if rate and self.training:
                nxt = zoneout(prev, nxt, zoneout_masks(1, tuple(nxt.shape), rate, x)[0])
            elif rate:
                nxt = zoneout(prev, nxt, rate)
            out.append(nxt)
        return tuple(out)

    def extra_repr(self) -> str:
        return ", ".join(filter(None, [super().extra_repr(), self.variants.describe()]))


class LSTMCell(_RecurrentCell, nn.LSTMCell):
    """One LSTM step, drop-in for :class:`torch.nn.LSTMCell`: ``(N, D), ((N, H), (N, H)) -> (h', c')``.

    Math: :func:`rnnkit.functional.lstm_step`; options as :class:`rnnkit.LSTM` (no projection)."""

    mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        peephole: bool = False,
        forget_bias: float | None = None,
    ) -> None:
        variants = Variants.build(
            "LSTM",
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
            peephole=peephole,
            forget_bias=forget_bias,
        )
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)
        self._setup_variants(variants)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, unbatched = self._check_input(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell hx must be a tuple (h, c), got {type(hx).__name__}")
        h = self._check_state("h", None if hx is None else hx[0], x, unbatched)
        c = self._check_state("c", None if hx is None else hx[1], x, unbatched)
        if self.variants.changes_recurrence:
            h, c = self._step(x, (h, c))
        else:
            h, c = super().forward(x, (h, c))
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(_RecurrentCell, nn.GRUCell):
    """One GRU step, drop-in for :class:`torch.nn.GRUCell`: ``(N, D), (N, H) -> (N, H)``.

    Math: :func:`rnnkit.functional.gru_step`."""

    mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        variants = Variants.build(
            "GRU",
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
        )
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)
        self._setup_variants(variants)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, unbatched = self._check_input(input)
        h = self._check_state("hx", hx, x, unbatched)
        if self.variants.changes_recurrence:
            (h,) = self._step(x, (h,))
        else:
            h = super().forward(x, h)
        return h.squeeze(0) if unbatched else h


class RNNCell(_RecurrentCell, nn.RNNCell):
    """One Elman RNN step, drop-in for :class:`torch.nn.RNNCell` (``nonlinearity`` tanh or relu).

    Math: :func:`rnnkit.functional.rnn_step`."""

    mode = "RNN"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        variants = Variants.build(
            "RNN",
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
        )
        super().__init__(
            input_size, hidden_size, bias=bias, nonlinearity=nonlinearity, device=device,
            dtype=dtype,
        )  # fmt: skip
        self._setup_variants(variants)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, unbatched = self._check_input(input)
        h = self._check_state("hx", hx, x, unbatched)
        if self.variants.changes_recurrence:
            (h,) = self._step(x, (h,))
        else:
            h = super().forward(x, h)
        return h.squeeze(0) if unbatched else h
