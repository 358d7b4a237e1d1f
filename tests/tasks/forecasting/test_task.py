"""The forecasting task end to end on tiny series, its splits, baselines and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.tasks.forecasting import (
    ForecastConfig,
    ForecastTask,
    forecast_errors,
)
from rnnkit.train import Trainer, TrainerConfig, best_checkpoint, load_model_weights

TINY = dict(dataset="sine", sine_length=240, sine_period=20, sine_noise=0.02, horizon=10,
            input_len=20, transform="none", hidden_size=16,
            statsmodels_baselines=False)  # fmt: skip


def train(task, tmp_path=None, **kw):
    cfg = dict(optimizer="adam", lr=1e-2, epochs=15, clip_norm=1.0, progress=False, seed=0)
    cfg.update(kw)
    if tmp_path is not None:
        cfg["out_dir"] = str(tmp_path / "run")
    trainer = Trainer(task, TrainerConfig(**cfg))
    return trainer, trainer.fit()


def test_direct_mode_learns_a_sine_through_the_trainer(tmp_path):
    task = ForecastTask(ForecastConfig(**TINY))
    before = task.evaluate(task.build_model(), "test")
    trainer, summary = train(task, tmp_path)
    after = task.evaluate(trainer.model, "test")
    assert set(after) >= {"loss", "mae", "rmse", "mase", "snaive_mase", "snaive_drift_mase"}
    assert after["mae"] < 0.1 < before["mae"]
    assert summary["valid"]["mase"] == pytest.approx(task.evaluate(trainer.model, "valid")["mase"])
    model = task.build_model()  # the best checkpoint reloads to the evaluation it was saved at
    load_model_weights(best_checkpoint(tmp_path / "run"), model)
    assert task.evaluate(model, "valid")["loss"] == pytest.approx(summary["best"]["loss"], rel=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "slstm", "mingru"])
def test_autoregressive_forecast_is_the_fed_back_rollout(cell):
    cfg = {**TINY, "mode": "autoregressive", "ensemble": 2, "cell": cell}
    task = ForecastTask(ForecastConfig(**cfg))
    trainer, _ = train(task, epochs=3 if cell == "lstm" else 1)
    model = trainer.model.eval()
    x = torch.randn(20, 3, 1)
    got = model.forecast(x, 5)  # (N, H, C), stepping with LayerStepper
    preds = []
    for member in model.members:  # by hand: rerun the whole layer on the growing sequence
        seq, outs = x, []
        for _ in range(5):
            out, _ = member.rnn(seq)
            y = member.head(out[-1])
            outs.append(y)
            seq = torch.cat([seq, y.unsqueeze(0)])
        preds.append(torch.stack(outs, 1))
    torch.testing.assert_close(got, torch.stack(preds).mean(0), atol=1e-5, rtol=1e-5)


def test_co2_split_and_baselines_match_the_issue():
    task = ForecastTask(ForecastConfig())  # the defaults: co2, 48 months held out, period 12
    assert len(task.series) == 526 and task.origin("test") == 526 - 48
    model = task.build_model()
    result = task.evaluate(model, "test")
    got = {k: result[k] for k in ("snaive_mase", "snaive_drift_mase", "ets_mase", "sarima_mase")}
    assert got == pytest.approx(
        {"snaive_mase": 4.03, "snaive_drift_mase": 1.82, "ets_mase": 0.81, "sarima_mase": 0.78},
        abs=0.006,
    )
    y = task.series.values
    forecast = task.forecast(model, y[:-48])
    assert result["mase"] == pytest.approx(forecast_errors(y[-48:], forecast, y[:-48], 12)["mase"])


def test_drop_last_moves_the_splits_earlier():
    full = ForecastTask(ForecastConfig(statsmodels_baselines=False))
    cfg = ForecastConfig(statsmodels_baselines=False, drop_last=48)
    cut = ForecastTask(cfg)
    assert len(cut.series) == 526 - 48 and cut.series.dates[-1] == "1997-12-01"
    model = full.build_model()
    a, b = cut.evaluate(model, "test"), full.evaluate(model, "valid")
    assert a["snaive_mase"] == b["snaive_mase"] and a["mase"] != b["mase"]  # scaler: less data
    same_scaler = ForecastTask(cfg, full.scaler)
    assert same_scaler.evaluate(model, "test") == pytest.approx(b)


def test_csv_multivariate_target_predict_and_reload(tmp_path):
    t = np.arange(150)
    rng = np.random.default_rng(0)
    a = np.sin(2 * np.pi * t / 12) + 0.01 * t + 0.05 * rng.normal(size=150)
    b = np.cos(2 * np.pi * t / 12)
    lines = ["month,a,b"] + [
        f"{2000 + i // 12}-{i % 12 + 1:02d}-01,{x:.5f},{y:.5f}"
        for i, (x, y) in enumerate(zip(a, b))
    ]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = ForecastConfig(data=str(path), target="a", horizon=12, input_len=24, transform="diff",
                         hidden_size=8, statsmodels_baselines=False)  # fmt: skip
    task = ForecastTask(cfg)
    assert task.period == 12 and task.targets == ["a"]
    trainer, _ = train(task, epochs=3)
    result = task.evaluate(trainer.model, "test")
    assert "snaive_mase" in result and "ets_mase" not in result
    out = tmp_path / "pred"
    lines = task.predict(trainer.model, [], out)
    assert lines[1] == "date\ta" and lines[2].startswith("2012-07-01\t")  # 150 months from 2000-01
    assert len(lines) == 2 + 12
    assert (out / "forecast.png").stat().st_size > 0 and (out / "test.png").stat().st_size > 0
    assert (out / "forecast.csv").read_text().splitlines()[0] == "date\ta"
    # JSON round trip of the task state gives the same evaluation with the same weights
    state = json.loads(json.dumps(task.state_dict()))
    again = ForecastTask.from_state(state)
    assert again.evaluate(trainer.model, "test")["mase"] == pytest.approx(result["mase"])
    # forecasting another file's continuation
    np.save(tmp_path / "h.npy", np.stack([a, b], 1)[:60])
    with pytest.raises(ValueError, match=r"no column"):
        task.predict(trainer.model, [str(tmp_path / "h.npy")])  # .npy columns are x0, x1


def test_bad_inputs_give_clear_errors(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("y\n" + "\n".join(str(i) for i in range(30)) + "\n")
    with pytest.raises(ValueError, match=r"short\.csv: 30 rows are too few for one window"):
        ForecastTask(ForecastConfig(data=str(path), horizon=10, input_len=5))
    with pytest.raises(ValueError, match=r"target \['z'\] is not among columns"):
        ForecastTask(ForecastConfig(data=str(path), target="z", horizon=2, input_len=5))
    two = tmp_path / "two.csv"
    two.write_text("a,b\n" + "\n".join(f"{i},{i}" for i in range(40)) + "\n")
    with pytest.raises(ValueError, match=r"autoregressive mode feeds every column back"):
        ForecastTask(ForecastConfig(data=str(two), target="a", horizon=2, input_len=5,
                                    mode="autoregressive"))  # fmt: skip
    with pytest.raises(ValueError, match=r"transform must be one of"):
        ForecastConfig(transform="log")
    task = ForecastTask(ForecastConfig(data=str(path), horizon=2, input_len=5))
    with pytest.raises(ValueError, match=r"forecast splits are \('valid', 'test'\)"):
        task.evaluate(task.build_model(), "train")
