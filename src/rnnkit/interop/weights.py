"""A recurrent module's weights as NumPy arrays, one layer and direction at a time, in torch's
layout.

Every framework layout in :mod:`rnnkit.interop.layouts` converts to and from this common form:

* :class:`RNNSpec`: what a module is (mode, sizes, layers, directions, bias, projection, peepholes);
* :class:`CellWeights`: the arrays of one layer and one direction, in torch's gate order
  (LSTM ``i, f, g, o``; GRU ``r, z, n``) and shapes (``w_ih (G*H, D)``, ``w_hh (G*H, R)``);
* :func:`read_module` / :func:`write_module`: between a ``torch.nn.LSTM``/``GRU``/``RNN`` (or any
  module with the same attributes and parameter names, such as ``rnnkit.LSTM``) and those arrays;
* :class:`ParamReader`: takes arrays out of a ``{name: array}`` dict with shape checks and reports
  missing or unexpected names;
* :func:`reorder`: moves gate blocks between gate orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
TORCH_ORDER = {"LSTM": "ifgo", "GRU": "rzn", "RNN_TANH": "h", "RNN_RELU": "h"}
_STANDARD = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


@dataclass(frozen=True)
class RNNSpec:
    """The shape of a recurrent module.

    ``mode`` is torch's ``RNNBase.mode``: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``.
    ``proj_size`` is 0 without projection; ``peephole`` marks rnnkit's LSTM peepholes.
    """

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    proj_size: int = 0
    peephole: bool = False

    def __post_init__(self) -> None:
        if self.mode not in GATES:
            raise ValueError(f"mode must be one of {sorted(GATES)}, got {self.mode!r}")

    @property
    def gates(self) -> int:
        return GATES[self.mode]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def out_size(self) -> int:
        """``R``: the size of ``h`` (``proj_size`` when projecting, else ``hidden_size``)."""
        return self.proj_size or self.hidden_size

    def layer_input(self, layer: int) -> int:
        """Input size of layer ``layer``: ``input_size``, then ``directions * R``."""
        return self.input_size if layer == 0 else self.directions * self.out_size

    def cells(self) -> list[tuple[int, int]]:
        """``(layer, direction)`` pairs in torch's order."""
        return [(k, d) for k in range(self.num_layers) for d in range(self.directions)]

    def shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        """torch's shapes of one cell's arrays (``w_hr`` only with projection)."""
        gh = self.gates * self.hidden_size
        shapes = {
            "w_ih": (gh, self.layer_input(layer)),
            "w_hh": (gh, self.out_size),
            "b_ih": (gh,),
            "b_hh": (gh,),
        }
        if self.proj_size:
            shapes["w_hr"] = (self.proj_size, self.hidden_size)
        if self.peephole:
            shapes["peephole"] = (3, self.hidden_size)
        return shapes


@dataclass(frozen=True)
class CellWeights:
    """One layer and direction, torch's gate order; biases are zeros when the module has none.

    ``w_ih (G*H, D)``, ``w_hh (G*H, R)``, ``b_ih``/``b_hh (G*H,)``, ``w_hr (R, H)`` or None,
    ``peephole (3, H)`` (rows i, f, o; Gers & Schmidhuber 2000) or None.
    """

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    w_hr: np.ndarray | None = None
    peephole: np.ndarray | None = None

    def with_bias(self, bias: np.ndarray) -> CellWeights:
        """The same cell with one combined bias: ``b_ih = bias``, ``b_hh = 0``."""
        return replace(self, b_ih=bias, b_hh=np.zeros_like(bias))


Cells = dict[tuple[int, int], CellWeights]


