"""Pickle-free, atomic training checkpoints.

Layout of a run directory::

    RUN_DIR/checkpoints/
      step-000120/             one directory per checkpoint, named by the global step
        model.safetensors      the model's state_dict (tied weights stored once, aliases in
                               the metadata)
        optimizer.safetensors  optimizer state tensors, named by path ("optimizer.state.0.step")
        state.safetensors      per-rank tensors: torch/CUDA RNG states (uint8), carried hidden state
        trainer.json           step, data position, schedule, best metric, configs, task state,
                               Python/NumPy RNG states, and the structure that rebuilds the
                               optimizer state dict and the per-rank state around the tensors
      latest.json              {"path": "step-000120", "step": 120}
      best.json                the checkpoint with the best validation loss (kept by pruning)

Writes are atomic: every file goes into a temporary directory beside the final one, is fsynced, and
the directory is renamed into place; only then is ``latest.json`` replaced (temporary file +
``os.replace``). A crash at any point leaves the previous checkpoint and pointer intact. Loading
checks that all files exist and that keys and shapes match the model and optimizer, raising
``CheckpointError`` naming the file and the key -- there is no partial load.

Nested state (the optimizer's state dict, RNG states, the carried hidden state) is split into JSON
and tensors by ``tree.encode_tree``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from .atomic import fsync_dir, write_bytes, write_json_atomic
from .tree import decode_tree, encode_tree

logger = logging.getLogger(__name__)

FORMAT = "rnnkit-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.safetensors"
META_FILE = "trainer.json"
FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, META_FILE)
_ALIASES_KEY = "rnnkit.aliases"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not match the model/optimizer."""


def _write_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    # safetensors refuses tensors that share memory (views of one buffer, e.g. an LSTM's (h, c)
    # cut from one tensor): copy all but the first user of each storage.
    seen: set[int] = set()
    for name, t in tensors.items():
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            tensors[name] = t.clone()
        seen.add(ptr)
    # Never empty metadata: safetensors 0.8 writes an unreadable header for ({}, {}).
    write_bytes(path, safetensors_save(tensors, metadata={"format": "pt", **metadata}))


# --------------------------------------------------------------------------- model tensors


