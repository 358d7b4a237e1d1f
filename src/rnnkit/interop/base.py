"""What every framework layout implements, and the helpers they share.

A :class:`Layout` turns the :class:`~rnnkit.interop.weights.CellWeights` of a whole module into that
framework's ``{name: array}`` dict and back, and can guess a module's :class:`RNNSpec` from such a
dict (for converting files without a module at hand).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

from .weights import GATES, Cells, ParamReader, RNNSpec

ALL_MODES = frozenset(GATES)
KINDS = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "tanh RNN", "RNN_RELU": "relu RNN"}


class CheckpointFileError(ValueError):
    """A file from another framework that cannot be read safely: truncated or garbled, over a size
    limit (:mod:`~rnnkit.interop.limits`), or reaching outside itself (HDF5 external storage and
    links, ONNX external data outside the model's folder, archive members with unsafe names).

    A ValueError, so callers that handle bad input as ValueError (``rnnkit convert``) report it.
    """


class Layout:
    """One framework's naming, gate order and shapes.

    Class attributes say what the framework can hold: ``modes`` (torch mode names), ``projection``
    (LSTM ``proj_size``), ``peephole`` (LSTM peepholes), ``bidirectional`` and ``multilayer``.
    """

    name = ""
    source = ""
    modes: frozenset[str] = frozenset()
    projection = False
    peephole = False
    bidirectional = True
    multilayer = True

    def export(self, spec: RNNSpec, cells: Cells, **options: object) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load(self, spec: RNNSpec, reader: ParamReader, **options: object) -> Cells:
        raise NotImplementedError

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        """The module a dict of this layout describes. ``hints`` settle what the arrays cannot tell:
        ``nonlinearity`` (``"tanh"``/``"relu"``, vanilla RNNs) and, where ambiguous,
        ``bidirectional``."""
        raise NotImplementedError

    def check(self, spec: RNNSpec) -> None:
        """ValueError when this framework cannot hold a module of ``spec``."""
        what = KINDS[spec.mode]
        if spec.mode not in self.modes:
            kinds = sorted({KINDS[m] for m in self.modes})
            raise ValueError(f"layout {self.name!r} has no {what} (it holds {', '.join(kinds)})")
        if spec.proj_size and not self.projection:
            raise ValueError(
                f"layout {self.name!r} has no LSTM projection (proj_size={spec.proj_size}); "
                "layouts with one: 'torch', 'gluon'"
            )
        if spec.peephole and not self.peephole:
            raise ValueError(
                f"layout {self.name!r} has no peephole weights (peephole_l*); "
                "layouts with them: 'torch', 'onnx'"
            )
        if spec.bidirectional and not self.bidirectional:
            raise ValueError(f"layout {self.name!r} has no bidirectional layers")
        if spec.num_layers > 1 and not self.multilayer:
            raise ValueError(
                f"layout {self.name!r} holds one layer, got num_layers={spec.num_layers}"
            )


def mode_for(gates: int, name: str, nonlinearity: str = "tanh") -> str:
    """torch's mode name for a gate count (``RNN_TANH``/``RNN_RELU`` for one gate)."""
    modes = {4: "LSTM", 3: "GRU", 1: "RNN_RELU" if nonlinearity == "relu" else "RNN_TANH"}
    if gates not in modes:
        raise ValueError(f"{name}: {gates} gate blocks match no LSTM (4), GRU (3) or RNN (1)")
    return modes[gates]


def gates_of(rows: int, hidden: int, name: str) -> int:
    """``G`` from a stacked size ``G*H`` and ``H``."""
    if hidden <= 0 or rows % hidden:
        raise ValueError(f"{name}: stacked size {rows} is not a multiple of hidden size {hidden}")
    gates = rows // hidden
    if gates not in set(GATES.values()):
        raise ValueError(f"{name}: {gates} gate blocks match no LSTM (4), GRU (3) or RNN (1)")
    return gates


def count_indexed(keys: Iterable[str], pattern: str) -> int:
    """How many consecutive indices ``0..n-1`` match ``pattern`` (a regex with one ``(\\d+)``)."""
    found = {int(m.group(1)) for k in keys if (m := re.fullmatch(pattern, k))}
    n = 0
    while n in found:
        n += 1
    return n


def need(params: Mapping[str, np.ndarray], layout: str, *keys: str) -> list[np.ndarray]:
    missing = [k for k in keys if k not in params]
    if missing:
        shown = ", ".join(sorted(params)[:12])
        raise ValueError(
            f"{layout}: cannot tell the module's shape: missing {missing}; received keys: {shown}"
        )
    return [np.asarray(params[k]) for k in keys]


def tail_is(key: str, name: str) -> bool:
    return key == name or key.endswith("/" + name) or key.endswith("." + name)
