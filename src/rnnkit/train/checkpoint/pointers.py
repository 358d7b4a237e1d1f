"""Finding a run's checkpoints: the ``latest.json`` and ``best.json`` pointers, the step folders
themselves, and pruning the old ones.

A pointer only ever names a ``step-NNNNNN`` folder directly inside its own ``checkpoints/``
(symbolic links resolved); one naming anything else is ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from .layout import (
    BEST_POINTER,
    LATEST_POINTER,
    META_FILE,
    STEP_DIR,
    CheckpointError,
    checkpoints_root,
    is_complete,
)

logger = logging.getLogger(__name__)


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete step directories of a run, oldest first."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and _inside(root, p) and p.is_dir() and is_complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def _inside(root: Path, target: Path) -> bool:
    """Whether ``target`` (symbolic links resolved) is a direct child of ``root``."""
    return target.resolve().parent == root.resolve()


def _read_pointer(root: Path, name: str) -> Path | None:
    """The step directory a pointer file names, or None (with a warning) when it is unreadable,
    names anything but a ``step-NNNNNN`` folder of ``root``, or that folder is incomplete."""
    pointer = root / name
    if not pointer.is_file():
        return None
    try:
        relative = json.loads(pointer.read_text(encoding="utf-8"))["path"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        logger.warning("ignoring unreadable %s: %s", pointer, e)
        return None
    target = root / relative if isinstance(relative, str) else None
    if target is None or not STEP_DIR.match(relative) or not _inside(root, target):
        logger.warning(
            "ignoring %s: it names %r, expected a step-NNNNNN folder inside %s",
            pointer,
            relative,
            root,
        )
        return None
    if not is_complete(target):
        logger.warning("%s points to incomplete %s", pointer, target)
        return None
    return target


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest.json`` points to; if that pointer is missing or broken, the newest
    complete step directory; None when the run has no checkpoint."""
    root = checkpoints_root(run_dir)
    target = _read_pointer(root, LATEST_POINTER)
    if target is not None:
        return target
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``best.json`` points to, or None."""
    return _read_pointer(checkpoints_root(run_dir), BEST_POINTER)


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
        raise CheckpointError(f"no {which} checkpoint under {checkpoints_root(path)}")
    return found


def resume_candidates(run_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints a run may resume from, in order of preference: the one ``latest.json``
    names, then every complete step directory, newest first."""
    root = checkpoints_root(run_dir)
    latest = _read_pointer(root, LATEST_POINTER)
    found = [latest] if latest is not None else []
    return found + [p for p in reversed(list_checkpoints(root)) if p != latest]


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int) -> None:
    """Delete step directories except the newest ``keep_last``, the latest and the best."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    root = checkpoints_root(run_dir)
    keep = {p.name for p in list_checkpoints(run_dir)[-keep_last:]}
    for pointer in (LATEST_POINTER, BEST_POINTER):
        target = _read_pointer(root, pointer)
        if target is not None:
            keep.add(target.name)
    for p in root.iterdir():
        if STEP_DIR.match(p.name) and p.is_dir() and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
