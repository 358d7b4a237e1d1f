"""Truncated and garbled files of every format ``load_checkpoint`` reads give one clear error
class, CheckpointFileError (and exit status 2 from ``rnnkit convert``), never another exception;
MXNet length fields are bounded by the file before anything is allocated."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.interop import CheckpointFileError, export_weights, to_onnx
from rnnkit.interop.legacy import load_checkpoint
from rnnkit.interop.mxnet_params import read_params, write_params

GARBAGE = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
CUTS = (0.1, 0.5, 0.9)


def lstm():
    torch.manual_seed(0)
    return torch.nn.LSTM(3, 2)


def npz_bytes(tmp_path, compressed=False):
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "ok.npz", **export_weights(lstm(), "chainer"))
    return (tmp_path / "ok.npz").read_bytes()


def broken_deflate():
    """A compressed .npz whose member's deflate stream is overwritten in the middle."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{"upward/W": np.random.default_rng(1).standard_normal(2000)})
    data = bytearray(buf.getvalue())
    info = zipfile.ZipFile(buf).infolist()[0]
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    middle = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    data[middle : middle + 16] = b"\xff" * 16
    return bytes(data)


def params_bytes(tmp_path):
    write_params(
        tmp_path / "ok.params", {"l0_" + k: v for k, v in export_weights(lstm(), "gluon").items()}
    )
    return (tmp_path / "ok.params").read_bytes()


def h5_bytes():
    h5py = pytest.importorskip("h5py", reason="h5py not installed")
    p = export_weights(lstm(), "keras")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for i, name in enumerate(("kernel", "recurrent_kernel", "bias")):
            f.create_dataset(f"layers/lstm/cell/vars/{i}", data=p[name])
    return buf.getvalue()


def keras_bytes(member):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        if member is not None:
            z.writestr("model.weights.h5", member)
    return buf.getvalue()


def onnx_bytes():
    pytest.importorskip("onnx", reason="onnx not installed")
    return to_onnx(lstm()).SerializeToString()


def cases(tmp_path):
    """``{file name: bytes}``: each format cut short, overwritten with noise, or subtly broken
    (``.safetensors`` and ``.pt``, read as plain arrays, only noise and empty)."""
    npz, params, h5 = npz_bytes(tmp_path), params_bytes(tmp_path), h5_bytes()
    out = {}
    for name, data in (
        ("m.npz", npz),
        ("m.params", params),
        ("m.h5", h5),
        ("m.onnx", onnx_bytes()),
    ):
        stem, suffix = name.split(".")
        out[f"{stem}_garbage.{suffix}"] = GARBAGE
        out[f"{stem}_empty.{suffix}"] = b""
        for cut in CUTS:
            out[f"{stem}_cut{int(cut * 100)}.{suffix}"] = data[: int(len(data) * cut)]
    out["m_deflate.npz"] = broken_deflate()
    for suffix in ("safetensors", "pt"):
        out[f"m_garbage.{suffix}"] = GARBAGE
        out[f"m_empty.{suffix}"] = b""
    out["m_garbage.keras"] = GARBAGE
    out["m_no_weights.keras"] = keras_bytes(None)
    out["m_garbage_member.keras"] = keras_bytes(GARBAGE)
    out["m_cut_member.keras"] = keras_bytes(h5[: len(h5) // 2])
    out["m_cut_archive.keras"] = keras_bytes(h5)[:-30]
    return out


@pytest.fixture
def broken_files(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    paths = []
    for name, data in cases(tmp_path).items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def test_every_broken_file_gives_checkpoint_file_error(broken_files):
    failures = {}
    for path in broken_files:
        try:
            load_checkpoint(path)
        except CheckpointFileError as e:
            assert path.name in str(e), f"{path.name}: error does not name the file: {e}"
        except Exception as e:  # noqa: BLE001 - the point: no other exception may escape
            failures[path.name] = f"{type(e).__name__}: {e}"
        else:
            failures[path.name] = "loaded without error"
    assert not failures, failures


def test_convert_reports_broken_files_with_exit_status_2(broken_files, tmp_path, capsys):
    for path in broken_files[::4]:
        out = tmp_path / "out.npz"
        assert main(["convert", str(path), str(out), "--to", "rnnkit"]) == 2, path.name
        assert f"rnnkit: error: {path}" in capsys.readouterr().err
        assert not out.exists()


# ----------------------------------------------------------------- MXNet length fields
HEADER = struct.pack("<QQ", 0x112, 0)
V2 = 0xF993FAC9


def v2_array(shape, flag=0, data=b""):
    return (
        struct.pack("<Iii", V2, 0, len(shape))
        + struct.pack(f"<{len(shape)}q", *shape)
        + struct.pack("<iii", 1, 0, flag)
        + data
    )


ONE = HEADER + struct.pack("<Q", 1)
ONE_FLOAT = ONE + v2_array((1,), data=bytes(4))
MXNET_CASES = {
    "2**60-arrays": (
        HEADER + struct.pack("<Q", 2**60),
        r"at byte 16 claims 1152921504606846976 arrays",
    ),
    "2**60-elements": (
        ONE + v2_array((2**30, 2**30)),
        r"shape \(1073741824, 1073741824\) \(float32\) is 4611686018427387904 bytes, over the limit",
    ),
    "int64-overflowing-size": (
        ONE + v2_array((2**62, 4), flag=1),
        r"is 147573952589676412928 bytes",
    ),
    "data-past-the-end": (
        ONE + v2_array((1000,)) + bytes(40),
        r"needs 4000 bytes, the file has 40 left",
    ),
    "negative-dim": (ONE + v2_array((-4, 2)), r"has shape \(-4, 2\)"),
    "huge-ndim": (
        ONE + struct.pack("<Iii", V2, 0, 2**31 - 1),
        r"has ndim 2147483647; expected 0 to 32",
    ),
    "negative-ndim": (ONE + struct.pack("<Iii", V2, 0, -7), r"has ndim -7"),
    "2**60-name-bytes": (
        ONE_FLOAT + struct.pack("<QQ", 1, 2**60),
        r"claims 1152921504606846976 name bytes",
    ),
    "name-not-utf8": (
        ONE_FLOAT + struct.pack("<QQ", 1, 2) + b"\xff\xfe",
        r"name at byte 68 is not UTF-8",
    ),
    "names-count-mismatch": (ONE_FLOAT + struct.pack("<Q", 2) + bytes(16), r"1 arrays but 2 names"),
    "unknown-dtype": (
        ONE + v2_array((1,), flag=99, data=bytes(4)),
        r"unsupported NDArray dtype flag 99",
    ),
}


@pytest.mark.parametrize("data, message", MXNET_CASES.values(), ids=MXNET_CASES.keys())
def test_mxnet_length_fields_are_bounded(data, message):
    with pytest.raises(CheckpointFileError, match=message):
        read_params(data)


def test_onnx_weights_of_wrong_shape(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    model = to_onnx(lstm())
    for tensor in model.graph.initializer:
        if tensor.name.endswith(".R"):
            tensor.CopyFrom(onnx.numpy_helper.from_array(np.ones((5,), np.float32), tensor.name))
    (tmp_path / "bad.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(
        CheckpointFileError,
        match=r"input R has shape \(5,\); expected \(directions, 4\*hidden, hidden\)",
    ):
        load_checkpoint(tmp_path / "bad.onnx")
