"""The options rnnkit adds to torch.nn's recurrent layers and cells, validated once.

=====================  =======================================================================
option                 meaning (paper)
=====================  =======================================================================
``layer_norm``         LayerNorm of the input and recurrent pre-activations, and of the LSTM cell
                       state before the output tanh (Ba, Kiros & Hinton 2016, eq. 20-22)
``recurrent_dropout``  one dropout mask per sequence on ``h`` before ``W_hh`` (Gal & Ghahramani 2016)
``weight_drop``        DropConnect on ``W_hh``, one mask per forward pass (Merity et al. 2017)
``zoneout``            rate, or ``(rate_h, rate_c)``: keep each unit's previous state with that
                       probability; in eval the expectation (Krueger et al. 2017)
``peephole``           LSTM only: ``c`` feeds the i, f, o gates (Gers & Schmidhuber 2000)
``forget_bias``        LSTM and sLSTM: initial forget-gate bias (``b_ih`` forget slice = value,
                       ``b_hh`` forget slice = 0); ``None`` keeps torch.nn's initialisation
``recurrent_max``      IndRNN only: clamp the recurrent weight to ``[-max, max]`` in every step
                       (Li et al. 2018's bound on ``|u|``); ``None``: no bound
``num_heads``          sLSTM only: heads of the block-diagonal recurrent weight (Beck et al.
                       2024); ``None``: 4 when they divide ``hidden_size``, else 1
``forget_gate``        sLSTM only: ``"exp"`` (exponential forget gate) or ``"sigmoid"``
``scan_chunk``         minGRU and minLSTM: steps per chunk of the parallel scan
                       (:mod:`rnnkit.parallel_scan`; 1: Heinsen's log-space scan over every
                       step); ``None``: the default. Changes the speed, not the result.
=====================  =======================================================================

A cell refuses an option it does not accept with a ValueError naming the cell, the option and
the options it accepts (``CellSpec.common_options`` and ``CellSpec.options``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .registry import CellSpec, cell_names, get_cell


def _rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    """A boolean option: ``True``/``False`` (or 0/1); a string such as ``'no'`` is an error, not True."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def _only_for(option: str) -> str:
    """The cells taking ``option``: ``"LSTM"``, ``"GRU, IndRNN, LSTM and RNN"``."""
    titles = list(dict.fromkeys(get_cell(n).title for n in cell_names(option=option)))
    if len(titles) < 2:
        return titles[0] if titles else "no cell"
    return ", ".join(titles[:-1]) + " and " + titles[-1]


# the value of each option that leaves it off
_OFF = {"layer_norm": False, "recurrent_dropout": 0.0, "weight_drop": 0.0, "zoneout": 0.0,
        "recurrent_max": None, "num_heads": None, "forget_gate": "exp", "scan_chunk": None}  # fmt: skip


def _is_off(name: str, value: object) -> bool:
    if name == "zoneout" and isinstance(value, (tuple, list)):
        return all(v == 0 for v in value)
    off = _OFF[name]
    return value is None if off is None else (value is not None and value == off)


def _refuse_unaccepted(spec: CellSpec, given: dict[str, object]) -> None:
    """ValueError for the first option set (not off) that ``spec`` does not accept."""
    for name, value in given.items():
        if not _is_off(name, value) and not spec.accepts(name):
            raise ValueError(
                f"{spec.title} has no option {name} (got {name}={value!r}; {spec.title} accepts "
                f"{', '.join(spec.accepted_options()) or 'none'}; {name} is an option of "
                f"{_only_for(name)})"
            )


def _positive_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return value


