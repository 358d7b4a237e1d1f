"""Checkpoint files of other frameworks, built here from their documented formats, and
conversion."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from rnnkit.interop import ResetBeforeError, export_weights, load_weights
from rnnkit.interop.layouts_stacked import gluon_file_names
from rnnkit.interop.legacy import convert_file, load_checkpoint
from rnnkit.interop.mxnet_params import read_params, write_params
from rnnkit.interop.weights import spec_of

X = torch.randn(5, 2, 3)


def make(kind="LSTM", layers=1, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind]
    return cls(3, 4, layers, bidirectional=bidirectional)


def out(module):
    with torch.no_grad():
        return module(X)[0]


# ----------------------------------------------------------------- MXNet NDArray files
def ndarray_v2(a: np.ndarray) -> bytes:
    """One array as NDArray::Save writes it (apache/mxnet src/ndarray/ndarray.cc)."""
    flag = {np.dtype("float32"): 0, np.dtype("float64"): 1, np.dtype("int64"): 6}[a.dtype]
    return (
        struct.pack("<Iii", 0xF993FAC9, 0, a.ndim)
        + struct.pack(f"<{a.ndim}q", *a.shape)
        + struct.pack("<iii", 1, 0, flag)
        + a.tobytes()
    )


def ndarray_file(arrays: list[bytes], names: list[str]) -> bytes:
    body = struct.pack("<QQQ", 0x112, 0, len(arrays)) + b"".join(arrays)
    body += struct.pack("<Q", len(names))
    return body + b"".join(struct.pack("<Q", len(n)) + n.encode() for n in names)


def test_reads_documented_ndarray_format():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(3, dtype=np.int64)
    legacy = struct.pack("<I", 1) + struct.pack("<I", 4) + struct.pack("<iii", 1, 0, 1)
    legacy += np.arange(4, dtype=np.float64).tobytes()  # pre-V1 array: magic is ndim, uint32 dims
    v1 = struct.pack("<Ii", 0xF993FAC8, 1) + struct.pack("<q", 2) + struct.pack("<iii", 1, 0, 0)
    v1 += np.ones(2, np.float32).tobytes()
    data = ndarray_file([ndarray_v2(a), ndarray_v2(b), legacy, v1], ["a", "b", "old", "v1"])
    got = read_params(data)
    assert list(got) == ["a", "b", "old", "v1"]
    np.testing.assert_array_equal(got["a"], a)
    assert got["b"].dtype == np.int64 and got["old"].dtype == np.float64
    np.testing.assert_array_equal(got["old"], np.arange(4.0))
    np.testing.assert_array_equal(got["v1"], np.ones(2))
    unnamed = read_params(ndarray_file([ndarray_v2(a)], []))
    np.testing.assert_array_equal(unnamed["0"], a)


def test_ndarray_writer_matches_format(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_params(tmp_path / "x.params", {"a": a})
    assert (tmp_path / "x.params").read_bytes() == ndarray_file([ndarray_v2(a)], ["a"])


def test_ndarray_errors(tmp_path):
    with pytest.raises(ValueError, match="not an MXNet NDArray file"):
        read_params(b"\x00" * 24)
    data = ndarray_file([ndarray_v2(np.ones(4, np.float32))], ["a"])
    with pytest.raises(ValueError, match="truncated"):
        read_params(data[:40])
    sparse = struct.pack("<Ii", 0xF993FAC9, 1)
    with pytest.raises(ValueError, match="sparse NDArray"):
        read_params(ndarray_file([sparse], []))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gluon_params_file(tmp_path, bidirectional):
    src = make("GRU", 2, bidirectional, seed=1)
    names = gluon_file_names(spec_of(src), export_weights(src, "gluon"))
    assert ("_unfused.1.r_cell.h2h_bias" in names) == bidirectional
    write_params(tmp_path / "net.params", {"encoder." + k: v for k, v in names.items()})
    dst = make("GRU", 2, bidirectional, seed=2)
    load_weights(dst, load_checkpoint(tmp_path / "net.params"), "gluon")
    torch.testing.assert_close(out(dst), out(src), rtol=0, atol=0)


def test_gluon_collect_params_names_and_prefix(tmp_path):
    enc, dec = make("LSTM", seed=3), make("LSTM", seed=4)
    arrays = {f"lstm0_{k}": v for k, v in export_weights(enc, "gluon").items()}
    arrays |= {f"lstm1_{k}": v for k, v in export_weights(dec, "gluon").items()}
    arrays["dense0_weight"] = np.ones((2, 4), np.float32)
    write_params(tmp_path / "m.params", arrays)
    with pytest.raises(
        ValueError, match=r"several gluon recurrent layers \(\['lstm0_', 'lstm1_'\]\)"
    ):
        load_checkpoint(tmp_path / "m.params")
    dst = make("LSTM", seed=5)
    load_weights(dst, load_checkpoint(tmp_path / "m.params", prefix="lstm1_"), "gluon")
    torch.testing.assert_close(out(dst), out(dec), rtol=0, atol=0)


# ----------------------------------------------------------------- Chainer .npz
def test_chainer_save_npz_link_names(tmp_path):
    """serializers.save_npz names a model's arrays by path: predictor/l1/upward/W ..."""
    src = make("LSTM", 2, seed=6)
    arrays = {f"predictor/{k}": v for k, v in export_weights(src, "chainer").items()}
    arrays["predictor/embed/W"] = np.ones((10, 3), np.float32)
    np.savez(tmp_path / "model.npz", **arrays)
    params = load_checkpoint(tmp_path / "model.npz")
    assert sorted(params)[:3] == ["l1/lateral/W", "l1/upward/W", "l1/upward/b"]
    dst = make("LSTM", 2, seed=7)
    load_weights(dst, params, "chainer")
    torch.testing.assert_close(out(dst), out(src), rtol=0, atol=1e-6)
    one = load_checkpoint(tmp_path / "model.npz", prefix="predictor/l2/")
    assert sorted(one) == ["lateral/W", "upward/W", "upward/b"]


