"""ONNX external data is read by rnnkit, only from files inside the model's folder, and only the
byte ranges those files hold."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnkit.interop import CheckpointFileError
from rnnkit.interop.legacy import load_checkpoint

onnx = pytest.importorskip("onnx", reason="onnx not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

H, C = 2, 3
RNG = np.random.default_rng(0)
W = RNG.standard_normal((1, H, C)).astype(np.float32)
R = RNG.standard_normal((1, H, H)).astype(np.float32)


def rnn_model(path, location=None, offset=0, length=None):
    """An RNN node whose W is stored inline, or in external data at ``location``."""
    w = numpy_helper.from_array(W, "W")
    if location is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        entries = {"location": location, "offset": str(offset)}
        entries |= {} if length is None else {"length": str(length)}
        for key, value in entries.items():
            w.external_data.add(key=key, value=value)
    node = helper.make_node("RNN", ["x", "W", "R"], ["y"], hidden_size=H)
    graph = helper.make_graph(
        [node],
        "rnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "N", C])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, numpy_helper.from_array(R, "R")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())  # onnx.save would touch the external files
    return path


def test_external_data_inside_the_folder_loads(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"\0" * 8 + W.tobytes())
    path = rnn_model(tmp_path / "model" / "m.onnx", "weights.bin", offset=8, length=W.nbytes)
    np.testing.assert_array_equal(load_checkpoint(path)["W"], W)


def test_parent_traversal_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(W.tobytes())
    path = rnn_model(tmp_path / "model" / "m.onnx", "../secret.bin")
    with pytest.raises(
        CheckpointFileError,
        match=r"m\.onnx: tensor 'W': external data location '\.\./secret\.bin' is not a relative "
        r"path inside the model's folder",
    ):
        load_checkpoint(path)


def test_absolute_location_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(W.tobytes())
    path = rnn_model(tmp_path / "model" / "m.onnx", str(secret))
    with pytest.raises(
        CheckpointFileError, match="is not a relative path inside the model's folder"
    ):
        load_checkpoint(path)


def test_symlink_leaving_the_folder_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(W.tobytes())
    (tmp_path / "model").mkdir()
    os.symlink(secret, tmp_path / "model" / "weights.bin")
    path = rnn_model(tmp_path / "model" / "m.onnx", "weights.bin")
    with pytest.raises(
        CheckpointFileError,
        match=r"location 'weights\.bin' resolves to .*secret\.bin, outside the model's folder",
    ):
        load_checkpoint(path)


def test_byte_range_outside_the_file_refused(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(W.tobytes())
    path = rnn_model(tmp_path / "model" / "m.onnx", "weights.bin", offset=16, length=W.nbytes)
    with pytest.raises(
        CheckpointFileError,
        match=r"external data bytes 16\.\.40 lie outside weights\.bin \(24 bytes\)",
    ):
        load_checkpoint(path)


def test_missing_external_file_refused(tmp_path):
    path = rnn_model(tmp_path / "m.onnx", "nowhere.bin")
    with pytest.raises(CheckpointFileError, match="external data file 'nowhere.bin' is missing"):
        load_checkpoint(path)
