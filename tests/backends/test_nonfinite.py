"""NaN and Inf propagate through every backend as through the reference loop (and torch.nn): a
diverging model must not look healthy. The float32 C kernels once clamped NaN into numbers."""

from __future__ import annotations

import pytest
import torch

import rnnkit

VARIANTS = [
    (rnnkit.LSTM, {"layer_norm": True}),
    (rnnkit.LSTM, {"peephole": True, "zoneout": 0.1}),
    (rnnkit.LSTM, {"layer_norm": True, "recurrent_dropout": 0.2, "zoneout": (0.1, 0.2)}),
    (rnnkit.GRU, {"layer_norm": True}),
    (rnnkit.GRU, {"zoneout": 0.1}),
    (rnnkit.RNN, {"layer_norm": True}),
]


@pytest.mark.parametrize("kernels", ["1", "0"], ids=["c-kernels", "torch-ops"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("where", ["input-nan", "input-inf", "weight-nan", "weight-inf"])
@pytest.mark.parametrize("cls,kw", VARIANTS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_non_finite_values_propagate_as_in_the_reference(cls, kw, where, dtype, kernels,
                                                         monkeypatch):  # fmt: skip
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", kernels)
    torch.manual_seed(0)
    fast = cls(3, 4, num_layers=2, dtype=dtype, **kw).eval()
    ref = cls(3, 4, num_layers=2, dtype=dtype, backend="reference", **kw).eval()
    bad = float("nan") if where.endswith("nan") else float("inf")
    x = torch.randn(6, 2, 3, dtype=dtype)
    if where.startswith("input"):
        x[2, 0, 1] = bad
    else:
        with torch.no_grad():
            fast.weight_hh_l0[1, 0] = bad
    ref.load_state_dict(fast.state_dict())
    out, ref_out = fast(x)[0], ref(x)[0]
    assert torch.equal(out.isnan(), ref_out.isnan())
    assert torch.equal(out.isinf(), ref_out.isinf())
    if where == "input-nan" or where == "weight-nan":
        assert out.isnan().any()  # the NaN reached the output
    finite = ref_out.isfinite()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out[finite], ref_out[finite], rtol=tol, atol=tol)


def test_a_nan_in_training_reaches_the_gradients():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, layer_norm=True)
    x = torch.randn(5, 2, 3)
    x[1, 1, 0] = float("nan")
    layer(x)[0].sum().backward()
    assert layer.weight_hh_l0.grad.isnan().any()
