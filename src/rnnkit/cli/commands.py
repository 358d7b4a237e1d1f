"""The commands that use a trained run -- ``evaluate``, ``sample``, ``predict``, ``export`` -- and
``convert`` (weights between framework layouts)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from .parser import given_flags
from .runs import evaluate_run, load_run


def _task_method(task: Any, name: str, missing: str) -> Any:
    """``task.<name>``; ValueError saying ``task '...' <missing>`` when the task has none."""
    method = getattr(task, name, None)
    if method is None:
        raise ValueError(f"task {task.name!r} {missing}")
    return method


def _online_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """(DynamicEvalConfig or None, CacheConfig or None) of ``rnnkit evaluate``'s flags; a
    ValueError for ``--dynamic-*``/``--cache-*`` settings given without their switch."""
    from ..tasks.lm import CacheConfig, DynamicEvalConfig

    configs = []
    for switch, prefix, cls in (("dynamic_eval", "dynamic.", DynamicEvalConfig),
                                ("cache", "cache.", CacheConfig)):  # fmt: skip
        flags = given_flags(args, prefix)
        flag = "--" + switch.replace("_", "-")
        if flags and not getattr(args, switch):
            names = ", ".join(f"--{prefix[:-1]}-{k}".replace("_", "-") for k in sorted(flags))
            raise ValueError(f"{names} given without {flag}: add {flag} to use them")
        configs.append(cls(**flags) if getattr(args, switch) else None)
    return configs[0], configs[1]


def cmd_evaluate(args: argparse.Namespace) -> int:
    dynamic, cache = _online_configs(args)
    if args.cache_tune and cache is None:
        raise ValueError("--cache-tune given without --cache: add --cache to use it")
    tuned = given_flags(args, "cache.").keys() & {"theta", "lam"}
    if args.cache_tune and tuned:
        names = ", ".join(f"--cache-{k}" for k in sorted(tuned))
        raise ValueError(f"--cache-tune chooses theta and lambda itself; drop {names}")
    if args.ngram is False and args.ngram_weight is not None:
        raise ValueError("--ngram-weight given with --no-ngram: drop one of them")
    if args.ngram_weight is not None and not 0.0 <= args.ngram_weight <= 1.0:
        raise ValueError(f"--ngram-weight must be in [0, 1], got {args.ngram_weight}")
    task, model = load_run(args.run_dir, args.checkpoint, args.device, data=args.data)
    grid = None
    if args.cache_tune:
        tune = _task_method(task, "tune_cache", "has no cache (language models do)")
        cache, grid = tune(model, "valid", size=cache.size)
    ngram = _ngram_mixture(args, task, model, dynamic, cache)
    if dynamic is None and cache is None and ngram is None:
        result = {"split": args.split, **evaluate_run(task, model, args.split)}
    else:
        online = _task_method(
            task, "evaluate_online", "has no dynamic evaluation or cache (language models do)"
        )
        weight = None if ngram is None else ngram["weight"]
        figures = online(model, args.split, dynamic=dynamic, cache=cache, ngram_weight=weight)
        figures.setdefault("perplexity", figures.get("ppl"))
        result = {"split": args.split, **figures,
                  "dynamic_eval": None if dynamic is None else dataclasses.asdict(dynamic),
                  "cache": None if cache is None else dataclasses.asdict(cache),
                  "ngram": ngram}  # fmt: skip
        if grid is not None:
            result["cache_tuning"] = {"split": "valid", "grid": grid}
    if args.json:
        print(json.dumps(result))
    else:
        shown = {k: v for k, v in result.items() if k != "cache_tuning"}  # the grid: --json
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in shown.items()))  # fmt: skip
    return 0


def _ngram_mixture(
    args: argparse.Namespace, task: Any, model: Any, dynamic: Any, cache: Any
) -> dict[str, Any] | None:
    """``{'order', 'weight', 'chosen_on'}`` of the n-gram that ``rnnkit evaluate`` mixes in, or
    None: on with ``--ngram`` or ``--ngram-weight``, off with ``--no-ngram``, else on when the
    run's config has an ``ngram_order``; the weight ``--ngram-weight``'s or chosen on the
    validation split, read with the same dynamic evaluation and cache."""
    order = getattr(task.cfg, "ngram_order", 0)
    wanted = args.ngram if args.ngram is not None else (args.ngram_weight is not None or order > 0)
    if not wanted:
        return None
    tune = _task_method(task, "tune_ngram", "has no n-gram to mix in (language models do)")
    if args.ngram_weight is not None:
        weight, chosen_on = args.ngram_weight, "given"
    else:
        weight, chosen_on = tune(model, "valid", dynamic=dynamic, cache=cache), "valid"
    return {"order": task.ngram_order, "weight": weight, "chosen_on": chosen_on}


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
    task, model = load_run(args.run_dir, args.checkpoint, args.device)
    if not hasattr(task, "generate"):
        raise SystemExit(f"task {task.name!r} does not generate text; use 'rnnkit predict'")
    options: dict[str, bool] = {"allow_unk": True} if args.allow_unk else {}
    if args.raw:
        options["detokenize"] = False
    print(task.generate(model, length=args.length, prime=args.prime, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed, **options))  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.out:
        _check_output_dir("--out", args.out)
    task, model = load_run(args.run_dir, args.checkpoint, args.device)
    predict = _task_method(
        task, "predict", "has no predict; use 'rnnkit sample' for language models"
    )
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for line in predict(model, list(args.inputs), out_dir):
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _check_output_file("--onnx", args.onnx)
    task, model = load_run(args.run_dir, args.checkpoint, "cpu")
    export = _task_method(task, "export_onnx", "cannot be exported to ONNX yet")
    export(model, args.onnx)
    print(f"wrote {args.onnx}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ..interop import convert_file

    parent = Path(args.out).resolve().parent
    if not parent.is_dir():
        raise ValueError(f"the output's folder {parent} does not exist (create it first)")
    out = convert_file(args.src, args.from_layout, args.to_layout, args.out, prefix=args.prefix)
    print(f"wrote {out}")
    return 0