def _positive_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number or None, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number or None, got {value}")
    return float(value)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Variants:
    """Validated variant options of a recurrent layer or cell (see the module docstring)."""

    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    peephole: bool = False
    forget_bias: float | None = None
    recurrent_max: float | None = None
    num_heads: int | None = None
    forget_gate: str = "exp"
    scan_chunk: int | None = None

    @classmethod
    def build(
        cls,
        cell: str | CellSpec,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        peephole: bool = False,
        forget_bias: float | None = None,
        recurrent_max: float | None = None,
        num_heads: int | None = None,
        forget_gate: str = "exp",
        scan_chunk: int | None = None,
    ) -> Variants:
        """Validate the options for ``cell`` (a registered name, torch mode or spec)."""
        spec = get_cell(cell)
        given = {
            "layer_norm": layer_norm, "recurrent_dropout": recurrent_dropout,
            "weight_drop": weight_drop, "zoneout": zoneout, "recurrent_max": recurrent_max,
            "num_heads": num_heads, "forget_gate": forget_gate, "scan_chunk": scan_chunk,
        }  # fmt: skip
        _refuse_unaccepted(spec, given)
        zoned_c = any(s.zoneout == "c" for s in spec.states)
        if isinstance(zoneout, (tuple, list)):
            if len(zoneout) != 2:
                raise ValueError(f"zoneout must be a rate or (rate_h, rate_c), got {zoneout!r}")
            zh, zc = _rate("zoneout rate_h", zoneout[0]), _rate("zoneout rate_c", zoneout[1])
            if not zoned_c and zc:
                raise ValueError(
                    f"{spec.title} has no cell state: zoneout rate_c must be 0, got {zc}"
                )
        else:
            zh = _rate("zoneout", zoneout)
            zc = zh if zoned_c else 0.0
        if peephole and not spec.accepts("peephole"):
            raise ValueError(
                f"peephole connections exist only for {_only_for('peephole')}, not {spec.title}"
            )
        if forget_bias is not None and not spec.accepts("forget_bias"):
            raise ValueError(
                f"forget_bias exists only for {_only_for('forget_bias')}, not {spec.title}"
            )
        if forget_bias is not None and (
            isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float))
        ):
            raise TypeError(f"forget_bias must be a float or None, got {forget_bias!r}")
        if forget_bias is not None and not math.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias}")
        return cls(
            recurrent_max=_positive_float("recurrent_max", recurrent_max),
            num_heads=_positive_int("num_heads", num_heads),
            forget_gate=_choice("forget_gate", forget_gate, ("exp", "sigmoid")),
            scan_chunk=_positive_int("scan_chunk", scan_chunk),
            layer_norm=_flag("layer_norm", layer_norm),
            recurrent_dropout=_rate("recurrent_dropout", recurrent_dropout),
            weight_drop=_rate("weight_drop", weight_drop),
            zoneout_h=zh,
            zoneout_c=zc,
            peephole=_flag("peephole", peephole),
            forget_bias=None if forget_bias is None else float(forget_bias),
        )

    @property
    def changes_recurrence(self) -> bool:
        """True when the step math differs from torch.nn's (so native kernels cannot run it)."""
        return bool(
            self.layer_norm
            or self.recurrent_dropout
            or self.weight_drop
            or self.zoneout_h
            or self.zoneout_c
            or self.peephole
        )

    def describe(self) -> str:
        parts = []
        if self.layer_norm:
            parts.append("layer_norm=True")
        if self.recurrent_dropout:
            parts.append(f"recurrent_dropout={self.recurrent_dropout}")
        if self.weight_drop:
            parts.append(f"weight_drop={self.weight_drop}")
        if self.zoneout_h or self.zoneout_c:
            parts.append(f"zoneout=({self.zoneout_h}, {self.zoneout_c})")
        if self.peephole:
            parts.append("peephole=True")
        if self.forget_bias is not None:
            parts.append(f"forget_bias={self.forget_bias}")
        if self.recurrent_max is not None:
            parts.append(f"recurrent_max={self.recurrent_max}")
        if self.num_heads is not None:
            parts.append(f"num_heads={self.num_heads}")
        if self.forget_gate != "exp":
            parts.append(f"forget_gate={self.forget_gate!r}")
        if self.scan_chunk is not None:
            parts.append(f"scan_chunk={self.scan_chunk}")
        return ", ".join(parts)


@torch.no_grad()
def init_variant_parameter(name: str, param: Tensor, hidden: int) -> None:
    """Layer-norm gains 1 and shifts 0; peepholes uniform(-1/sqrt(H), 1/sqrt(H)) like torch's weights."""
    if name.startswith("layer_norm_c_bias"):
        param.zero_()
    elif name.startswith("layer_norm"):
        param.fill_(1.0)
    elif name.startswith("peephole"):
        stdv = 1.0 / math.sqrt(hidden)
        param.uniform_(-stdv, stdv)


@torch.no_grad()
def init_forget_bias(bias_ih: Tensor, bias_hh: Tensor, value: float, hidden: int) -> None:
    """Forget-gate slice (torch's gate order i, f, g, o) of ``b_ih`` to ``value``, of ``b_hh`` to 0."""
    bias_ih[hidden : 2 * hidden].fill_(value)
    bias_hh[hidden : 2 * hidden].zero_()