def test_chainer_nstep_npz(tmp_path):
    src = make("LSTM", 2, True, seed=8)
    arrays = {f"encoder/{k}": v for k, v in export_weights(src, "chainer_nstep").items()}
    np.savez(tmp_path / "nstep.npz", **arrays)
    params = load_checkpoint(tmp_path / "nstep.npz")
    assert "3/w7" in params
    dst = make("LSTM", 2, True, seed=9)
    load_weights(dst, params, "chainer_nstep")
    torch.testing.assert_close(out(dst), out(src), rtol=0, atol=0)


# ----------------------------------------------------------------- Keras 2 HDF5
def test_keras2_hdf5_layout(tmp_path):
    """Keras 2 save_weights('x.h5'): root attribute layer_names; per layer weight_names
    'lstm/lstm_cell/kernel:0' naming datasets inside the layer group."""
    h5py = pytest.importorskip("h5py", reason="h5py not installed")
    src = make("LSTM", 1, True, seed=10)
    p = export_weights(src, "keras")
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names"] = [b"embedding", b"bidirectional"]
        f.create_group("embedding").attrs["weight_names"] = [b"embedding/embeddings:0"]
        f["embedding"].create_dataset("embedding/embeddings:0", data=np.ones((10, 3)))
        g = f.create_group("bidirectional")
        names = []
        for side in ("forward", "backward"):
            for w in ("kernel", "recurrent_kernel", "bias"):
                name = f"bidirectional/{side}_lstm/lstm_cell/{w}:0"
                g.create_dataset(name, data=p[f"bidirectional/{side}_lstm/{w}"])
                names.append(name.encode())
        g.attrs["weight_names"] = names
    params = load_checkpoint(tmp_path / "w.h5")
    assert sorted(params) == sorted(p)
    dst = make("LSTM", 1, True, seed=11)
    load_weights(dst, params, "keras")
    torch.testing.assert_close(out(dst), out(src), rtol=0, atol=1e-6)


# ----------------------------------------------------------------- ONNX models
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_onnx_model_from_torch_exporter(tmp_path):
    """A model written by torch.onnx.export (TorchScript exporter): LSTM nodes with initializers."""
    pytest.importorskip("onnx", reason="onnx not installed")
    src = make("LSTM", 2, True, seed=12).eval()
    path = tmp_path / "torch.onnx"
    torch.onnx.export(src, (X,), str(path), dynamo=False)
    params = load_checkpoint(path)
    assert sorted(params) == ["l0/B", "l0/R", "l0/W", "l1/B", "l1/R", "l1/W"]
    dst = make("LSTM", 2, True, seed=13)
    load_weights(dst, params, "onnx")
    torch.testing.assert_close(out(dst), out(src), rtol=0, atol=1e-6)


