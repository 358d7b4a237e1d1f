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
import os
import re
import zipfile

import numpy as np

from .archive import open_archive, read_member

CELL_VARS = ("kernel", "recurrent_kernel", "bias")
WEIGHTS_MEMBER = "model.weights.h5"


def read_keras(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{"<layer>/<weight>": array}`` of every recurrent layer in a Keras weight file."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in the 'data' extra
        raise ImportError("reading Keras files needs h5py: pip install h5py") from e
    path = os.fspath(path)
    if path.endswith(".keras") or zipfile.is_zipfile(path):
        with open_archive(path) as archive:
            data = io.BytesIO(read_member(archive, WEIGHTS_MEMBER, path))
        with h5py.File(data, "r") as f:
            return _recurrent(_read_v3(f))
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in group.attrs:
            return _recurrent(_read_legacy(group))
        if "layers" in f:
            return _recurrent(_read_v3(f))
    raise ValueError(
        f"{path}: no Keras weights found (neither 'layers' nor a 'layer_names' attribute)"
    )


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_legacy(group: object) -> dict[str, np.ndarray]:
    out = {}
    for layer in (_text(n) for n in group.attrs["layer_names"]):
        g = group[layer]
        for weight in (_text(n) for n in g.attrs.get("weight_names", [])):
            parts = [p for p in weight.split(":")[0].split("/") if not p.endswith("_cell")]
            parts = parts[parts.index(layer) :] if layer in parts else [layer, parts[-1]]
            out["/".join(parts)] = np.asarray(g[weight])
    return out


def _read_v3(f: object) -> dict[str, np.ndarray]:
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
                out[f"{layer}/{weight}"] = np.asarray(obj[str(index)])

    f.visititems(visit)
    # h5py lists groups alphabetically; Keras 3 names a model's layers lstm, lstm_1, ... in order
    return dict(sorted(out.items(), key=lambda kv: _natural(kv[0])))


def _natural(key: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _recurrent(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    layers = {k[: -len("/recurrent_kernel")] for k in arrays if k.endswith("/recurrent_kernel")}
    return {k: v for k, v in arrays.items() if k.rsplit("/", 1)[0] in layers}
