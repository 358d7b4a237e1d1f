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


@pytest.mark.parametrize("scale", [100.0, 1e4])
@pytest.mark.parametrize("cls,kw", VARIANTS + [(rnnkit.GRU, {"zoneout": 0.1, "recurrent_dropout": 0.0}),
                                              (rnnkit.RNN, {"zoneout": 0.1})],  # fmt: skip
                         ids=lambda v: getattr(v, "__name__", str(v)))  # fmt: skip
def test_saturating_inputs_stay_finite_and_equal_the_reference(cls, kw, scale):
    """Inputs far into the gates' saturation: the float32 C kernels' exp once overflowed to Inf
    there (e^88.7 > FLT_MAX) and a fast reciprocal turned it into NaN."""
    torch.manual_seed(0)
    fast = cls(4, 16, **kw).eval()
    ref = cls(4, 16, backend="reference", **kw).eval()
    ref.load_state_dict(fast.state_dict())
    x = (torch.randn(6, 3, 4) * scale).requires_grad_()
    out, ref_out = fast(x)[0], ref(x)[0]
    assert out.isfinite().all()
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    (g,) = torch.autograd.grad(out.sum(), fast.weight_hh_l0)
    (g_ref,) = torch.autograd.grad(ref_out.sum(), ref.weight_hh_l0)
    assert g.isfinite().all()
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)
