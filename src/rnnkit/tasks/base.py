"""What every task shares: the registry the CLI reads, presets, and reading a run directory back.

A task is a class with a config dataclass (``Config``), named presets (``PRESETS``: name ->
``(task-config overrides, TrainerConfig overrides)``), and the methods of
:class:`rnnkit.train.task_protocol.TrainableTask`. ``RUN_DIR/task.json`` records the task's name and
state (config, vocabulary), so ``rnnkit evaluate|sample|predict RUN_DIR`` can rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..train.config import config_from_dict

TASKS: dict[str, type] = {}
TASK_FILE = "task.json"


def register(name: str):
    """Class decorator adding a task to the registry under ``name``."""

    def deco(cls: type) -> type:
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def import_tasks() -> dict[str, type]:
    """Import the built-in task packages (each registers its task) and return the registry."""
    from . import captioning, forecasting, lm, seq2seq, sorting  # noqa: F401

    return TASKS


def get_task_class(name: str) -> type:
    import_tasks()

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]


def config_from_state(cls: type, state: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """The config of a saved task state (``state["config"]``), with the ``overrides`` that are not
    None applied: what every task's ``from_state`` starts with."""
    data = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(cls, data)


def save_task_file(run_dir: str | Path, task: Any) -> None:
    from ..train.checkpoint import write_json_atomic

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(run_dir) / TASK_FILE, {"task": task.name, **task.state_dict()})


def read_task_file(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / TASK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not an rnnkit run directory")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def load_task(run_dir: str | Path, **overrides: Any) -> Any:
    """Rebuild the task saved in ``run_dir`` (its config and vocabulary), with config overrides."""
    state = read_task_file(run_dir)
    cls = get_task_class(state.pop("task"))
    return cls.from_state(state, **overrides)