def gru_node_model(path, w, r, b, linear_before_reset):
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(
        "GRU", ["x", "W", "R", "B"], ["y"], hidden_size=4, linear_before_reset=linear_before_reset
    )
    graph = helper.make_graph(
        [node],
        "gru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_onnx_gru_linear_before_reset_zero(tmp_path):
    """linear_before_reset=0 (ONNX's default) equals torch's GRU only with diagonal R_h: then R_h's
    bias moves into W's; otherwise a clear error."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1, 12, 3)).astype(np.float32)
    r = rng.standard_normal((1, 12, 4)).astype(np.float32)
    r[0, 8:] = np.diag(rng.standard_normal(4))
    b = rng.standard_normal((1, 24)).astype(np.float32)
    gru_node_model(tmp_path / "diag.onnx", w, r, b, 0)
    dst = make("GRU", seed=14)
    load_weights(dst, load_checkpoint(tmp_path / "diag.onnx"), "onnx")
    session = ort.InferenceSession(str(tmp_path / "diag.onnx"), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": X.numpy()})[0][:, 0]
    np.testing.assert_allclose(out(dst).numpy(), y, rtol=0, atol=1e-5)
    r[0, 8, 1] = 0.5
    gru_node_model(tmp_path / "full.onnx", w, r, b, 0)
    with pytest.raises(ResetBeforeError, match="linear_before_reset=0"):
        load_checkpoint(tmp_path / "full.onnx")


# ----------------------------------------------------------------- conversion
def test_convert_keras_npz_to_gluon_params_and_back(tmp_path):
    src = make("LSTM", 2, True, seed=15)
    np.savez(tmp_path / "keras.npz", **export_weights(src, "keras"))
    convert_file(tmp_path / "keras.npz", "keras", "gluon", tmp_path / "net.params")
    assert "_unfused.1.r_cell.i2h_weight" in read_params(tmp_path / "net.params")
    dst = make("LSTM", 2, True, seed=16)
    load_weights(dst, load_checkpoint(tmp_path / "net.params"), "gluon")
    torch.testing.assert_close(out(dst), out(src), rtol=0, atol=1e-6)
    convert_file(tmp_path / "net.params", None, "rnnkit", tmp_path / "rnnkit.safetensors")
    from safetensors.numpy import load_file

    state = load_file(str(tmp_path / "rnnkit.safetensors"))
    assert set(state) == {n for n, _ in src.named_parameters()}
    np.testing.assert_array_equal(state["weight_hh_l1_reverse"], src.weight_hh_l1_reverse.detach())


def test_convert_chainer_nstep_needs_a_hint_when_ambiguous(tmp_path):
    torch.manual_seed(0)
    square = torch.nn.GRU(4, 4, 1, bidirectional=True)  # input size == hidden size
    np.savez(tmp_path / "n.npz", **export_weights(square, "chainer_nstep"))
    with pytest.raises(ValueError, match="pass bidirectional=True or False"):
        convert_file(tmp_path / "n.npz", "chainer_nstep", "onnx", tmp_path / "n_onnx.npz")
    convert_file(tmp_path / "n.npz", None, "onnx", tmp_path / "o.npz", bidirectional=True)
    assert np.load(tmp_path / "o.npz")["W"].shape == (2, 12, 4)


def test_convert_to_onnx_model_runs(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    src = make("GRU", 2, seed=17)
    np.savez(tmp_path / "flax.npz", **export_weights(src, "flax"))
    convert_file(tmp_path / "flax.npz", "flax", "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    y = session.run(["output"], {"input": X.numpy()})[0]
    np.testing.assert_allclose(y, out(src).numpy(), rtol=0, atol=1e-5)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown checkpoint format '.bin'"):
        load_checkpoint(tmp_path / "x.bin")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="no chainer recurrent weights"):
        load_checkpoint(tmp_path / "plain.npz", "chainer")
    with pytest.raises(ValueError, match="unknown output format '.txt'"):
        np.savez(tmp_path / "t.npz", **export_weights(make(), "torch"))
        convert_file(tmp_path / "t.npz", "torch", "keras", tmp_path / "out.txt")
