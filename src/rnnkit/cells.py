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

from torch import Tensor, nn

from .functional import CellParams, input_projection, zoneout
from .options import Variants
from .registry import CellSpec, get_cell, rnn_cell
from .regularization import dropout_mask, zoneout_masks
from .state import check_state
from .variant_module import VariantModule


class _RecurrentCell(VariantModule):
    """Shared machinery of the step-wise cells (a mixin over ``torch.nn.RNNCellBase``), for any
    registered cell (:attr:`spec`)."""

    spec: CellSpec
    variants: Variants

    def _setup_variants(self, spec: CellSpec, variants: Variants) -> None:
        self._add_variant_parameters(spec, variants, self.weight_ih)
        self._masks: dict[str, Tensor] = {}

    def _parameter_suffixes(self) -> list[str]:
        return [""]

    def reset_dropout_mask(self) -> None:
        """Forget the per-sequence dropout masks; the next step draws new ones."""
        self._masks = {}

    def cell_params(self) -> CellParams:
        return CellParams.of(self)

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
        shapes = f"(N, {self.input_size}) or unbatched ({self.input_size},)"
        natively = not self.variants.changes_recurrence and isinstance(self, nn.RNNCellBase)
        input = self._checked_input(input, (1, 2), shapes, natively)
        unbatched = input.dim() == 1
        return (input.unsqueeze(0) if unbatched else input), unbatched

    def _run(self, input: Tensor, hx: Any, names: tuple[str, ...]) -> Any:
        """Validate, step (torch.nn's own kernel when no option changes the recurrence) and return
        the new state as the cell's torch.nn twin does: a tensor, or a tuple for several states."""
        x, unbatched = self._check_input(input)
        sizes = self.spec.state_sizes(self.hidden_size, self.hidden_size)
        if hx is None:
            state = tuple(x.new_zeros(x.shape[0], size) for size in sizes)
        else:
            lead = () if unbatched else (x.shape[0],)
            state = check_state(self.spec, hx, sizes, lead, x, names=names)
            state = tuple(t.unsqueeze(0) for t in state) if unbatched else state
        if self.variants.changes_recurrence or not isinstance(self, nn.RNNCellBase):
            new = self._step(x, state)
        else:
            new = super().forward(x, state if len(state) > 1 else state[0])
            new = tuple(new) if isinstance(new, tuple) else (new,)
        if unbatched:
            new = tuple(t.squeeze(0) for t in new)
        return new if len(new) > 1 else new[0]

    def _step(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        p, v = self.cell_params(), self.variants
        n = x.shape[0]
        mask = w_hh = None
        if self.training and v.recurrent_dropout:
            mask = self._sequence_mask("h", (n, self.hidden_size), v.recurrent_dropout, x)
        if self.training and v.weight_drop:
            w_hh = p.w_hh * self._sequence_mask("w", tuple(p.w_hh.shape), v.weight_drop, x)
        new = self.spec.step(input_projection(x, p), state, p, w_hh, mask)
        rates = {"h": v.zoneout_h, "c": v.zoneout_c}
        out = []
        for prev, nxt, s in zip(state, new, self.spec.states):
            rate = rates.get(s.zoneout, 0.0)
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

    Math: :func:`rnnkit.registry.lstm.lstm_step`; options as :class:`rnnkit.LSTM` (no projection)."""

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
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)
        self._setup_variants(spec, variants)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        return self._run(input, hx, ("h", "c"))


class GRUCell(_RecurrentCell, nn.GRUCell):
    """One GRU step, drop-in for :class:`torch.nn.GRUCell`: ``(N, D), (N, H) -> (N, H)``.

    Math: :func:`rnnkit.registry.gru.gru_step`."""

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
        spec = get_cell("gru")
        variants = Variants.build(
            spec,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
        )
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)
        self._setup_variants(spec, variants)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(input, hx, ("hx",))


class RNNCell(_RecurrentCell, nn.RNNCell):
    """One Elman RNN step, drop-in for :class:`torch.nn.RNNCell` (``nonlinearity`` tanh or relu).

    Math: :func:`rnnkit.registry.rnn.rnn_step`."""

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
        spec = rnn_cell(nonlinearity)
        variants = Variants.build(
            spec,
            layer_norm=layer_norm,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
        )
        super().__init__(
            input_size, hidden_size, bias=bias, nonlinearity=nonlinearity, device=device,
            dtype=dtype,
        )  # fmt: skip
        self._setup_variants(spec, variants)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._run(input, hx, ("hx",))
