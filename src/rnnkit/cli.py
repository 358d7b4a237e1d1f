"""The ``rnnkit`` command line: a thin wrapper mapping flags onto task and trainer configs.

    rnnkit train TASK [--preset NAME] [--FIELD VALUE ...] [--out RUN_DIR] [--resume RUN_DIR]
    rnnkit evaluate RUN_DIR [--data PATH] [--split valid|test] [--json]
    rnnkit sample RUN_DIR [--length N] [--temperature T] [--top-k K] [--top-p P] [--prime TEXT]
    rnnkit predict RUN_DIR [INPUT ...] [--out DIR]
    rnnkit export RUN_DIR --onnx OUT.onnx
    rnnkit convert SRC OUT [--from LAYOUT] --to LAYOUT|rnnkit

Every field of the task's config dataclass and of :class:`rnnkit.train.TrainerConfig` is a flag
(``hidden_size`` -> ``--hidden-size``; booleans as ``--layer-norm/--no-layer-norm``). Precedence:
dataclass defaults < ``--preset`` (or the task's default preset) < flags given on the command line.

Errors print ``rnnkit: error: ...`` (no traceback) and exit 2 for bad input (flags, files, a damaged
or mismatched run) or 1 when the run itself failed (divergence, a locked run, a full disk). A run
stopped by SIGINT, SIGTERM or SIGHUP writes a checkpoint and exits 128 + the signal's number.
``--resume RUN_DIR`` continues that run in place: ``--out`` naming another directory is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

from . import __version__

TRAINER_FLAG_ALIASES = {"out_dir": ["--out"]}
UNTIL_BUDGET = 1_000_000  # epochs when only --time-budget bounds a run


def _field_type(f: dataclasses.Field, owner: type) -> tuple[Any, bool]:
    """(scalar type, optional) of a dataclass field, from its resolved annotation."""
    hint = typing.get_type_hints(owner)[f.name]
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return tuple, optional
    return hint, optional


def _parse_value(kind: Any, optional: bool, name: str):
    def parse(text: str):
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            if kind is tuple:
                return tuple(float(v) for v in text.split(","))
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{name} expects {getattr(kind, '__name__', kind)}"
                f"{' or none' if optional else ''}, got {text!r}"
            ) from None

    return parse


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, dest_prefix: str,
                        skip: tuple[str, ...] = ()) -> None:  # fmt: skip
    """One flag per field; values land in ``dest_prefix + field`` only when given."""
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, optional = _field_type(f, cls)
        flag = "--" + f.name.replace("_", "-")
        names = [flag, *TRAINER_FLAG_ALIASES.get(f.name, [])]
        dest = dest_prefix + f.name
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool and not optional:
            group.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=f"(default {default})")  # fmt: skip
        else:
            group.add_argument(*names, dest=dest, type=_parse_value(kind, optional, f.name),
                               default=argparse.SUPPRESS, metavar=f.name.upper(),
                               help=f"(default {default})")  # fmt: skip


def _given(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from .tasks.base import TASKS, import_tasks
    from .train import TrainerConfig

    import_tasks()
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks on PyTorch: train, evaluate, sample."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a task (default corpus/data when no --data)")
    tasks = train.add_subparsers(dest="task", required=True)
    for name, cls in sorted(TASKS.items()):
        tp = tasks.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0])
        tp.add_argument("--preset", choices=sorted(cls.PRESETS), help="named settings")
        tp.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly")
        tp.add_argument("--sample-length", type=int, default=300,
                        help="tokens sampled at the end (0: none)")  # fmt: skip
        add_dataclass_flags(tp, cls.Config, "task.", skip=("seed",))
        add_dataclass_flags(tp, TrainerConfig, "trainer.")

    ev = sub.add_parser("evaluate", help="loss/perplexity of a run on a split")
    ev.add_argument("run_dir")
    ev.add_argument("--data", help="evaluate on other data (split by the run's rule)")
    ev.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    ev.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    sp = sub.add_parser("sample", help="generate text from a language-model run")
    sp.add_argument("run_dir")
    sp.add_argument("--length", type=int, default=500)
    sp.add_argument("--temperature", type=float, default=0.8)
    sp.add_argument("--top-k", type=int, default=None)
    sp.add_argument("--top-p", type=float, default=None)
    sp.add_argument("--prime", default="")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    sp.add_argument("--device", default="auto")

    pr = sub.add_parser("predict", help="run a trained task on inputs (task-specific)")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="*", help="task inputs (sequences, image paths, dates...)")
    pr.add_argument("--out", help="directory for figures/outputs")
    pr.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    pr.add_argument("--device", default="auto")

    ex = sub.add_parser("export", help="export a trained model")
    ex.add_argument("run_dir")
    ex.add_argument("--onnx", required=True, metavar="OUT.onnx")
    ex.add_argument("--checkpoint", default="best", choices=["best", "latest"])

    cv = sub.add_parser("convert", help="convert recurrent weights between framework layouts")
    cv.add_argument("src")
    cv.add_argument("out")
    cv.add_argument("--from", dest="from_layout", default=None,
                    help="layout of SRC (guessed from the file when omitted)")  # fmt: skip
    cv.add_argument("--to", dest="to_layout", required=True, help="target layout, or 'rnnkit'")
    cv.add_argument("--prefix", default=None, help="only the arrays under this name prefix")
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .tasks.base import get_task_class, save_task_file
    from .train import RunInterrupted, Trainer, TrainerConfig

    cls = get_task_class(args.task)
    task_flags, trainer_flags = _given(args, "task."), _given(args, "trainer.")
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
        if merged.get("time_budget") and "epochs" not in merged:
            merged["epochs"] = UNTIL_BUDGET  # a budget alone means: train until it is spent
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
    from .tasks.base import read_task_file
    from .train import CheckpointError, TrainerConfig, load_newest_intact

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
    task = _load_task(run_dir)
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
    from .train import latest_checkpoint

    if latest_checkpoint(run_dir) is None:
        return f"no checkpoint was written to {run_dir}"
    return f"continue with --resume {run_dir}"


def _interrupted_message(e: Any, run_dir: Path) -> str:
    from .train.signals import signal_name

    name = signal_name(e.signum)
    if e.checkpoint is not None:
        return f"interrupted by {name}: checkpoint saved; continue with --resume {run_dir}"
    return f"interrupted by {name} before a checkpoint could be written; {_resume_hint(run_dir)}"


def _load_task(run_dir: str | Path, **overrides: Any) -> Any:
    """``load_task``, with a message naming what task.json lacks instead of a KeyError."""
    from .tasks.base import TASK_FILE, load_task, read_task_file

    path = Path(run_dir) / TASK_FILE
    saved = read_task_file(run_dir)
    if not isinstance(saved, dict) or "task" not in saved:
        raise ValueError(f"{path} has no 'task' entry: expected the task's name, config and state")
    try:
        return load_task(run_dir, **overrides)
    except KeyError as e:
        raise ValueError(
            f"{path} has no {e.args[0]!r} entry: expected the task's saved state (its config and, "
            "for text tasks, its vocabulary) as 'rnnkit train' writes it"
        ) from e


def _load_run(run_dir: str, which: str, device: str, **overrides: Any):
    """(task, model in eval mode on ``device``) of a run's best or latest checkpoint, after
    checking that task.json is the one the checkpoint was trained with (its config may differ
    when ``overrides`` are given)."""
    from .tasks.base import read_task_file
    from .train.checkpoint import (
        check_task_state,
        load_model_weights,
        read_checkpoint_meta,
        resolve_checkpoint,
    )
    from .train.distributed import resolve_device

    target = resolve_device(device)
    task = _load_task(run_dir, **overrides)
    checkpoint = resolve_checkpoint(run_dir, which)
    state = {k: v for k, v in read_task_file(run_dir).items() if k != "task"}
    overridden = ("config",) if any(v is not None for v in overrides.values()) else ()
    check_task_state(checkpoint, read_checkpoint_meta(checkpoint), state, ignore=overridden)
    model = task.build_model()
    load_model_weights(checkpoint, model)
    return task, model.to(target).eval()


def evaluate_run(task: Any, model: Any, split: str) -> dict[str, Any]:
    """The task's own evaluation when it has one, else the token-weighted mean loss of ``split``."""
    from .train import DistributedContext
    from .train.evaluation import evaluate_task

    device = next(model.parameters()).device
    result = evaluate_task(task, model, split, device, DistributedContext())
    if result is None:
        raise ValueError(f"the {split!r} split is empty for this run's data")
    if "ppl" in result:  # language-model style results: spell the figure out too
        result.setdefault("perplexity", result["ppl"])
    return result


