"""The recurrent weights of an ONNX model: the W, R, B, P inputs of its LSTM/GRU/RNN nodes.

Nodes whose math a torch layer cannot reproduce are refused (non-default activations, ``clip``,
``input_forget``, ``direction="reverse"``); a GRU with ``linear_before_reset=0`` is rewritten to the
``=1`` form torch computes when that is exact (diagonal ``R_h``), else :class:`ResetBeforeError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layouts_keras import check_reset_before


def onnx_entries(path: Path) -> list[tuple[str, str, np.ndarray]]:
    """``(owner, key, array)`` for the W, R, B, P inputs of every LSTM/GRU/RNN node, in graph order
    (owner ``l{i}/`` when there are several nodes)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    nodes = [n for n in graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    entries = []
    for i, node in enumerate(nodes):
        owner = f"l{i}/" if len(nodes) > 1 else ""
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        _check_onnx_attrs(node, attrs, path)
        names = {"W": 1, "R": 2, "B": 3} | ({"P": 7} if node.op_type == "LSTM" else {})
        arrays = {}
        for key, index in names.items():
            if index < len(node.input) and node.input[index]:
                if node.input[index] not in consts:
                    raise ValueError(
                        f"{path}: {node.op_type} node {node.name!r} input {key} "
                        f"({node.input[index]!r}) is computed in the graph, not stored; fold "
                        "constants before reading"
                    )
                arrays[key] = consts[node.input[index]]
        if node.op_type == "GRU" and not attrs.get("linear_before_reset", 0):
            arrays = _gru_reset_before(arrays, node.name, path)
        entries += [(owner, k, v) for k, v in arrays.items()]
    return entries


def _check_onnx_attrs(node: object, attrs: dict, path: Path) -> None:
    defaults = {
        "LSTM": [b"Sigmoid", b"Tanh", b"Tanh"],
        "GRU": [b"Sigmoid", b"Tanh"],
        "RNN": [b"Tanh"],
    }
    acts = [a if isinstance(a, bytes) else a.encode() for a in attrs.get("activations", [])]
    base = defaults[node.op_type]
    allowed = [base * 2, base, []] + ([[b"Relu"], [b"Relu"] * 2] if node.op_type == "RNN" else [])
    if acts not in allowed:
        raise ValueError(
            f"{path}: {node.op_type} node {node.name!r} uses activations {acts}; "
            "only the defaults (and Relu for RNN) have a torch equivalent"
        )
    if attrs.get("direction", b"forward") in (b"reverse", "reverse"):
        raise ValueError(
            f"{path}: {node.op_type} node {node.name!r} runs backward only (direction=reverse); "
            "torch layers have no such direction"
        )
    for name in ("clip", "input_forget"):
        if attrs.get(name):
            raise ValueError(
                f"{path}: {node.op_type} node {node.name!r} sets {name}={attrs[name]}, "
                "which no torch/rnnkit layer computes"
            )


def _gru_reset_before(
    arrays: dict[str, np.ndarray], name: str, path: Path
) -> dict[str, np.ndarray]:
    """ONNX GRU with ``linear_before_reset=0`` -> the ``=1`` form torch computes, when exact:
    every ``R_h`` diagonal; its ``Rb_h`` then moves into ``Wb_h``."""
    r = arrays["R"]
    h = r.shape[2]
    for d in range(r.shape[0]):
        check_reset_before(
            r[d, 2 * h :], None, f"{path}: GRU node {name!r} (linear_before_reset=0)"
        )
    if "B" in arrays:
        b = arrays["B"].copy()
        b[:, 2 * h : 3 * h] += b[:, 5 * h :]
        b[:, 5 * h :] = 0
        arrays = {**arrays, "B": b}
    return arrays