def _model_tensors(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, aliases)``: the state_dict, tensors sharing memory (tied weights) stored once."""
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in model.state_dict().items():
        if t.numel() > 0:
            key = (
                t.untyped_storage().data_ptr(),
                t.storage_offset(),
                tuple(t.shape),
                t.stride(),
                t.dtype,
            )
            if key in seen:
                aliases[name] = seen[key]
                continue
            seen[key] = name
        tensors[name] = t.detach().to("cpu").contiguous()
    return tensors, aliases


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except Exception as e:  # SafetensorError, OSError, ...
        raise CheckpointError(f"cannot read {path}: {e}") from e
    return tensors, metadata


def load_model_weights(checkpoint: str | os.PathLike, model: nn.Module) -> None:
    """Load ``model.safetensors`` from a checkpoint directory into ``model`` (strict).

    Raises CheckpointError naming the file and the first missing, unexpected or mis-shaped key.
    """
    path = Path(checkpoint) / MODEL_FILE
    tensors, metadata = _read_safetensors(path)
    try:
        aliases = json.loads(metadata.get(_ALIASES_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt {_ALIASES_KEY} metadata: {e}") from e
    for alias, name in aliases.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: alias {alias!r} points to missing key {name!r}")
        tensors[alias] = tensors[name]
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise CheckpointError(
            f"{path}: missing key {missing[0]!r} (model expects shape "
            f"{tuple(expected[missing[0]].shape)}); {len(missing)} missing in all"
        )
    if unexpected:
        raise CheckpointError(
            f"{path}: unexpected key {unexpected[0]!r} not in the model; "
            f"{len(unexpected)} unexpected in all"
        )
    for k, t in expected.items():
        if tuple(tensors[k].shape) != tuple(t.shape):
            raise CheckpointError(
                f"{path}: key {k!r} has shape {tuple(tensors[k].shape)}, "
                f"the model expects {tuple(t.shape)}"
            )
    model.load_state_dict(tensors, strict=True)


# --------------------------------------------------------------------------- optimizer


def _check_optimizer_state(path: Path, saved: dict, optimizer: torch.optim.Optimizer) -> None:
    current = optimizer.state_dict()
    groups, cur_groups = saved.get("param_groups", []), current["param_groups"]
    if len(groups) != len(cur_groups):
        raise CheckpointError(
            f"{path}: {len(groups)} parameter groups in the checkpoint, the optimizer has "
            f"{len(cur_groups)}"
        )
    live = [p for g in optimizer.param_groups for p in g["params"]]
    saved_ids = [i for g in groups for i in g["params"]]
    for i, (g, cg) in enumerate(zip(groups, cur_groups)):
        if len(g["params"]) != len(cg["params"]):
            raise CheckpointError(
                f"{path}: parameter group {i} has {len(g['params'])} parameters in the checkpoint, "
                f"the optimizer has {len(cg['params'])}"
            )
        if set(g) != set(cg):
            diff = sorted(set(g) ^ set(cg))
            raise CheckpointError(
                f"{path}: parameter group {i} hyper-parameter keys differ ({diff}): "
                "was it written by another optimizer?"
            )
    params: dict[Any, Tensor] = dict(zip(saved_ids, live))
    for pid, entry in saved.get("state", {}).items():
        if pid not in params:
            raise CheckpointError(f"{path}: state for unknown parameter id {pid!r}")
        p = params[pid]
        for key, value in entry.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != p.shape:
                raise CheckpointError(
                    f"{path}: key 'state.{pid}.{key}' has shape {tuple(value.shape)}, "
                    f"its parameter has shape {tuple(p.shape)}"
                )


# --------------------------------------------------------------------------- save / load


@dataclass
class LoadedCheckpoint:
    """What ``load_checkpoint`` read: the directory, trainer.json's contents (``meta``) and the
    per-rank states (``ranks[r]``: whatever the trainer saved, tensors on the CPU)."""

    path: Path
    meta: dict[str, Any]
    ranks: list[Any] = field(default_factory=list)


def _decode(skeleton: Any, tensors: dict[str, Tensor], source: Path) -> Any:
    try:
        return decode_tree(skeleton, tensors, str(source))
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{source} does not match {META_FILE}: {e}") from e


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    ranks: list[Any],
    *,
    keep_last: int | None = None,
    best: dict[str, Any] | None = None,
) -> Path:
    """Write ``RUN_DIR/checkpoints/step-XXXXXX`` atomically and point ``latest.json`` at it.

    Args:
        meta: JSON-able trainer state (step, data position, schedule, configs, task state...).
        ranks: one nested state per process (RNG states, carried hidden state), stored with
            ``encode_tree``.
        keep_last: delete older step directories beyond the newest K (never the best one).
        best: when given, ``best.json`` points at this checkpoint with these fields (e.g. the loss).
    Returns:
        The checkpoint directory.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    name = step_dir_name(step)
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    old: Path | None = None
    try:
        model_tensors, aliases = _model_tensors(model)
        _write_safetensors(tmp / MODEL_FILE, model_tensors, {_ALIASES_KEY: json.dumps(aliases)})
        opt_skeleton, opt_tensors = encode_tree(optimizer.state_dict(), "optimizer")
        _write_safetensors(tmp / OPTIMIZER_FILE, opt_tensors, {})
        rank_skeletons, state_tensors = [], {}
        for r, rank_state in enumerate(ranks):
            skeleton, tensors = encode_tree(rank_state, f"rank{r}")
            rank_skeletons.append(skeleton)
            state_tensors.update(tensors)
        _write_safetensors(tmp / STATE_FILE, state_tensors, {})
        document = {
            "format": FORMAT,
            "version": VERSION,
            **meta,
            "step": step,
            "optimizer_class": type(optimizer).__name__,
            "optimizer": opt_skeleton,
            "ranks": rank_skeletons,
        }
        write_bytes(tmp / META_FILE, json.dumps(document, indent=1).encode("utf-8"))
        fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. the final save right after a resume)
            old = root / f".old-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    write_json_atomic(root / "latest.json", {"path": name, "step": step})
    if best is not None:
        write_json_atomic(root / "best.json", {"path": name, "step": step, **best})
    if keep_last is not None:
        prune_checkpoints(run_dir, keep_last)
    logger.info("saved checkpoint %s", final)
    return final


