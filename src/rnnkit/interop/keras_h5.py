"""Recurrent-layer weights out of Keras weight files, read with h5py (no Keras needed).

Three on-disk forms:

* Keras 3 ``.weights.h5`` (``model.save_weights``) and the ``model.weights.h5`` inside a ``.keras``
  zip: ``layers/<layer>/cell/vars/{0,1,2}`` = kernel, recurrent kernel, bias (creation order of
  ``LSTMCell.build``); a ``Bidirectional`` keeps ``forward_layer``/``backward_layer`` groups whose
  ``vars`` group carries the wrapped layer's name (``forward_lstm``) in its ``name`` attribute.
* legacy HDF5 (Keras 2 ``save_weights('x.h5')``/``model.save('x.h5')``, Keras 3
  ``model.save('x.h5')``): a ``layer_names`` attribute on the root or on ``model_weights``, each
  layer group with a ``weight_names`` attribute (``lstm/lstm_cell/kernel:0`` in Keras 2,
  ``sequential/lstm/lstm_cell/kernel`` in Keras 3) naming datasets under the group.

Both give ``{"<layer>/kernel": ..., "<layer>/recurrent_kernel": ..., "<layer>/bias": ...}`` with
``<layer>`` the layer's name (``bidirectional/forward_lstm`` inside a ``Bidirectional``), for the
layers that have a recurrent kernel only.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile

import numpy as np

from . import limits
from .archive import open_archive, read_member
from .base import CheckpointFileError

logger = logging.getLogger(__name__)

CELL_VARS = ("kernel", "recurrent_kernel", "bias")
WEIGHTS_MEMBER = "model.weights.h5"


def read_keras(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{"<layer>/<weight>": array}`` of every recurrent layer in a Keras weight file.

    The file is opened read-only and checked whole before any weight is read: every link must be a
    hard link (no soft or external links) and no dataset may keep its data outside the file
    (external storage, virtual datasets); see :func:`check_hdf5`. A ``.keras`` archive's
    ``model.weights.h5`` is read into memory within the limits of :mod:`~rnnkit.interop.archive`;
    its ``config.json`` is never read.
    """
    h5py = _h5py()
    path = os.fspath(path)
    if path.endswith(".keras") or zipfile.is_zipfile(path):
        with open_archive(path) as archive:
            data = read_member(archive, WEIGHTS_MEMBER, path)
        source, where = io.BytesIO(data), f"{path}!{WEIGHTS_MEMBER}"
    else:
        source, where = path, path
    try:
        with h5py.File(source, "r") as f:
            check_hdf5(f, where)
            return _recurrent(_read_weights(f, where))
    except OSError as e:  # h5py's error for files that are not HDF5, or damaged ones
        raise CheckpointFileError(f"{where}: cannot read it as HDF5 ({e})") from e


def _h5py():  # noqa: ANN202 - the optional dependency, imported on first use
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in the 'tasks' extra
        raise ImportError("reading Keras files needs h5py: pip install h5py") from e
    return h5py


def _read_weights(f: object, where: str) -> dict[str, np.ndarray]:
    """The weights of either on-disk form; CheckpointFileError for a file of neither, or one whose
    attributes name groups and datasets it lacks."""
    group = f["model_weights"] if "model_weights" in f else f
    try:
        if "layer_names" in group.attrs:
            return _read_legacy(group, where)
        if "layers" in f:
            return _read_v3(f, where)
    except (KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError) as e:
        raise CheckpointFileError(f"{where}: malformed Keras weight file ({e})") from e
    raise CheckpointFileError(
        f"{where}: no Keras weights found (neither 'layers' nor a 'layer_names' attribute)"
    )


def check_hdf5(f: object, where: str) -> None:
    """CheckpointFileError unless every link in ``f`` is a hard link and every dataset keeps its
    data inside the file. ``visititems`` reaches objects by hard links only (each once, so cycles
    end); each group's own links are then read with ``getlink=True``, never followed."""
    h5py = _h5py()
    objects = [f]
    f.visititems(lambda _, obj: objects.append(obj))
    for obj in objects:
        if isinstance(obj, h5py.Group):
            _check_links(obj, where)
        elif isinstance(obj, h5py.Dataset):
            _check_storage(obj, where)
    logger.debug("%s: %d objects, all stored in the file", where, len(objects))


