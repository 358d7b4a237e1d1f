"""Read recurrent weights out of other frameworks' checkpoint files, and convert between layouts.

:func:`load_checkpoint` returns ``{name: array}`` named as :mod:`rnnkit.interop.layouts` names them
for that framework, ready for ``load_lstm_weights(module, params, layout)``:

* ``.npz`` -> ``chainer`` / ``chainer_nstep``: ``serializers.save_npz`` output, read by
  :mod:`~rnnkit.interop.npz` without pickle (``L.LSTM``'s ``upward``/``lateral``, ``NStepLSTM``'s
  ``{j}/w{n}``);
* ``.h5``, ``.weights.h5``, ``.keras`` -> ``keras``: :mod:`~rnnkit.interop.keras_h5` (h5py);
* ``.params`` -> ``gluon``: :mod:`~rnnkit.interop.mxnet_params` (no MXNet needed);
* ``.onnx`` -> ``onnx``: the LSTM/GRU/RNN nodes of the model (``onnx`` package);
* ``.safetensors``, ``.pt``, other ``.npz``: the arrays as stored (``torch`` names by default).

A file may hold several recurrent layers. ``prefix`` keeps the names under it (as written in the
file: ``"predictor/"``, ``"encoder.rnn."``, Keras layer ``"lstm/"``, ONNX node ``"l1/"``) and strips
it. Then one layer object gives bare names; several give the layout's stacked names (Keras
``lstm_1/kernel``, Chainer ``l2/upward/W``, ONNX ``l1/W``) or, for Gluon and ``chainer_nstep`` whose
one object is already a whole stack, a ValueError listing the candidates for ``prefix``.

Files are untrusted: a file that is truncated, garbled, over a size limit or reaching outside
itself raises :class:`~rnnkit.interop.base.CheckpointFileError` (a ValueError) naming the file and
the part at fault. No format is read with pickle, except torch ``.pt``/``.pth`` state dicts, which
go through torch's restricted ``weights_only`` loader. See ``docs/security.md``.
"""

from __future__ import annotations

import logging
import os
import pickle  # only for the error class torch's weights_only loader raises
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import CheckpointFileError
from .layouts import export_weights, get_layout, load_weights
from .layouts_stacked import gluon_file_names, gluon_key
from .weights import RNNSpec

logger = logging.getLogger(__name__)

Entry = tuple[str, str, np.ndarray]  # (owner as written in the file, layout key, array)
_BY_SUFFIX = {
    ".h5": "keras",
    ".hdf5": "keras",
    ".keras": "keras",
    ".params": "gluon",
    ".onnx": "onnx",
}
_STACKS = {
    "keras": "keep",
    "chainer": "parent",
    "onnx": "keep",
    "gluon": "one",
    "chainer_nstep": "one",
}


