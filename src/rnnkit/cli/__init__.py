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

The package: :mod:`.parser` (flags from the config dataclasses, the subcommands), :mod:`.train`
(``rnnkit train``), :mod:`.runs` (opening a trained run) and :mod:`.commands` (the other commands).
"""

from __future__ import annotations

import logging
import sys

from .. import __version__
from .commands import cmd_convert, cmd_evaluate, cmd_export, cmd_predict, cmd_sample
from .parser import TRAINER_FLAG_ALIASES, add_dataclass_flags, build_parser
from .runs import evaluate_run
from .runs import load_run as _load_run  # noqa: F401  (its name before the split)
from .train import UNTIL_BUDGET, cmd_train

__all__ = [
    "COMMANDS",
    "TRAINER_FLAG_ALIASES",
    "UNTIL_BUDGET",
    "add_dataclass_flags",
    "build_parser",
    "cmd_convert",
    "cmd_evaluate",
    "cmd_export",
    "cmd_predict",
    "cmd_sample",
    "cmd_train",
    "evaluate_run",
    "main",
]

COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "sample": cmd_sample,
    "predict": cmd_predict,
    "export": cmd_export,
    "convert": cmd_convert,
}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"rnnkit {__version__}")  # answer at once, before torch and the tasks import
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from ..memory import keep_freed_memory
    from ..train import DivergenceError, RunLockError

    keep_freed_memory()  # training and evaluation reuse their large buffers (memory.py)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError, NotImplementedError) as e:
        return _error(e, 2)  # bad input: flags, files, a damaged or mismatched run, a model
        # the job cannot serve (ONNX export of a cell without a standard operator)
    except (DivergenceError, RunLockError, OSError) as e:
        return _error(e, 1)  # the run failed: divergence, a locked run, a full disk


def _error(e: BaseException, code: int) -> int:
    print(f"rnnkit: error: {e}", file=sys.stderr)
    return code