def _check_links(group: object, where: str) -> None:
    h5py = _h5py()
    for name in group:
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise CheckpointFileError(
                f"{where}: {group.name.rstrip('/')}/{name} is {_describe(link)}; rnnkit reads "
                "only objects stored in the file itself (hard links)"
            )


def _describe(link: object) -> str:
    h5py = _h5py()
    if isinstance(link, h5py.ExternalLink):
        return f"an external link to {link.filename}:{link.path}"
    if isinstance(link, h5py.SoftLink):
        return f"a soft link to {link.path}"
    return f"a {type(link).__name__}"


def _check_storage(obj: object, where: str) -> None:
    """A dataset's data in the file: not virtual, no external storage (its creation property
    list names no external files)."""
    if obj.is_virtual:
        raise CheckpointFileError(
            f"{where}: dataset {obj.name} is a virtual dataset (its data lives in other files); "
            "expected data stored in the file"
        )
    if obj.external:
        files = sorted({os.fsdecode(e[0]) for e in obj.external})
        raise CheckpointFileError(
            f"{where}: dataset {obj.name} keeps its data in external files {files}; "
            "expected data stored in the file"
        )


def _array(dataset: object, where: str) -> np.ndarray:
    """A dataset's data, after checking its size against the limit."""
    h5py = _h5py()
    if not isinstance(dataset, h5py.Dataset):
        raise CheckpointFileError(
            f"{where}: {dataset.name} is a {type(dataset).__name__}, expected a dataset"
        )
    nbytes = dataset.size * dataset.dtype.itemsize
    if nbytes > limits.MAX_ARRAY_BYTES:
        raise CheckpointFileError(
            f"{where}: dataset {dataset.name} of shape {dataset.shape} is {nbytes} bytes, over the "
            f"limit of {limits.MAX_ARRAY_BYTES} (rnnkit.interop.limits.MAX_ARRAY_BYTES)"
        )
    if dataset.dtype.hasobject:
        raise CheckpointFileError(
            f"{where}: dataset {dataset.name} has dtype {dataset.dtype}, expected numbers"
        )
    return np.asarray(dataset[()])


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_legacy(group: object, where: str) -> dict[str, np.ndarray]:
    out = {}
    for layer in (_text(n) for n in group.attrs["layer_names"]):
        g = group[layer]
        for weight in (_text(n) for n in g.attrs.get("weight_names", [])):
            parts = [p for p in weight.split(":")[0].split("/") if not p.endswith("_cell")]
            parts = parts[parts.index(layer) :] if layer in parts else [layer, parts[-1]]
            out["/".join(parts)] = _array(g[weight], where)
    return out


def _read_v3(f: object, where: str) -> dict[str, np.ndarray]:
    out = {}

    def visit(name: str, obj: object) -> None:
        if not name.endswith("cell/vars") or "0" not in obj:
            return
        parts = name.split("/")[:-2]  # drop cell/vars
        names, i = [], 0
        while i < len(parts):
            if parts[i] == "layers" and i + 1 < len(parts):
                names.append(parts[i + 1])
                i += 2
            elif parts[i] in ("forward_layer", "backward_layer"):
                vars_group = f["/".join(parts[: i + 1] + ["vars"])]
                names.append(_text(vars_group.attrs.get("name", parts[i])))
                i += 1
            else:
                i += 1
        layer = "/".join(
            names[-2:] if names and names[-1].startswith(("forward_", "backward_")) else names[-1:]
        )
        for index, weight in enumerate(CELL_VARS):
            if str(index) in obj:
                out[f"{layer}/{weight}"] = _array(obj[str(index)], where)

    f.visititems(visit)
    # h5py lists groups alphabetically; Keras 3 names a model's layers lstm, lstm_1, ... in order
    return dict(sorted(out.items(), key=lambda kv: _natural(kv[0])))


def _natural(key: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _recurrent(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    layers = {k[: -len("/recurrent_kernel")] for k in arrays if k.endswith("/recurrent_kernel")}
    return {k: v for k, v in arrays.items() if k.rsplit("/", 1)[0] in layers}
