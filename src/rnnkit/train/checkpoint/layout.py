"""What a checkpoint is on disk: the file names, the format tags, the step folders' names, and the
errors every other part of the package raises."""

from __future__ import annotations

import os
import re
from pathlib import Path

FORMAT = "rnnkit-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.safetensors"
META_FILE = "trainer.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "rnnkit-checkpoint-manifest"
FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, META_FILE)
TENSOR_FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE)
TASK_DIGEST_KEY = "task_digest"
CHECKPOINTS_DIR = "checkpoints"
LATEST_POINTER = "latest.json"
BEST_POINTER = "best.json"
ALIASES_KEY = "rnnkit.aliases"
STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not match the model/optimizer."""


class CheckpointCorrupt(CheckpointError):
    """A checkpoint is damaged: a file is missing, unreadable, or differs from its checksum."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (a full disk, a lost mount...); the previous one is intact.
    ``errno`` is the original error's."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoints_root(run_dir: str | os.PathLike) -> Path:
    """The ``checkpoints/`` folder of a run directory (or that folder itself)."""
    path = Path(run_dir)
    return path if path.name == CHECKPOINTS_DIR else path / CHECKPOINTS_DIR


def is_complete(step_dir: Path) -> bool:
    """Whether every file of a checkpoint is there (not whether it is intact)."""
    return all((step_dir / f).is_file() for f in FILES)


def require_file(checkpoint: Path, name: str) -> None:
    """CheckpointCorrupt unless file ``name`` of ``checkpoint`` exists."""
    if not (checkpoint / name).is_file():
        raise CheckpointCorrupt(f"checkpoint {checkpoint} is incomplete: {name} is missing")
