"""Writing a checkpoint: every file into a temporary folder beside the final one (the manifest
last), fsynced, renamed into place, and only then ``latest.json`` (and ``best.json``) replaced. A
crash at any point leaves the previous checkpoint and pointers intact; a failed write (a full disk)
raises ``CheckpointWriteError`` saying so."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from ..atomic import fsync_dir, write_bytes, write_json_atomic
from ..tree import encode_tree
from .layout import (
    ALIASES_KEY,
    BEST_POINTER,
    CHECKPOINTS_DIR,
    FORMAT,
    LATEST_POINTER,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    VERSION,
    CheckpointWriteError,
    step_dir_name,
)
from .pointers import latest_checkpoint, prune_checkpoints
from .verify import digest

logger = logging.getLogger(__name__)


def _write_safetensors(
    path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]
) -> dict[str, Any]:
    """Write the file; returns its digest (sha256 and size)."""
    # safetensors refuses tensors that share memory (views of one buffer, e.g. an LSTM's (h, c)
    # cut from one tensor): copy all but the first user of each storage.
    seen: set[int] = set()
    for name, t in tensors.items():
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            tensors[name] = t.clone()
        seen.add(ptr)
    # Never empty metadata: safetensors 0.8 writes an unreadable header for ({}, {}).
    data = safetensors_save(tensors, metadata={"format": "pt", **metadata})
    write_bytes(path, data)
    return digest(data)


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


def _write_manifest(directory: Path, digests: dict[str, dict[str, Any]]) -> None:
    document = {"format": MANIFEST_FORMAT, "version": 1, "algorithm": "sha256", "files": digests}
    write_bytes(directory / MANIFEST_FILE, json.dumps(document, indent=1).encode("utf-8"))


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
    Raises:
        CheckpointWriteError: a write failed (e.g. the disk is full); the message says which
            checkpoint is still intact.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    name = step_dir_name(step)
    final = root / name
    previous = latest_checkpoint(run_dir) if root.is_dir() else None
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(root)
        _write_step_dir(root, final, model, optimizer, {**meta, "step": step}, ranks)
    except OSError as e:
        raise _write_error(final, previous, e) from e
    try:
        write_json_atomic(root / LATEST_POINTER, {"path": name, "step": step})
        if best is not None:
            point_best(run_dir, step, best)
    except OSError as e:
        raise CheckpointWriteError(
            f"checkpoint {final} was written but its pointer could not be updated: {e}"
            f"{_full_disk_hint(e)}; the pointers still name the previous checkpoints, which are "
            "intact",
            e.errno,
        ) from e
    if keep_last is not None:
        prune_checkpoints(run_dir, keep_last)
    logger.info("saved checkpoint %s", final)
    return final


def _write_step_dir(
    root: Path,
    final: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    ranks: list[Any],
) -> None:
    """Every file into a temporary directory (the manifest last), fsynced, then renamed to
    ``final``; on any error the temporary directory is removed and ``final`` left as it was."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    old: Path | None = None
    try:
        digests = {}
        model_tensors, aliases = _model_tensors(model)
        digests[MODEL_FILE] = _write_safetensors(
            tmp / MODEL_FILE, model_tensors, {ALIASES_KEY: json.dumps(aliases)}
        )
        opt_skeleton, opt_tensors = encode_tree(optimizer.state_dict(), "optimizer")
        digests[OPTIMIZER_FILE] = _write_safetensors(tmp / OPTIMIZER_FILE, opt_tensors, {})
        rank_skeletons, state_tensors = [], {}
        for r, rank_state in enumerate(ranks):
            skeleton, tensors = encode_tree(rank_state, f"rank{r}")
            rank_skeletons.append(skeleton)
            state_tensors.update(tensors)
        digests[STATE_FILE] = _write_safetensors(tmp / STATE_FILE, state_tensors, {})
        document = {
            "format": FORMAT,
            "version": VERSION,
            **meta,
            "optimizer_class": type(optimizer).__name__,
            "optimizer": opt_skeleton,
            "ranks": rank_skeletons,
        }
        data = json.dumps(document, indent=1).encode("utf-8")
        write_bytes(tmp / META_FILE, data)
        digests[META_FILE] = digest(data)
        _write_manifest(tmp, digests)
        fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. the final save right after a resume)
            old = root / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _full_disk_hint(e: OSError) -> str:
    return " (the disk is full)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""


def _write_error(final: Path, previous: Path | None, e: OSError) -> CheckpointWriteError:
    kept = (
        f"the previous checkpoint {previous} is intact"
        if previous is not None
        else "no earlier checkpoint exists"
    )
    return CheckpointWriteError(
        f"could not write checkpoint {final}: {e}{_full_disk_hint(e)}; nothing was replaced and "
        f"{kept}",
        e.errno,
    )


def _remove_stale_temporaries(root: Path) -> None:
    """Temporary directories left by a crash mid-write (never referenced by a pointer)."""
    for p in root.iterdir():
        if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(".old-")):
            shutil.rmtree(p, ignore_errors=True)


def point_best(run_dir: str | os.PathLike, step: int, best: dict[str, Any]) -> None:
    """Point ``best.json`` at the existing checkpoint of ``step`` with the fields ``best`` (e.g.
    its loss re-measured on the whole validation split); written atomically."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    name = step_dir_name(step)
    if not (root / name).is_dir():
        raise FileNotFoundError(f"no checkpoint {root / name} to point best.json at")
    write_json_atomic(root / BEST_POINTER, {"path": name, "step": step, **best})
