"""What a recurrent cell is to rnnkit: a :class:`CellSpec` names its gates, its state tensors, its
step function and the options it accepts; each cell type's own module registers one.

Layers, cells, state helpers, decoding and every task's ``--cell`` look cells up here
(:func:`get_cell`, :func:`cell_names`) instead of branching on a mode string.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

# step(gx (N, G*H), state, params, w_hh, dropout_mask) -> new state, in the order of CellSpec.states
StepFn = Callable[..., tuple[Tensor, ...]]
# sequence(gx (T, N, G*H), state, params, *, lengths, reverse) -> (outputs (T, N, H), final state)
SequenceFn = Callable[..., tuple[Tensor, tuple[Tensor, ...]]]

COMMON_OPTIONS = frozenset({"layer_norm", "recurrent_dropout", "weight_drop", "zoneout"})
# how a cell's recurrent weight W_hh is shaped and applied (functional.recurrent_projection)
RECURRENT_KINDS = ("dense", "diagonal", "heads", "none")
DEFAULT_HEADS = 4


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of a cell: ``name``, its feature size (``"output"``: the layer's output
    size ``R``, ``proj_size`` or ``H``; ``"hidden"``: ``H``) and which zoneout rate blends it
    (``"h"``, ``"c"`` or None). ``mixable``: whether a linear map of it is again a sensible state
    (False for the sLSTM's ``c``, ``n``, ``m``, which its stabiliser ``m`` scales together: a
    bidirectional encoder hands them on as the mean of its two directions, not through a layer)."""

    name: str
    size: str = "output"
    zoneout: str | None = None
    mixable: bool = True


