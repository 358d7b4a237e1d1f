"""The recurrent weights of an ONNX model: the W, R, B, P inputs of its LSTM/GRU/RNN nodes.

Nodes whose math a torch layer cannot reproduce are refused (non-default activations, ``clip``,
``input_forget``, ``direction="reverse"``); a GRU with ``linear_before_reset=0`` is rewritten to the
``=1`` form torch computes when that is exact (diagonal ``R_h``), else :class:`ResetBeforeError`.

The model is parsed without its external data; the tensors read here that keep their data in
external files get it from :func:`read_external`, which accepts only files inside the model's own
folder (no absolute paths, no ``..``, no symlink leaving it) and byte ranges inside those files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from . import limits
from .archive import unsafe_name
from .base import CheckpointFileError
from .layouts_keras import check_reset_before

logger = logging.getLogger(__name__)


def onnx_entries(path: Path) -> list[tuple[str, str, np.ndarray]]:
    """``(owner, key, array)`` for the W, R, B, P inputs of every LSTM/GRU/RNN node, in graph order
    (owner ``l{i}/`` when there are several nodes)."""
    graph = load_model(path).graph
    consts = {t.name: t for t in graph.initializer}  # tensors, converted when an RNN node uses one
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
    nodes = [n for n in graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    entries = []
    for i, node in enumerate(nodes):
        owner = f"l{i}/" if len(nodes) > 1 else ""
        attrs = _attributes(node, path)
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
                arrays[key] = to_array(consts[node.input[index]], path)
        _check_shapes(node, arrays, path)
        if node.op_type == "GRU" and not attrs.get("linear_before_reset", 0):
            arrays = _gru_reset_before(arrays, node.name, path)
        entries += [(owner, k, v) for k, v in arrays.items()]
    return entries


def _attributes(node: object, path: Path) -> dict:
    import onnx

    try:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    except (ValueError, TypeError) as e:
        raise CheckpointFileError(
            f"{path}: {node.op_type} node {node.name!r} has a malformed attribute ({e})"
        ) from e


def load_model(path: Path):  # noqa: ANN201 - returns onnx.ModelProto (optional dependency)
    """The model at ``path``, parsed without loading any external data."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(os.fspath(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as e:
        raise CheckpointFileError(f"{path}: not a readable ONNX model ({e})") from e


def to_array(tensor: object, path: Path) -> np.ndarray:
    """A tensor's array; external data read by :func:`read_external`, never by onnx."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL:
        external = TensorProto()
        external.CopyFrom(tensor)
        external.raw_data = read_external(tensor, path)
        del external.external_data[:]
        external.data_location = TensorProto.DEFAULT
        tensor = external
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointFileError(f"{path}: tensor {tensor.name!r} is malformed ({e})") from e


def read_external(tensor: object, path: Path) -> bytes:
    """The bytes of a tensor's external data, from a file inside the model's folder."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    what = f"{path}: tensor {tensor.name!r}"
    target = external_file(Path(path).parent, info.get("location", ""), what)
    size = target.stat().st_size
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else size - offset
    except ValueError as e:
        raise CheckpointFileError(f"{what}: external data offset/length not integers") from e
    if offset < 0 or length < 0 or offset + length > size:
        raise CheckpointFileError(
            f"{what}: external data bytes {offset}..{offset + length} lie outside "
            f"{target.name} ({size} bytes)"
        )
    if length > limits.MAX_ARRAY_BYTES:
        raise CheckpointFileError(
            f"{what}: external data of {length} bytes is over the limit of "
            f"{limits.MAX_ARRAY_BYTES} (rnnkit.interop.limits.MAX_ARRAY_BYTES)"
        )
    logger.debug("%s: reading %d bytes of %s at %d", what, length, target, offset)
    with open(target, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:  # the file shrank since it was measured
        raise CheckpointFileError(f"{what}: external data file {target.name} is truncated")
    return data


def external_file(folder: Path, location: str, what: str) -> Path:
    """The file ``location`` names, which must be a regular file inside ``folder``: relative, no
    ``..``, and still inside ``folder`` once symlinks are resolved."""
    if not location or unsafe_name(location):
        raise CheckpointFileError(
            f"{what}: external data location {location!r} is not a relative path inside the "
            f"model's folder {folder}"
        )
    root = folder.resolve()
    target = (root / location).resolve()
    if not target.is_relative_to(root):
        raise CheckpointFileError(
            f"{what}: external data location {location!r} resolves to {target}, outside the "
            f"model's folder {root}"
        )
    if not target.is_file():
        raise CheckpointFileError(
            f"{what}: external data file {location!r} is missing from {root} (or not a file)"
        )
    return target


GATE_COUNT = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _check_shapes(node: object, arrays: dict[str, np.ndarray], path: Path) -> None:
    """CheckpointFileError unless W ``(D, G*H, C)``, R ``(D, G*H, H)``, B ``(D, 2*G*H)`` and P
    ``(D, 3*H)`` agree with each other and with the operator's gate count ``G``."""
    if "W" not in arrays or "R" not in arrays:
        raise CheckpointFileError(
            f"{path}: {node.op_type} node {node.name!r} lacks its W or R input"
        )
    r = arrays["R"]
    gates = GATE_COUNT[node.op_type]
    if r.ndim != 3 or r.shape[1] != gates * r.shape[2]:
        raise CheckpointFileError(
            f"{path}: {node.op_type} node {node.name!r} input R has shape {r.shape}; "
            f"expected (directions, {gates}*hidden, hidden)"
        )
    d, gh, h = r.shape
    expected = {"W": (d, gh, None), "B": (d, 2 * gh), "P": (d, 3 * h)}
    for key, want in expected.items():
        got = arrays.get(key)
        if got is not None and (
            got.ndim != len(want) or any(w is not None and g != w for g, w in zip(got.shape, want))
        ):
            shown = tuple("C" if w is None else w for w in want)
            raise CheckpointFileError(
                f"{path}: {node.op_type} node {node.name!r} input {key} has shape {got.shape}; "
                f"expected {shown} (R is {r.shape})"
            )


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
