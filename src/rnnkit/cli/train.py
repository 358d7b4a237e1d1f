"""``rnnkit train``: a new run from a preset and flags, or ``--resume RUN_DIR`` continuing one in
place with its saved task and settings."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from .. import __version__
from .parser import given_flags
from .runs import load_task

UNTIL_BUDGET = 1_000_000  # epochs when only --time-budget bounds a run


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..tasks.base import get_task_class, save_task_file
    from ..train import RunInterrupted, Trainer, TrainerConfig

    cls = get_task_class(args.task)
    task_flags, trainer_flags = given_flags(args, "task."), given_flags(args, "trainer.")
    resume_from = None
    if args.resume:
        run_dir = Path(args.resume)
        task, trainer_cfg, resume_from = _resumed_run(args, run_dir, task_flags, trainer_flags)
    else:
        preset = args.preset or getattr(cls, "default_preset", lambda flags: None)(task_flags)
        task_over, trainer_over = cls.PRESETS[preset] if preset else ({}, {})
        task_cfg = cls.Config(**{**task_over, **task_flags,
                                 "seed": trainer_flags.get("seed", 0)})  # fmt: skip
        merged = {**trainer_over, **trainer_flags}
        if merged.get("time_budget") and "epochs" not in trainer_flags:
            merged["epochs"] = UNTIL_BUDGET  # a budget without --epochs: train until it is spent
        stamp = time.strftime("%Y%m%d-%H%M%S")
        merged.setdefault("out_dir", str(Path("runs") / f"{args.task}-{stamp}"))
        trainer_cfg = TrainerConfig(**merged)
        task = cls(task_cfg)
        run_dir = Path(trainer_cfg.out_dir)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    say = print if main_rank else (lambda *a, **k: None)
    say(f"rnnkit {__version__}: training {args.task} -> {run_dir}", flush=True)
    with logging_redirect_tqdm():
        try:
            with Trainer(task, trainer_cfg, resume=resume_from) as trainer:
                if not args.resume and main_rank:
                    save_task_file(run_dir, task)
                result = trainer.fit()
        except RunInterrupted as e:
            say(f"\n{_interrupted_message(e, run_dir)}")
            return e.exit_code
        except KeyboardInterrupt:  # before the trainer's handler was installed
            say(f"\ninterrupted; {_resume_hint(run_dir)}")
            return 130
    valid = result.get("valid") or {}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in valid.items() if isinstance(v, float))
    say(f"stopped ({result.get('stop_reason')}) at step {result.get('step')}; valid: {summary}")
    if args.sample_length and hasattr(task, "generate") and main_rank:
        say("--- sample ---")
        say(task.generate(trainer.model, length=args.sample_length, temperature=0.8, seed=0))
        say("--------------")
    say(f"run directory: {run_dir}  (rnnkit evaluate {run_dir} | rnnkit sample {run_dir})")
    return 0


def _resumed_run(
    args: argparse.Namespace, run_dir: Path, task_flags: dict, trainer_flags: dict
) -> tuple[Any, Any, Path]:
    """(task, trainer config, checkpoint to resume from) of ``--resume RUN_DIR``: the task and
    settings saved in the run, the trainer flags given now on top."""
    from ..tasks.base import read_task_file
    from ..train import CheckpointError, TrainerConfig, load_newest_intact

    out = trainer_flags.pop("out_dir", None)
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise ValueError(
            f"--resume {run_dir} continues that run in place, but --out names another directory, "
            f"{out}. To branch the run, copy {run_dir} to {out} first, then --resume {out}"
        )
    saved = read_task_file(run_dir)
    if saved.get("task") != args.task:
        raise ValueError(f"{run_dir} holds a {saved.get('task')!r} run, not {args.task!r}")
    if task_flags or args.preset:
        raise ValueError("a resumed run keeps its task settings; drop the task flags/--preset")
    task = load_task(run_dir)
    ckpt = load_newest_intact(run_dir)  # a damaged latest checkpoint is skipped with a warning
    config = ckpt.meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{ckpt.path / 'trainer.json'} has no 'config': expected the trainer settings (a "
            f"dict of TrainerConfig fields) the run was trained with, got {config!r}"
        )
    trainer_cfg = TrainerConfig.from_dict({**config, **trainer_flags, "out_dir": str(run_dir)})
    return task, trainer_cfg, ckpt.path


def _resume_hint(run_dir: Path) -> str:
    from ..train import latest_checkpoint

    if latest_checkpoint(run_dir) is None:
        return f"no checkpoint was written to {run_dir}"
    return f"continue with --resume {run_dir}"


def _interrupted_message(e: Any, run_dir: Path) -> str:
    from ..train.signals import signal_name

    name = signal_name(e.signum)
    if e.checkpoint is not None:
        return f"interrupted by {name}: checkpoint saved; continue with --resume {run_dir}"
    return f"interrupted by {name} before a checkpoint could be written; {_resume_hint(run_dir)}"
