"""Forecasting Mauna Loa CO2 (issue 5's target): rnnkit's forecaster beside the classical baselines.

    python -m benchmarks.tasks_forecasting [--preset co2] [--seeds 0,1,2] [--time-budget 600]
                                           [--threads 1] [--variants] [--out runs/bench-forecast]
                                           [--set FIELD=VALUE ...]

The split is the issue's: statsmodels' weekly co2 as monthly means, forward-filled (526 months,
1958-03 to 2001-12); the last 48 months are the test split, one 48-month forecast from the history;
MASE is scaled by the in-sample seasonal-naive error with period 12. For each seed the preset is
trained through :class:`rnnkit.train.Trainer` (capped at ``--time-budget`` seconds) and its best
checkpoint (by validation loss: the 48 months before the test split, forecast from the history
before them) is evaluated on the test split -- what ``rnnkit evaluate RUN_DIR --split test``
reports. The table gives MASE, MAE and RMSE per seed, their mean, and the baselines computed in
the same evaluation: seasonal naive, seasonal naive with yearly drift, statsmodels ETS(A,A,A) and
SARIMA(1,1,1)(0,1,1,12). ``forecast.png`` shows seed 0's test forecast with the baselines.

``--variants`` also trains alternatives (seed 0, one member each unless named) and reports their
validation and test MASE (transform, direct vs autoregressive, window length, ensemble, cell).
``--backtest`` chooses between designs without the test split: for six earlier origins (the series
cut ``drop_last`` = 48, 72, ..., 168 months short, so each test split is a 48-month stretch
before the issue's; the first is the issue's validation split), it trains one member of each
design (seed 0, final weights) and reports each origin's test MASE beside ETS and SARIMA.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmarks.common import parse_sets
from rnnkit.tasks.forecasting import PRESETS, ForecastConfig, ForecastTask
from rnnkit.train import Trainer, TrainerConfig, best_checkpoint, load_model_weights

VARIANTS: dict[str, dict] = {
    "preset (direct, diff, window 144, 3 members)": {},
    "1 member": {"ensemble": 1},
    "levels (transform none)": {"ensemble": 1, "transform": "none"},
    "seasonal differences": {"ensemble": 1, "transform": "seasonal_diff"},
    "autoregressive, diff": {"ensemble": 1, "mode": "autoregressive"},
    "window 48": {"ensemble": 1, "input_len": 48},
    "GRU": {"ensemble": 1, "cell": "gru"},
}


def train_and_evaluate(task_over: dict, trainer_over: dict, seed: int, out: Path, budget: float,
                       final: bool = False) -> tuple[ForecastTask, torch.nn.Module, dict]:  # fmt: skip
    task = ForecastTask(ForecastConfig(**{**task_over, "seed": seed}))
    # max_steps = the preset's epochs, so that the cosine schedule ends there under a time budget
    steps = trainer_over.get("epochs", 1) * len(task.batches("train", 0))
    cfg = TrainerConfig(**{**trainer_over, "seed": seed, "time_budget": budget, "max_steps": steps,
                           "out_dir": str(out), "device": "cpu", "progress": False})  # fmt: skip
    start = time.monotonic()
    trainer = Trainer(task, cfg)
    fit = trainer.fit()
    seconds = time.monotonic() - start
    model = trainer.model
    if not final:  # the best checkpoint, as `rnnkit evaluate` reads it
        model = task.build_model()
        load_model_weights(best_checkpoint(out), model)
    result = {split: task.evaluate(model.eval(), split) for split in ("valid", "test")}
    result.update(seed=seed, steps=fit["step"], best_step=fit["best"]["step"], seconds=seconds)
    return task, model, result


BACKTEST: dict[str, dict] = {
    "preset (co2: direct, diff, window 144)": {},
    "preset, transform seasonal_diff": {"transform": "seasonal_diff"},
    "preset, mode autoregressive": {"mode": "autoregressive"},
    "preset, input_len 48": {"input_len": 48},
}


def backtest(task_over: dict, trainer_over: dict, out: Path, budget: float) -> dict:
    """Test MASE of each :data:`BACKTEST` design at six origins before the test split's."""
    h = ForecastConfig(**task_over).horizon
    cuts = [h + h // 2 * k for k in range(6)]  # co2: 48, 72, ..., 168 months
    table: dict[str, list[float]] = {}
    origins = []
    for cut in cuts:
        for i, (name, over) in enumerate(BACKTEST.items()):
            cfg = {**task_over, **over, "ensemble": 1, "drop_last": cut}
            task, _, r = train_and_evaluate(cfg, trainer_over, 0, out / f"{cut}-{i}", budget, True)
            table.setdefault(name, []).append(r["test"]["mase"])
            if i == 0:
                at = task.origin("test")
                origins.append(task.series.dates[at][:7] if task.series.dates else f"step {at}")
                for key, label in (("ets", "ETS(A,A,A)"), ("sarima", "SARIMA")):
                    if f"{key}_mase" in r["test"]:
                        table.setdefault(label, []).append(r["test"][f"{key}_mase"])
    print("\n| design (test MASE at origin) | " + " | ".join(origins) + " | mean |")
    print("|---|" + "---|" * (len(cuts) + 1))
    for name, values in table.items():
        cells = " | ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {cells} | {sum(values) / len(values):.3f} |", flush=True)
    return {"origins": origins, "mase": table}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="co2", choices=sorted(PRESETS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--time-budget", type=float, default=600.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", action="store_true", help="also train the design alternatives")
    p.add_argument("--backtest", action="store_true", help="also backtest designs at 6 origins")
    p.add_argument("--out", default="runs/bench-forecast")
    p.add_argument("--set", nargs="*", default=[], help="ForecastConfig overrides FIELD=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: choose another --out (runs are not overwritten)")
    task_over, trainer_over = PRESETS[args.preset]
    task_over = {**task_over, **parse_sets(args.set)}
    load0 = os.getloadavg()[0]
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        task, model, result = train_and_evaluate(task_over, trainer_over, seed,
                                                 out / f"seed{seed}", args.time_budget)  # fmt: skip
        runs.append(result)
        if len(runs) == 1:
            task.plot(model, "test", out / "forecast.png")
    load1 = os.getloadavg()[0]
    src = task.series.source
    print(f"## forecasting {src}, preset {args.preset}: test = last {task.cfg.horizon} steps, "
          f"MASE period {task.period} ({args.threads} thread(s), load average {load0:.1f} -> "
          f"{load1:.1f})\n")  # fmt: skip
    print("| forecaster | test MASE | test MAE | test RMSE | valid MASE | train s |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        t = r["test"]
        print(f"| rnnkit, seed {r['seed']} (best of {r['steps']} steps: {r['best_step']}) | "
              f"{t['mase']:.3f} | {t['mae']:.3f} | {t['rmse']:.3f} | {r['valid']['mase']:.3f} | "
              f"{r['seconds']:.0f} |")  # fmt: skip
    mean = {k: sum(r["test"][k] for r in runs) / len(runs) for k in ("mase", "mae", "rmse")}
    print(f"| rnnkit, mean of {len(runs)} seeds | {mean['mase']:.3f} | {mean['mae']:.3f} | "
          f"{mean['rmse']:.3f} | | |")  # fmt: skip
    names = {"snaive": "seasonal naive", "snaive_drift": "seasonal naive + drift",
             "ets": "statsmodels ETS(A,A,A)",
             "sarima": f"SARIMA(1,1,1)(0,1,1,{task.period})"}  # fmt: skip
    for key, label in names.items():
        if f"{key}_mase" in runs[0]["test"]:
            print(f"| {label} | {runs[0]['test'][key + '_mase']:.3f} | | | "
                  f"{runs[0]['valid'][key + '_mase']:.3f} | |")  # fmt: skip
    result = {"preset": args.preset, "config": task.state_dict()["config"], "runs": runs,
              "load_average": [load0, load1]}  # fmt: skip
    if args.variants:
        print("\n| variant (seed 0) | valid MASE | test MASE | train s |")
        print("|---|---|---|---|")
        result["variants"] = {}
        for i, (name, over) in enumerate(VARIANTS.items()):
            _, _, r = train_and_evaluate({**task_over, **over}, trainer_over, 0,
                                         out / f"variant{i}", args.time_budget)  # fmt: skip
            result["variants"][name] = r
            print(f"| {name} | {r['valid']['mase']:.3f} | {r['test']['mase']:.3f} | "
                  f"{r['seconds']:.0f} |", flush=True)  # fmt: skip
    if args.backtest:
        result["backtest"] = backtest(task_over, trainer_over, out / "backtest", args.time_budget)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out / 'forecast.png'} and {out / 'result.json'}")
    return result


if __name__ == "__main__":
    main()