def _remove_stale_temporaries(root: Path) -> None:
    """Temporary directories left by a crash mid-write (never referenced by a pointer)."""
    for p in root.iterdir():
        if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(".old-")):
            shutil.rmtree(p, ignore_errors=True)


def _checkpoints_root(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    return path if path.name == "checkpoints" else path / "checkpoints"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete step directories of a run, oldest first."""
    root = _checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and all((p / f).is_file() for f in FILES):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def _read_pointer(root: Path, name: str) -> Path | None:
    pointer = root / name
    if not pointer.is_file():
        return None
    try:
        target = root / json.loads(pointer.read_text(encoding="utf-8"))["path"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        logger.warning("ignoring unreadable %s: %s", pointer, e)
        return None
    if not all((target / f).is_file() for f in FILES):
        logger.warning("%s points to incomplete %s", pointer, target)
        return None
    return target


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest.json`` points to; if that pointer is missing or broken, the newest
    complete step directory; None when the run has no checkpoint."""
    root = _checkpoints_root(run_dir)
    target = _read_pointer(root, "latest.json")
    if target is not None:
        return target
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``best.json`` points to, or None."""
    return _read_pointer(_checkpoints_root(run_dir), "best.json")


def resolve_checkpoint(path: str | os.PathLike, which: str = "latest") -> Path:
    """A checkpoint directory from a step directory, a run directory or its checkpoints/ folder.

    ``which`` is 'latest' or 'best' for the latter two. Raises CheckpointError when none is found.
    """
    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    found = latest_checkpoint(path) if which == "latest" else best_checkpoint(path)
    if found is None:
        raise CheckpointError(f"no {which} checkpoint under {_checkpoints_root(path)}")
    return found


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int) -> None:
    """Delete step directories except the newest ``keep_last``, the latest and the best."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    root = _checkpoints_root(run_dir)
    keep = {p.name for p in list_checkpoints(run_dir)[-keep_last:]}
    for pointer in ("latest.json", "best.json"):
        target = _read_pointer(root, pointer)
        if target is not None:
            keep.add(target.name)
    for p in root.iterdir():
        if _STEP_DIR.match(p.name) and p.is_dir() and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(
    checkpoint: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> LoadedCheckpoint:
    """Read a checkpoint directory (or the latest one of a run directory).

    Loads the weights into ``model`` and the state into ``optimizer`` when they are given, after
    checking every key and shape; returns trainer.json (``meta``) and the decoded per-rank states.
    Raises CheckpointError naming the file at fault.
    """
    path = resolve_checkpoint(checkpoint)
    for f in FILES:
        if not (path / f).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {f} is missing")
    meta_path = path / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {meta_path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not an rnnkit checkpoint (format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{meta_path}: version {meta.get('version')}, expected {VERSION}")
    state_tensors, _ = _read_safetensors(path / STATE_FILE)
    ranks = [_decode(s, state_tensors, path / STATE_FILE) for s in meta.pop("ranks", [])]
    opt_skeleton = meta.pop("optimizer", None)
    if model is not None:
        load_model_weights(path, model)
    if optimizer is not None:
        opt_path = path / OPTIMIZER_FILE
        saved_class = meta.get("optimizer_class")
        if saved_class != type(optimizer).__name__:
            raise CheckpointError(
                f"{opt_path}: written by {saved_class}, the optimizer is {type(optimizer).__name__}"
            )
        opt_tensors, _ = _read_safetensors(opt_path)
        saved = _decode(opt_skeleton, opt_tensors, opt_path)
        _check_optimizer_state(opt_path, saved, optimizer)
        optimizer.load_state_dict(saved)
    return LoadedCheckpoint(path=path, meta=meta, ranks=ranks)
