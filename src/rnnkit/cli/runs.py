"""Opening a trained run: its task from task.json, its model from a checkpoint (after checking the
two belong together), and its evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_task(run_dir: str | Path, **overrides: Any) -> Any:
    """``load_task``, with a message naming what task.json lacks instead of a KeyError."""
    from ..tasks.base import TASK_FILE, read_task_file
    from ..tasks.base import load_task as load_saved_task

    path = Path(run_dir) / TASK_FILE
    saved = read_task_file(run_dir)
    if not isinstance(saved, dict) or "task" not in saved:
        raise ValueError(f"{path} has no 'task' entry: expected the task's name, config and state")
    try:
        return load_saved_task(run_dir, **overrides)
    except KeyError as e:
        raise ValueError(
            f"{path} has no {e.args[0]!r} entry: expected the task's saved state (its config and, "
            "for text tasks, its vocabulary) as 'rnnkit train' writes it"
        ) from e


def load_run(run_dir: str, which: str, device: str, **overrides: Any):
    """(task, model in eval mode on ``device``) of a run's best or latest checkpoint, after
    checking that task.json is the one the checkpoint was trained with (its config may differ
    when ``overrides`` are given)."""
    from ..tasks.base import read_task_file
    from ..train.checkpoint import (
        check_task_state,
        load_model_weights,
        read_checkpoint_meta,
        resolve_checkpoint,
    )
    from ..train.distributed import resolve_device

    target = resolve_device(device)
    task = load_task(run_dir, **overrides)
    checkpoint = resolve_checkpoint(run_dir, which)
    state = {k: v for k, v in read_task_file(run_dir).items() if k != "task"}
    overridden = ("config",) if any(v is not None for v in overrides.values()) else ()
    check_task_state(checkpoint, read_checkpoint_meta(checkpoint), state, ignore=overridden)
    model = task.build_model()
    load_model_weights(checkpoint, model)
    return task, model.to(target).eval()


def evaluate_run(task: Any, model: Any, split: str) -> dict[str, Any]:
    """The task's own evaluation when it has one, else the token-weighted mean loss of ``split``."""
    from ..train import DistributedContext
    from ..train.evaluation import evaluate_task

    device = next(model.parameters()).device
    result = evaluate_task(task, model, split, device, DistributedContext())
    if result is None:
        raise ValueError(f"the {split!r} split is empty for this run's data")
    if "ppl" in result:  # language-model style results: spell the figure out too
        result.setdefault("perplexity", result["ppl"])
    return result
