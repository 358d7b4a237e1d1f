"""The task a checkpoint was trained with: a sha256 of each entry of its state, recorded at save
time and checked before a resumed run or a loaded model uses the run's task.json."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from .layout import TASK_DIGEST_KEY, CheckpointError

logger = logging.getLogger(__name__)


def task_digest(state: dict[str, Any]) -> dict[str, str]:
    """sha256 of each top-level entry of a task's state (its canonical JSON): ``{"config": ...,
    "vocab": ...}``. Recorded in checkpoints to catch an edited or replaced task.json."""
    return {
        str(k): hashlib.sha256(
            json.dumps(v, sort_keys=True, separators=(",", ":")).encode("utf-8")
        ).hexdigest()
        for k, v in state.items()
    }


def check_task_state(
    checkpoint: str | os.PathLike,
    meta: dict[str, Any],
    state: dict[str, Any],
    ignore: tuple[str, ...] = (),
) -> None:
    """CheckpointError unless the task ``state`` (e.g. task.json's) is the one the checkpoint was
    trained with, entry by entry (``ignore``: entries allowed to differ, such as a config given
    overrides). Uses the checkpoint's recorded digest, else its stored task state; neither:
    unverified (debug log)."""
    recorded = meta.get(TASK_DIGEST_KEY)
    if recorded is None and isinstance(meta.get("task"), dict):
        recorded = task_digest(meta["task"])
    if not isinstance(recorded, dict):
        logger.debug("checkpoint %s records no task state: task settings unverified", checkpoint)
        return
    current = task_digest(state)
    changed = sorted(
        k
        for k in set(recorded) | set(current)
        if k not in ignore and recorded.get(k) != current.get(k)
    )
    if changed:
        raise CheckpointError(
            f"the task's {', '.join(repr(k) for k in changed)} differ from what checkpoint "
            f"{checkpoint} was trained with (task.json edited or replaced?): a reordered or changed "
            "vocabulary would map every token to another embedding. Restore the run's task.json, "
            "or start a new run"
        )
