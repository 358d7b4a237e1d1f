"""The run directory a trainer writes: which one a resume names, and whether it may be written."""

from __future__ import annotations

import os
from pathlib import Path

from ..checkpoint import META_FILE, list_checkpoints
from ..checkpoint.layout import CHECKPOINTS_DIR


def run_of(resume: str | os.PathLike) -> Path:
    """The run directory of a run directory, its checkpoints/ folder or one checkpoint in it."""
    path = Path(resume)
    if (path / META_FILE).is_file():
        return path.parent.parent
    return path.parent if path.name == CHECKPOINTS_DIR else path


def check_run_dir(path: Path) -> None:
    """ValueError unless ``path`` is a directory or can become one (no file in the way)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is an existing file" if p == path else f"is inside {p}, a file"
                raise ValueError(
                    f"out_dir {str(path)!r} {what}: expected a directory (a new one, or a run "
                    "directory to resume)"
                )
            return


def check_target(run_dir: Path, resume: str | os.PathLike | None) -> None:
    """``run_dir`` can be written: no file in the way, and no checkpoints of another run (a fresh
    run, or a resumed one written into another directory)."""
    check_run_dir(run_dir)
    if not list_checkpoints(run_dir):
        return
    if resume is None:
        raise ValueError(
            f"{run_dir} already holds checkpoints: pass resume={str(run_dir)!r} to "
            "continue that run, or choose another out_dir"
        )
    if run_of(resume).resolve() != run_dir.resolve():
        raise ValueError(
            f"{run_dir} already holds checkpoints of its own: resuming {str(resume)!r} "
            "into it would mix two runs; choose a new out_dir"
        )