def cmd_evaluate(args: argparse.Namespace) -> int:
    task, model = _load_run(args.run_dir, args.checkpoint, args.device, data=args.data)
    result = {"split": args.split, **evaluate_run(task, model, args.split)}
    if args.json:
        print(json.dumps(result))
    else:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in result.items()))  # fmt: skip
    return 0


def _check_sample_args(args: argparse.Namespace) -> None:
    if args.length < 1:
        raise ValueError(f"--length expects an integer >= 1 (tokens to sample), got {args.length}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ValueError(
            f"--temperature expects a finite number >= 0 (0: greedy), got {args.temperature}"
        )
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k expects an integer >= 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p expects a number in (0, 1], got {args.top_p}")


def _check_output_file(flag: str, path: str) -> None:
    target = Path(path)
    if target.is_dir():
        raise ValueError(
            f"{flag} {path} is a directory: expected the path of a file to write, such as "
            f"{target / 'model.onnx'}"
        )
    if not target.parent.is_dir():
        raise ValueError(f"{flag} {path}: expected an existing folder, {target.parent} is not one")


def _check_output_dir(flag: str, path: str) -> None:
    if Path(path).exists() and not Path(path).is_dir():
        raise ValueError(f"{flag} {path} is an existing file: expected a directory")


def cmd_sample(args: argparse.Namespace) -> int:
    _check_sample_args(args)
    task, model = _load_run(args.run_dir, args.checkpoint, args.device)
    if not hasattr(task, "generate"):
        raise SystemExit(f"task {task.name!r} does not generate text; use 'rnnkit predict'")
    print(task.generate(model, length=args.length, prime=args.prime, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed))  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.out:
        _check_output_dir("--out", args.out)
    task, model = _load_run(args.run_dir, args.checkpoint, args.device)
    predict = getattr(task, "predict", None)
    if predict is None:
        raise ValueError(
            f"task {task.name!r} has no predict; use 'rnnkit sample' for language models"
        )
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for line in predict(model, list(args.inputs), out_dir):
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _check_output_file("--onnx", args.onnx)
    task, model = _load_run(args.run_dir, args.checkpoint, "cpu")
    export = getattr(task, "export_onnx", None)
    if export is None:
        raise ValueError(f"task {task.name!r} cannot be exported to ONNX yet")
    export(model, args.onnx)
    print(f"wrote {args.onnx}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .interop import convert_file

    out = convert_file(args.src, args.from_layout, args.to_layout, args.out, prefix=args.prefix)
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "sample": cmd_sample,
    "predict": cmd_predict,
    "export": cmd_export,
    "convert": cmd_convert,
}


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"rnnkit {__version__}")  # answer at once, before torch and the tasks import
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from .train import DivergenceError, RunLockError

    try:
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        return _error(e, 2)  # bad input: flags, files, a damaged or mismatched run
    except (DivergenceError, RunLockError, OSError) as e:
        return _error(e, 1)  # the run failed: divergence, a locked run, a full disk


def _error(e: BaseException, code: int) -> int:
    print(f"rnnkit: error: {e}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
