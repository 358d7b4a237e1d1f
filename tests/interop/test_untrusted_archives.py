"""Zip archives from users (``.keras``, ``.npz``): size and ratio limits checked before a member is
decompressed, bounded reads, unsafe member names, and ``.npz`` without pickle."""

from __future__ import annotations

import io
import pathlib
import zipfile

import numpy as np
import pytest

from rnnkit.interop import CheckpointFileError, archive, limits
from rnnkit.interop.archive import read_bounded
from rnnkit.interop.legacy import load_checkpoint, read_arrays

MiB = 2**20


def refuse_reads(monkeypatch):
    """Make any member read fail the test: refusals must come from the declared sizes alone."""

    def no_read(*args, **kwargs):
        raise AssertionError("a member was decompressed before the limits were checked")

    monkeypatch.setattr(archive, "read_bounded", no_read)


def zeros_member(path, name, size):
    """An archive whose member ``name`` is ``size`` zero bytes, written in chunks (low memory)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(name, "w", force_zip64=True) as f:
            chunk = bytes(MiB)
            for _ in range(size // MiB):
                f.write(chunk)
    return path


def test_keras_zip_bomb_refused_before_reading(tmp_path, monkeypatch):
    """The probe's case: a small .keras whose model.weights.h5 inflates ~1000x (200 MB here)."""
    path = zeros_member(tmp_path / "bomb.keras", "model.weights.h5", 200 * MiB)
    assert path.stat().st_size < 1 * MiB
    refuse_reads(monkeypatch)
    with pytest.raises(
        CheckpointFileError,
        match=r"bomb\.keras: archive member 'model\.weights\.h5' expands .* likely zip bomb",
    ):
        load_checkpoint(path)


def test_member_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.weights.h5", bytes(4096))
    monkeypatch.setattr(limits, "MAX_MEMBER_BYTES", 1000)
    refuse_reads(monkeypatch)
    with pytest.raises(
        CheckpointFileError, match=r"declares 4096 bytes uncompressed, over the limit of 1000"
    ):
        load_checkpoint(path)


def test_npz_bomb_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "RATIO_FREE_BYTES", MiB)
    path = zeros_member(tmp_path / "bomb.npz", "upward/W.npy", 4 * MiB)
    refuse_reads(monkeypatch)
    with pytest.raises(CheckpointFileError, match=r"member 'upward/W\.npy' expands"):
        load_checkpoint(path, "chainer")


def test_compressible_but_small_members_pass(tmp_path):
    """Below RATIO_FREE_BYTES the ratio is not checked: real files of zeros still load."""
    np.savez_compressed(tmp_path / "z.npz", a=np.zeros(100_000, np.float32))
    assert read_arrays(tmp_path / "z.npz")["a"].shape == (100_000,)


def test_bounded_read_stops_at_declared_size():
    with pytest.raises(CheckpointFileError, match="member: more than the 5 bytes it declares"):
        read_bounded(io.BytesIO(b"x" * 100), 5, "member")
    with pytest.raises(CheckpointFileError, match="member: only 3 of the 5 bytes it declares"):
        read_bounded(io.BytesIO(b"xyz"), 5, "member")
    assert read_bounded(io.BytesIO(b"xyz"), 3, "member") == b"xyz"


@pytest.mark.parametrize(
    "name", ["../evil.npy", "/abs/evil.npy", "a/../../evil.npy", "C:\\evil.npy", "..\\evil.npy"]
)
@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_unsafe_member_names_refused(tmp_path, name, suffix):
    path = tmp_path / f"names{suffix}"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.weights.h5", b"")
        z.writestr(name, b"")
    with pytest.raises(CheckpointFileError, match="has an absolute path or '..'"):
        load_checkpoint(path, "chainer" if suffix == ".npz" else None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing extracted


def test_duplicate_member_names_refused(tmp_path):
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("a.npy", b"")
        z.writestr("a.npy", b"")
    with pytest.raises(CheckpointFileError, match="'a.npy' appears twice"):
        read_arrays(path)


class Payload:
    """Unpickling this object would create a file: proof that nothing was unpickled."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (self.target,))


@pytest.mark.parametrize("layout", ["chainer", None])
def test_npz_object_arrays_are_not_unpickled(tmp_path, layout):
    marker = tmp_path / "unpickled"
    arrays = {
        "upward/W": np.ones((8, 3), np.float32),
        "lateral/W": np.array([Payload(marker)], dtype=object),
    }
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(CheckpointFileError, match=r"array 'lateral/W\.npy' holds Python objects"):
        load_checkpoint(tmp_path / "evil.npz", layout)
    assert not marker.exists()


def test_pt_with_code_is_refused_and_not_run(tmp_path):
    """``.pt`` inputs go through torch's weights-only loader: a pickled callable is refused."""
    torch = pytest.importorskip("torch")
    marker = tmp_path / "unpickled"
    torch.save({"weight": torch.ones(2), "payload": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointFileError, match=r"evil\.pt: .*\(Unsupported global: GLOBAL \w+"):
        read_arrays(tmp_path / "evil.pt")
    assert not marker.exists()


def npy_bytes(header, body):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + body


def test_npz_header_claiming_huge_shape_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**60,)}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("upward/W.npy", npy_bytes(header, bytes(64)))
    with pytest.raises(
        CheckpointFileError,
        match=r"shape \(1152921504606846976,\) of float64 is 9223372036854775808 bytes, over the limit",
    ):
        load_checkpoint(path, "chainer")


def test_npz_header_and_data_size_must_agree(tmp_path):
    path = tmp_path / "short.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (4, 4)}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("upward/W.npy", npy_bytes(header, bytes(16)))
    with pytest.raises(
        CheckpointFileError,
        match=r"header says shape \(4, 4\) of float32 \(64 bytes\), 16 bytes follow it",
    ):
        load_checkpoint(path, "chainer")