def load_checkpoint(
    path: str | os.PathLike, layout: str | None = None, *, prefix: str | None = None
) -> dict[str, np.ndarray]:
    """``{name: array}`` of the recurrent weights in a checkpoint file, named as in ``layout``.

    ``layout`` is guessed from the file when None (``.npz``: Chainer if it holds Chainer names).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    layout = layout or _guess_layout(path)
    get_layout(layout)
    if layout in ("chainer", "chainer_nstep"):
        from .npz import read_npz

        entries = _chainer_entries(read_npz(path), layout)
    elif layout == "keras" and path.suffix in (".h5", ".hdf5", ".keras"):
        from .keras_h5 import read_keras

        entries = [
            (k.rsplit("/", 1)[0] + "/", k.rsplit("/", 1)[1], v) for k, v in read_keras(path).items()
        ]
    elif layout == "gluon" and path.suffix == ".params":
        from .mxnet_params import read_params

        entries = [(*split, v) for k, v in read_params(path).items() if (split := gluon_key(k))]
    elif layout == "onnx" and path.suffix == ".onnx":
        from .onnx_reader import onnx_entries

        entries = onnx_entries(path)
    else:
        return _strip(read_arrays(path), prefix)
    if not entries:
        raise CheckpointFileError(f"{path}: no {layout} recurrent weights found")
    return _select(entries, layout, prefix, path)


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of a ``.npz``, ``.safetensors`` or torch ``.pt``/``.pth`` state-dict file.

    ``.pt``/``.pth`` go through ``torch.load(weights_only=True)``: torch's restricted loader, which
    builds tensors and plain containers only.
    """
    path = Path(path)
    if path.suffix == ".npz":
        from .npz import read_npz

        return read_npz(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix in (".pt", ".pth"):
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
            raise CheckpointFileError(
                f"{path}: not a readable torch state dict of tensors ({_torch_reason(e)})"
            ) from e
        for key in ("state_dict", "model"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise CheckpointFileError(
                f"{path}: holds a {type(obj).__name__}, expected a state dict {{name: tensor}}"
            )
        return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}
    raise ValueError(
        f"{path}: unknown checkpoint format {path.suffix!r}; expected .npz, .h5, "
        ".keras, .params, .onnx, .safetensors or .pt"
    )


def _torch_reason(error: Exception) -> str:
    """The gist of a ``torch.load`` error: the weights-only loader's reason (e.g. ``Unsupported
    global: GLOBAL os.system``) without torch's advice to load unsafely."""
    text = str(error)
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?: Please use|\n|$)", text)
    if m:
        return m.group(1).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointFileError(f"{path}: not a readable safetensors file ({e})") from e


def _guess_layout(path: Path) -> str:
    if path.suffix in _BY_SUFFIX:
        return _BY_SUFFIX[path.suffix]
    if path.suffix == ".npz":
        from .npz import npz_names

        names = npz_names(path)
        if any(re.search(r"(^|/)\d+/w\d+$", n) for n in names):
            return "chainer_nstep"
        if any(n.endswith("upward/W") for n in names):
            return "chainer"
    return "torch"


def _strip(arrays: dict[str, np.ndarray], prefix: str | None) -> dict[str, np.ndarray]:
    if not prefix:
        return arrays
    kept = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    if not kept:
        raise ValueError(
            f"no array name starts with prefix {prefix!r}; names: {sorted(arrays)[:12]}"
        )
    return kept


def _chainer_entries(arrays: dict[str, np.ndarray], layout: str) -> list[Entry]:
    entries = []
    for name, value in arrays.items():
        if layout == "chainer_nstep":
            m = re.fullmatch(r"(.*?)(\d+/[wb]\d+)", name)
        else:
            m = re.fullmatch(r"(.*?)(upward/W|upward/b|lateral/W)", name)
        if m:
            entries.append((m.group(1), m.group(2), value))
    return entries


def _select(
    entries: list[Entry], layout: str, prefix: str | None, path: Path
) -> dict[str, np.ndarray]:
    if prefix:
        entries = [(o[len(prefix) :], k, v) for o, k, v in entries if o.startswith(prefix)]
        if not entries:
            raise ValueError(f"{path}: no {layout} recurrent weights under prefix {prefix!r}")
    owners = list(dict.fromkeys(o for o, _, _ in entries))
    if len(owners) == 1:
        return {k: v for _, k, v in entries}
    rule = _STACKS[layout]
    if rule == "one":
        raise ValueError(
            f"{path}: several {layout} recurrent layers ({owners}); pass prefix= one of them"
        )
    if rule == "parent":
        parent = os.path.commonprefix(owners)
        parent = parent[: parent.rfind("/") + 1]
        return {o[len(parent) :] + k: v for o, k, v in entries}
    if layout == "keras":
        names = _keras_names(owners, {o: v for o, k, v in entries if k == "recurrent_kernel"})
        return {names[o] + k: v for o, k, v in entries}
    return {o + k: v for o, k, v in entries}