@dataclass(frozen=True)
class CellSpec:
    """A recurrent cell type.

    ``name`` is what users choose (``--cell lstm``); ``title`` names it in messages; ``torch_mode``
    is ``torch.nn.RNNBase.mode`` of its torch.nn twin (empty when it has none). ``gates`` are in
    torch's order; ``states[0]`` is ``h``, the output. ``step`` is the math of one step given the
    input projection (:func:`rnnkit.functional.input_projection`); ``options`` the variant options
    it accepts beyond :data:`COMMON_OPTIONS`; ``parameters(hidden, variants)`` the names and shapes
    of the parameters those options add. ``kernel`` names the step family of the fused backends
    (``"lstm"``, ``"gru"``, ``"rnn"``) and ``backends`` the backends that run it. ``layer`` and
    ``cell`` are the names of its sequence layer and step-wise cell in :mod:`rnnkit`. ``onnx_op`` is
    the standard ONNX operator that computes it (empty: none), with ``onnx_attributes`` (an
    ``"activation"`` is repeated per direction as ONNX's ``activations``).

    ``recurrent`` is the kind of its recurrent weight ``W_hh`` for hidden size ``H`` and ``G``
    gates (:meth:`weight_hh_shape`; :func:`rnnkit.functional.recurrent_projection` applies it):
    ``"dense"`` ``(G*H, H)`` (LSTM, GRU, RNN), ``"diagonal"`` ``(G*H,)`` elementwise (IndRNN),
    ``"heads"`` block-diagonal ``(K, G*H/K, H/K)`` for ``K`` heads (sLSTM), ``"none"`` no
    ``W_hh`` and no ``b_hh`` (minGRU, minLSTM: gates from the input only).
    ``common_options`` are the :data:`COMMON_OPTIONS` it accepts (all by default). ``sequence``
    is its whole-sequence form, for cells whose recurrence has one (a parallel scan): the
    contract of :func:`rnnkit.backends.reference.scan` without the stochastic options, served by
    the ``"parallel"`` backend. ``init_parameter(name, param, hidden, variants)`` re-initialises
    a parameter after torch's uniform initialisation (IndRNN: ``u`` uniform in ``[0, 1]``).
    """

    name: str
    title: str
    torch_mode: str
    gates: tuple[str, ...]
    states: tuple[StateSpec, ...]
    step: StepFn
    parameters: Callable[[int, Any], dict[str, tuple[int, ...]]]
    layer: str
    cell: str
    kernel: str = ""
    nonlinearity: str = "tanh"
    options: frozenset[str] = field(default_factory=frozenset)
    backends: tuple[str, ...] = ("reference",)
    onnx_op: str = ""
    onnx_attributes: tuple[tuple[str, Any], ...] = ()
    paper: str = ""
    recurrent: str = "dense"
    common_options: frozenset[str] = COMMON_OPTIONS
    sequence: SequenceFn | None = None
    init_parameter: Callable[[str, Tensor, int, Any], None] | None = None

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    def accepts(self, option: str) -> bool:
        return option in self.common_options or option in self.options

    def accepted_options(self) -> tuple[str, ...]:
        """Every option it accepts, sorted (for messages)."""
        return tuple(sorted(self.common_options | self.options))

    def num_heads(self, hidden: int, variants: Any = None) -> int:
        """The heads of a ``"heads"`` recurrent weight: ``variants.num_heads``, else
        :data:`DEFAULT_HEADS` when it divides ``hidden``, else 1. ValueError when the heads asked
        for do not divide ``hidden``."""
        heads = getattr(variants, "num_heads", None)
        if heads is None:
            return DEFAULT_HEADS if hidden % DEFAULT_HEADS == 0 else 1
        if hidden % heads:
            raise ValueError(
                f"{self.title} num_heads must divide hidden_size {hidden}, got num_heads={heads}"
            )
        return heads

    def weight_hh_shape(self, hidden: int, variants: Any = None) -> tuple[int, ...] | None:
        """The shape of ``W_hh`` for hidden size ``hidden`` (None: the cell has none)."""
        g = self.num_gates * hidden
        if self.recurrent == "none":
            return None
        if self.recurrent == "diagonal":
            return (g,)
        if self.recurrent == "heads":
            k = self.num_heads(hidden, variants)
            return (k, g // k, hidden // k)
        return (g, hidden)

    def state_sizes(self, hidden: int, output: int) -> tuple[int, ...]:
        """The feature size of each state tensor for hidden size ``hidden`` and output ``output``."""
        return tuple(output if s.size == "output" else hidden for s in self.states)

    def layer_class(self) -> type:
        """The sequence layer (``rnnkit.LSTM`` for ``"lstm"``)."""
        return getattr(importlib.import_module("rnnkit"), self.layer)

    def cell_class(self) -> type:
        """The step-wise cell (``rnnkit.LSTMCell`` for ``"lstm"``)."""
        return getattr(importlib.import_module("rnnkit"), self.cell)


_REGISTRY: dict[str, CellSpec] = {}
_BY_TORCH_MODE: dict[str, CellSpec] = {}


def register_cell(spec: CellSpec) -> CellSpec:
    """Add ``spec`` to the registry (its module calls this once, at import)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a cell named {spec.name!r} is registered already")
    if spec.recurrent not in RECURRENT_KINDS:
        raise ValueError(
            f"{spec.title}: recurrent must be one of {RECURRENT_KINDS}, got {spec.recurrent!r}"
        )
    if ("parallel" in spec.backends) != (spec.sequence is not None):
        raise ValueError(
            f"{spec.title}: the 'parallel' backend runs a cell's sequence function; list it in "
            "backends exactly when sequence is given"
        )
    _REGISTRY[spec.name] = spec
    if spec.torch_mode:
        _BY_TORCH_MODE[spec.torch_mode] = spec
    return spec


def cell_names(*, option: str | None = None) -> tuple[str, ...]:
    """The registered cell names, in registration order; with ``option``, those accepting it."""
    return tuple(n for n, s in _REGISTRY.items() if option is None or s.accepts(option))


def get_cell(name: str | CellSpec) -> CellSpec:
    """The spec registered as ``name``, or of torch.nn's mode ``name`` (``"LSTM"``, ``"RNN_TANH"``);
    a spec is returned as it is."""
    if isinstance(name, CellSpec):
        return name
    spec = _REGISTRY.get(name) or _BY_TORCH_MODE.get(name)
    if spec is None:
        raise ValueError(f"cell must be one of {cell_names()}, got {name!r}")
    return spec


def cell_of(module: Any) -> CellSpec:
    """The spec of a torch.nn or rnnkit recurrent layer or cell (its ``spec``, else its ``mode``)."""
    spec = getattr(module, "spec", None)
    if isinstance(spec, CellSpec):
        return spec
    mode = getattr(module, "mode", None)
    if mode == "RNN_TANH" and getattr(module, "nonlinearity", "tanh") == "relu":
        mode = "RNN_RELU"
    if mode is None:
        raise TypeError(f"expected a recurrent layer or cell, got {type(module).__name__}")
    return get_cell(mode)


def layer_norm_gains(num_gates: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """The gains of the input and recurrent layer norms, ``(G*H,)`` each (Ba et al. 2016)."""
    return {"layer_norm_ih": (num_gates * hidden,), "layer_norm_hh": (num_gates * hidden,)}


def input_layer_norm_parameters(num_gates: int) -> Callable[[int, Any], dict[str, tuple[int, ...]]]:
    """``CellSpec.parameters`` of a cell whose only recurrent-free option adds the input layer
    norm's gain ``layer_norm_ih (G*H,)`` (minGRU, minLSTM)."""

    def parameters(hidden: int, variants: Any) -> dict[str, tuple[int, ...]]:
        return {"layer_norm_ih": (num_gates * hidden,)} if variants.layer_norm else {}

    return parameters


def layer_norm_parameters(num_gates: int) -> Callable[[int, Any], dict[str, tuple[int, ...]]]:
    """``CellSpec.parameters`` of a cell whose options add only the layer-norm gains."""

    def parameters(hidden: int, variants: Any) -> dict[str, tuple[int, ...]]:
        return layer_norm_gains(num_gates, hidden) if variants.layer_norm else {}

    return parameters
