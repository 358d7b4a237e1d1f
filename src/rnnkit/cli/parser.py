"""The command line's arguments: one flag per field of a config dataclass, and the subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from .. import __version__

TRAINER_FLAG_ALIASES = {"out_dir": ["--out"]}


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
        return _TupleOf(typing.get_args(hint)[0]), optional
    return hint, optional


class _TupleOf:
    """Parses ``"1,2,3"`` into a tuple of ``element``s (a tuple field's flag)."""

    def __init__(self, element: type) -> None:
        self.element = element
        self.__name__ = f"comma-separated {element.__name__}s"

    def __call__(self, text: str) -> tuple:
        return tuple(self.element(v) for v in text.split(","))


def _parse_value(kind: Any, optional: bool, name: str):
    def parse(text: str):
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{name} expects {getattr(kind, '__name__', kind)}"
                f"{' or none' if optional else ''}, got {text!r}"
            ) from None

    return parse


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, dest_prefix: str,
                        skip: tuple[str, ...] = (), flag_prefix: str = "",
                        aliases: dict[str, list[str]] | None = None) -> None:  # fmt: skip
    """One flag per field (``--{flag_prefix}{field}``, underscores as dashes, plus ``aliases``
    of a field); values land in ``dest_prefix + field`` only when given."""
    group = parser.add_argument_group(cls.__name__)
    aliases = TRAINER_FLAG_ALIASES if aliases is None else aliases
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, optional = _field_type(f, cls)
        flag = "--" + (flag_prefix + f.name).replace("_", "-")
        names = [flag, *aliases.get(f.name, [])]
        dest = dest_prefix + f.name
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool and not optional:
            group.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=f"(default {default})")  # fmt: skip
        else:
            group.add_argument(*names, dest=dest, type=_parse_value(kind, optional, f.name),
                               default=argparse.SUPPRESS, metavar=f.name.upper(),
                               help=f"(default {default})")  # fmt: skip


def given_flags(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The flags given under ``prefix`` (``add_dataclass_flags``'s), without it."""
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix)}  # fmt: skip


def _add_run_flags(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """``--checkpoint best|latest`` (and ``--device``) of a command reading a trained run."""
    parser.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    if device:
        parser.add_argument("--device", default="auto")


def build_parser() -> argparse.ArgumentParser:
    from ..tasks.base import TASKS, import_tasks
    from ..tasks.lm import CacheConfig, DynamicEvalConfig
    from ..train import TrainerConfig

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
    _add_run_flags(ev)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--dynamic-eval", action="store_true",
                    help="language models: adapt a copy of the model to the text as it is read "
                         "(Krause et al. 2018); the checkpoint is not changed")  # fmt: skip
    add_dataclass_flags(ev, DynamicEvalConfig, "dynamic.", flag_prefix="dynamic_", aliases={})
    ev.add_argument("--cache", action="store_true",
                    help="language models: mix in the continuous cache of recent hidden states "
                         "(Grave et al. 2017)")  # fmt: skip
    add_dataclass_flags(ev, CacheConfig, "cache.", flag_prefix="cache_",
                        aliases={"lam": ["--cache-lambda"]})  # fmt: skip
    ev.add_argument("--cache-tune", action="store_true",
                    help="with --cache: choose theta and lambda on the validation split first "
                         "(a grid, the model read once), then evaluate --split with them")  # fmt: skip
    ev.add_argument("--ngram", action=argparse.BooleanOptionalAction, default=None,
                    help="language models: mix in the Kneser-Ney n-gram of the training split, "
                         "its weight chosen on the validation split (default: when the run's "
                         "config has an ngram_order, as the word preset does)")  # fmt: skip
    ev.add_argument("--ngram-weight", type=float, default=None, metavar="W",
                    help="with the n-gram: this weight in [0, 1] instead of one chosen on the "
                         "validation split")  # fmt: skip

    sp = sub.add_parser("sample", help="generate text from a language-model run")
    sp.add_argument("run_dir")
    sp.add_argument("--length", type=int, default=500)
    sp.add_argument("--temperature", type=float, default=0.8)
    sp.add_argument("--top-k", type=int, default=None)
    sp.add_argument("--top-p", type=float, default=None)
    sp.add_argument("--prime", default="")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--allow-unk", action="store_true", help="word level: let <unk> be sampled")
    sp.add_argument("--raw", action="store_true",
                    help="word level: print the tokens as they are (no detokenising)")  # fmt: skip
    _add_run_flags(sp)

    pr = sub.add_parser("predict", help="run a trained task on inputs (task-specific)")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="*", help="task inputs (sequences, image paths, dates...)")
    pr.add_argument("--out", help="directory for figures/outputs")
    _add_run_flags(pr)

    ex = sub.add_parser("export", help="export a trained model")
    ex.add_argument("run_dir")
    ex.add_argument("--onnx", required=True, metavar="OUT.onnx")
    _add_run_flags(ex, device=False)

    cv = sub.add_parser("convert", help="convert recurrent weights between framework layouts")
    cv.add_argument("src")
    cv.add_argument("out")
    cv.add_argument("--from", dest="from_layout", default=None,
                    help="layout of SRC (guessed from the file when omitted)")  # fmt: skip
    cv.add_argument("--to", dest="to_layout", required=True, help="target layout, or 'rnnkit'")
    cv.add_argument("--prefix", default=None, help="only the arrays under this name prefix")
    return parser