def _keras_names(owners: list[str], kernels: dict[str, np.ndarray]) -> dict[str, str]:
    """Rename Keras layers, in model order, to the default names of a fresh session (``lstm``,
    ``lstm_1``; ``bidirectional/forward_lstm``, ``bidirectional_1/forward_lstm_1``): the names in a
    file depend on how many layers the session had built before."""
    layers = list(dict.fromkeys(re.sub(r"/(forward|backward)_[^/]+/$", "/", o) for o in owners))
    names = {}
    for o in owners:
        outer = re.sub(r"/(forward|backward)_[^/]+/$", "/", o)
        k = layers.index(outer)
        rk = kernels[o]
        base = {4: "lstm", 3: "gru", 1: "simple_rnn"}.get(rk.shape[1] // max(rk.shape[0], 1), "rnn")
        name = base if k == 0 else f"{base}_{k}"
        m = re.search(r"/(forward|backward)_[^/]+/$", o)
        if m:
            wrapper = "bidirectional" if k == 0 else f"bidirectional_{k}"
            names[o] = f"{wrapper}/{m.group(1)}_{name}/"
        else:
            names[o] = name + "/"
    return names


def build_module(spec: RNNSpec) -> object:
    """An rnnkit layer (a torch.nn subclass) of ``spec``, to load weights into."""
    from .. import layers

    common = dict(num_layers=spec.num_layers, bias=spec.bias, bidirectional=spec.bidirectional)
    if spec.mode == "LSTM":
        return layers.LSTM(
            spec.input_size,
            spec.hidden_size,
            proj_size=spec.proj_size,
            peephole=spec.peephole,
            **common,
        )
    if spec.mode == "GRU":
        return layers.GRU(spec.input_size, spec.hidden_size, **common)
    return layers.RNN(
        spec.input_size,
        spec.hidden_size,
        nonlinearity="relu" if spec.mode == "RNN_RELU" else "tanh",
        **common,
    )


def convert_file(
    src: str | os.PathLike,
    from_layout: str | None,
    to_layout: str,
    out: str | os.PathLike,
    *,
    prefix: str | None = None,
    nonlinearity: str = "tanh",
    bidirectional: bool | None = None,
) -> Path:
    """Convert the recurrent weights in ``src`` to ``to_layout`` and write them to ``out``.

    ``to_layout="rnnkit"`` writes the state dict of the equivalent rnnkit layer (torch names). The
    format of ``out`` follows its suffix: ``.npz``, ``.safetensors``, ``.pt``, ``.params`` (MXNet,
    loadable by Gluon's ``load_parameters``) or ``.onnx`` (a runnable model via :func:`to_onnx`).
    ``nonlinearity`` and ``bidirectional`` settle what the arrays cannot tell (vanilla RNNs; Chainer
    stacks whose input and hidden sizes agree). Returns ``out`` as a Path.
    """
    params = load_checkpoint(src, from_layout, prefix=prefix)
    from_layout = from_layout or _guess_layout(Path(src))
    hints = {"nonlinearity": nonlinearity} | (
        {} if bidirectional is None else {"bidirectional": bidirectional}
    )
    spec = get_layout(from_layout).infer(params, **hints)
    module = build_module(spec)
    load_weights(module, params, from_layout)
    out = Path(out)
    if out.suffix == ".onnx":
        from .onnx import to_onnx

        if to_layout not in ("onnx", "rnnkit", "torch"):
            raise ValueError(f"an .onnx file holds the 'onnx' layout, not {to_layout!r}")
        to_onnx(module, None, out)
        return out
    arrays = export_weights(module, "torch" if to_layout == "rnnkit" else to_layout)
    save_arrays(out, arrays, to_layout, spec)
    logger.info("converted %s (%s, %s) to %s (%s)", src, from_layout, spec, out, to_layout)
    return out


def save_arrays(out: Path, arrays: Mapping[str, np.ndarray], layout: str, spec: RNNSpec) -> None:
    """Write ``arrays`` in the format of ``out``'s suffix."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    if out.suffix == ".npz":
        np.savez(out, **arrays)
    elif out.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(arrays, str(out))
    elif out.suffix in (".pt", ".pth"):
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, out)
    elif out.suffix == ".params":
        from .mxnet_params import write_params

        write_params(out, gluon_file_names(spec, arrays) if layout == "gluon" else arrays)
    else:
        raise ValueError(
            f"{out}: unknown output format {out.suffix!r}; expected .npz, "
            ".safetensors, .pt, .params or .onnx"
        )
