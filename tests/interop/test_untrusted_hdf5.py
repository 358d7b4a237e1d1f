"""Keras HDF5 files that reach outside themselves: external storage, external and soft links,
virtual datasets. Each is refused with an error naming the file and the object, before any data is
read, by ``load_checkpoint`` and by ``rnnkit convert``."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.interop import CheckpointFileError
from rnnkit.interop.legacy import load_checkpoint

h5py = pytest.importorskip("h5py", reason="h5py not installed")

H, C = 2, 3
SECRET = b"root:x:0:0:root:/root:/bin/bash\n" * 4


def weights():
    rng = np.random.default_rng(0)
    return {
        "0": rng.standard_normal((C, 4 * H)).astype(np.float32),
        "1": rng.standard_normal((H, 4 * H)).astype(np.float32),
        "2": rng.standard_normal((4 * H,)).astype(np.float32),
    }


def keras3_file(target, tamper=None):
    """A Keras 3 ``.weights.h5`` with one LSTM; ``tamper(file, vars_group)`` then edits it."""
    with h5py.File(target, "w") as f:
        cell = f.create_group("layers/lstm/cell/vars")
        for name, value in weights().items():
            cell.create_dataset(name, data=value)
        if tamper is not None:
            tamper(f, cell)
    return target


def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET)
    return path


def test_clean_file_loads(tmp_path):
    params = load_checkpoint(keras3_file(tmp_path / "ok.weights.h5"))
    np.testing.assert_array_equal(params["recurrent_kernel"], weights()["1"])


def test_external_storage_refused(tmp_path):
    """The probe's file: a dataset whose bytes live in another file (here a stand-in for
    /etc/passwd) read back as a weight."""
    secret = secret_file(tmp_path)

    def tamper(f, cell):
        del cell["1"]
        cell.create_dataset(
            "1", shape=(len(SECRET),), dtype="u1", external=[(secret, 0, len(SECRET))]
        )

    path = keras3_file(tmp_path / "ext.weights.h5", tamper)
    with pytest.raises(
        CheckpointFileError,
        match=r"ext\.weights\.h5: dataset /layers/lstm/cell/vars/1 keeps its data in external files",
    ) as e:
        load_checkpoint(path)
    assert "secret.txt" in str(e.value)


def test_convert_refuses_external_storage_and_writes_nothing(tmp_path, capsys):
    secret = secret_file(tmp_path)

    def tamper(f, cell):
        f.create_dataset(
            "stolen", shape=(len(SECRET),), dtype="u1", external=[(secret, 0, len(SECRET))]
        )

    path = keras3_file(tmp_path / "ext.weights.h5", tamper)
    out = tmp_path / "out.npz"
    assert main(["convert", str(path), str(out), "--to", "rnnkit"]) == 2
    assert "dataset /stolen keeps its data in external files" in capsys.readouterr().err
    assert not out.exists()


def test_external_link_refused_not_followed(tmp_path):
    other = keras3_file(tmp_path / "other.h5")

    def tamper(f, cell):
        del cell["0"]
        cell["0"] = h5py.ExternalLink(str(other), "/layers/lstm/cell/vars/0")

    path = keras3_file(tmp_path / "link.weights.h5", tamper)
    with pytest.raises(
        CheckpointFileError,
        match=r"link\.weights\.h5: /layers/lstm/cell/vars/0 is an external link to .*other\.h5",
    ):
        load_checkpoint(path)


def test_external_link_to_missing_file_refused_by_name(tmp_path):
    """Refused from the link itself: the target is never opened (it does not even exist)."""

    def tamper(f, cell):
        f["elsewhere"] = h5py.ExternalLink("/no/such/file.h5", "/x")

    path = keras3_file(tmp_path / "dangling.weights.h5", tamper)
    with pytest.raises(
        CheckpointFileError, match=r"/elsewhere is an external link to /no/such/file\.h5:/x"
    ):
        load_checkpoint(path)


def test_soft_link_refused(tmp_path):
    def tamper(f, cell):
        f.create_dataset("decoy", data=np.zeros((H, 4 * H), np.float32))
        del cell["1"]
        cell["1"] = h5py.SoftLink("/decoy")

    path = keras3_file(tmp_path / "soft.weights.h5", tamper)
    with pytest.raises(
        CheckpointFileError, match=r"/layers/lstm/cell/vars/1 is a soft link to /decoy"
    ):
        load_checkpoint(path)


def test_virtual_dataset_refused(tmp_path):
    source = keras3_file(tmp_path / "source.h5")

    def tamper(f, cell):
        layout = h5py.VirtualLayout(shape=(H, 4 * H), dtype="f4")
        layout[:] = h5py.VirtualSource(str(source), "/layers/lstm/cell/vars/1", shape=(H, 4 * H))
        del cell["1"]
        cell.create_virtual_dataset("1", layout)

    path = keras3_file(tmp_path / "virtual.weights.h5", tamper)
    with pytest.raises(
        CheckpointFileError, match=r"dataset /layers/lstm/cell/vars/1 is a virtual dataset"
    ):
        load_checkpoint(path)


def test_keras_archive_with_external_storage_refused(tmp_path):
    """The same check applies to the model.weights.h5 inside a .keras zip (read in memory)."""
    secret = secret_file(tmp_path)

    def tamper(f, cell):
        f.create_dataset(
            "stolen", shape=(len(SECRET),), dtype="u1", external=[(secret, 0, len(SECRET))]
        )

    inner = keras3_file(io.BytesIO(), tamper)
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", inner.getvalue())
    with pytest.raises(
        CheckpointFileError,
        match=r"m\.keras!model\.weights\.h5: dataset /stolen keeps its data in external files",
    ):
        load_checkpoint(path)


def test_file_is_opened_read_only(tmp_path):
    path = keras3_file(tmp_path / "ro.weights.h5")
    path.chmod(0o444)
    before = path.read_bytes()
    load_checkpoint(path)
    assert path.read_bytes() == before


def test_hard_link_cycle_is_walked_once(tmp_path):
    """A group hard-linked inside itself: the check visits each object once and ends."""

    def tamper(f, cell):
        f["layers/lstm/loop"] = f["layers"]

    params = load_checkpoint(keras3_file(tmp_path / "cycle.weights.h5", tamper))
    np.testing.assert_array_equal(params["kernel"], weights()["0"])