def suffix(layer: int, direction: int) -> str:
    """torch's parameter-name suffix: ``_l{k}`` and ``_reverse`` for the backward direction."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def spec_of(module: object) -> RNNSpec:
    """The :class:`RNNSpec` of a ``torch.nn.LSTM``/``GRU``/``RNN``-like module."""
    mode = getattr(module, "mode", None)
    if mode not in GATES:
        raise TypeError(
            "expected a recurrent layer with torch.nn.RNNBase's attributes (mode 'LSTM', 'GRU', "
            f"'RNN_TANH' or 'RNN_RELU'), got {type(module).__name__} with mode={mode!r}"
        )
    names = {name for name, _ in module.named_parameters()}  # type: ignore[attr-defined]
    return RNNSpec(
        mode=mode,
        input_size=int(module.input_size),  # type: ignore[attr-defined]
        hidden_size=int(module.hidden_size),  # type: ignore[attr-defined]
        num_layers=int(module.num_layers),  # type: ignore[attr-defined]
        bidirectional=bool(module.bidirectional),  # type: ignore[attr-defined]
        bias=bool(module.bias),  # type: ignore[attr-defined]
        proj_size=int(getattr(module, "proj_size", 0) or 0),
        peephole="peephole_l0" in names,
    )


def extra_parameters(module: object, spec: RNNSpec) -> list[str]:
    """Names of parameters beyond torch's own and rnnkit's peepholes (e.g. layer-norm gains)."""
    known = set()
    for k, d in spec.cells():
        sfx = suffix(k, d)
        known.update(name + sfx for name in _STANDARD)
        known.add("peephole" + sfx)
    return sorted(n for n, _ in module.named_parameters() if n not in known)  # type: ignore[attr-defined]


def changed_eval_math(module: object) -> list[str]:
    """rnnkit options that change the recurrence even in eval mode and have no parameters of their
    own (zoneout: the eval step is the expectation ``rate * h_prev + (1 - rate) * h_new``)."""
    variants = getattr(module, "variants", None)
    found = []
    if variants is not None and (
        getattr(variants, "zoneout_h", 0) or getattr(variants, "zoneout_c", 0)
    ):
        found.append(f"zoneout=({variants.zoneout_h}, {variants.zoneout_c})")
    return found


def read_module(module: object) -> tuple[RNNSpec, Cells]:
    """``(spec, {(layer, direction): CellWeights})`` of a module, as float arrays (copies)."""
    spec = spec_of(module)
    cells: Cells = {}
    for k, d in spec.cells():
        sfx = suffix(k, d)

        def get(name: str, sfx: str = sfx) -> np.ndarray | None:
            p = getattr(module, name + sfx, None)
            return None if p is None else p.detach().cpu().numpy().copy()

        w_ih = get("weight_ih")
        zeros = np.zeros(w_ih.shape[0], dtype=w_ih.dtype)
        cells[k, d] = CellWeights(
            w_ih=w_ih,
            w_hh=get("weight_hh"),
            b_ih=get("bias_ih") if spec.bias else zeros,
            b_hh=get("bias_hh") if spec.bias else zeros.copy(),
            w_hr=get("weight_hr") if spec.proj_size else None,
            peephole=get("peephole") if spec.peephole else None,
        )
    return spec, cells


def write_module(module: object, spec: RNNSpec, cells: Cells, source: str) -> None:
    """Copy cells into the module's parameters in place (shapes already checked against ``spec``).

    Raises ValueError when the module has no biases but the arrays carry non-zero ones.
    """
    import torch

    for k, d in spec.cells():
        cell, sfx = cells[k, d], suffix(k, d)
        if not spec.bias:
            for name, b in (("input bias", cell.b_ih), ("recurrent bias", cell.b_hh)):
                if np.any(b != 0):
                    raise ValueError(
                        f"{source}: the module has bias=False but the {name} of layer {k} "
                        f"direction {d} is non-zero; build the module with bias=True"
                    )
        values = {"weight_ih": cell.w_ih, "weight_hh": cell.w_hh}
        if spec.bias:
            values.update(bias_ih=cell.b_ih, bias_hh=cell.b_hh)
        if spec.proj_size:
            values["weight_hr"] = cell.w_hr
        if spec.peephole:
            values["peephole"] = cell.peephole
        with torch.no_grad():
            for name, value in values.items():
                param = getattr(module, name + sfx)
                param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype))


def reorder(array: np.ndarray, src: str, dst: str, axis: int = 0) -> np.ndarray:
    """Move equal gate blocks along ``axis`` from gate order ``src`` to ``dst`` (e.g.
    ``"ifgo"``)."""
    if sorted(src) != sorted(dst):
        raise ValueError(f"gate orders {src!r} and {dst!r} name different gates")
    if array.shape[axis] % len(src):
        raise ValueError(
            f"axis {axis} of shape {array.shape} does not split into {len(src)} gate blocks"
        )
    blocks = dict(zip(src, np.split(array, len(src), axis=axis)))
    return np.concatenate([blocks[g] for g in dst], axis=axis)


def gate(array: np.ndarray, order: str, name: str, axis: int = 0) -> np.ndarray:
    """The block of gate ``name`` in an array stacked in gate order ``order``."""
    return np.split(array, len(order), axis=axis)[order.index(name)]


class ParamReader:
    """Reads named arrays of one layout with shape checks; :meth:`finish` rejects leftover names.

    Errors name the layout, the array, the expected and the received shape.
    """

    def __init__(self, params: Mapping[str, object], layout: str) -> None:
        self.params = {str(k): v for k, v in params.items()}
        self.layout = layout
        self.used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.params

    def take(self, key: str, shape: tuple[int, ...], what: str = "") -> np.ndarray:
        """The array ``key`` as a NumPy array of exactly ``shape``."""
        if key not in self.params:
            known = ", ".join(sorted(self.params)[:12]) or "none"
            more = " ..." if len(self.params) > 12 else ""
            raise ValueError(
                f"{self.layout}: missing array {key!r} (expected shape {shape}{_what(what)}); "
                f"received keys: {known}{more}"
            )
        value = self.params[key]
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if tuple(array.shape) != tuple(shape):
            raise ValueError(
                f"{self.layout}: array {key!r} has shape {tuple(array.shape)}, expected "
                f"{tuple(shape)}{_what(what)}"
            )
        self.used.add(key)
        return array

    def finish(self) -> None:
        unexpected = sorted(set(self.params) - self.used)
        if unexpected:
            raise ValueError(
                f"{self.layout}: unexpected arrays {unexpected} (not part of this module's layout; "
                "check num_layers, bidirectional, bias and the layout name)"
            )


def _what(what: str) -> str:
    return f" for {what}" if what else ""
