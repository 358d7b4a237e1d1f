"""The dispatch of the parallel backend: which path runs each cell under each backend name, and
the refusals when one asked for cannot serve the call."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels, dispatch, parallel, reference
from rnnkit.functional import CellParams, StepOptions
from rnnkit.registry import get_cell

F64 = torch.float64


@pytest.fixture
def calls(monkeypatch):
    """Count the calls into the parallel backend and the reference loop."""
    seen = {"parallel": 0, "reference": 0}
    for name, module in (("parallel", parallel), ("reference", reference)):
        original = module.scan

        def spy(*args, _original=original, _name=name, **kwargs):
            seen[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, "scan", spy)
    return seen


@pytest.mark.parametrize(
    "name,backend,path",
    [("mingru", "auto", "parallel"), ("minlstm", "fused", "parallel"),
     ("mingru", "parallel", "parallel"), ("mingru", "reference", "reference"),
     ("indrnn", "auto", "reference"), ("slstm", "reference", "reference"),
     ("slstm", "auto", "c_loop")],
)  # fmt: skip
def test_each_cell_runs_on_the_path_dispatch_picks(calls, name, backend, path):
    layer = rnnkit.Recurrent(name, 3, 4, num_layers=2, bidirectional=True, backend=backend)
    layer(torch.randn(5, 2, 3))
    if path == "c_loop":  # the sLSTM's C time loop where the kernels are built
        expected = 0 if cpu_kernels.library(torch.float32) is not None else 4
        assert calls["reference"] == expected and calls["parallel"] == 0
        return
    assert calls[path] == 4 and sum(calls.values()) == 4  # 2 layers x 2 directions


def test_fused_path_prefers_kernels_then_the_parallel_scan_and_refuses_by_name():
    like = torch.zeros(1)
    p = CellParams(w_ih=torch.zeros(8, 3), w_hh=None)
    assert dispatch.fused_path(get_cell("mingru"), like, p) == "parallel"
    assert dispatch.fused_path(get_cell("indrnn"), like, p) == "reference"
    masked = StepOptions(dropout_mask=torch.ones(1, 4))
    assert dispatch.fused_path(get_cell("mingru"), like, p, "fused", masked) == "reference"
    with pytest.raises(ValueError, match="'parallel' cannot run this minGRU layer: it runs no "
                       "recurrent dropout, DropConnect or zoneout"):  # fmt: skip
        dispatch.fused_path(get_cell("mingru"), like, p, "parallel", masked)
    with pytest.raises(ValueError, match="backend='torch_ops' has no sLSTM kernel"):
        rnnkit.SLSTM(3, 4, backend="torch_ops")(torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="backend='cpu_kernels' cannot run this minLSTM layer: "
                       "they have no minLSTM kernel"):  # fmt: skip
        rnnkit.MinLSTM(3, 4, backend="cpu_kernels")(torch.randn(2, 1, 3))


def test_dispatch_scan_on_projections_equals_the_reference_loop():
    gen = torch.Generator().manual_seed(0)
    spec = get_cell("minlstm")
    gx = torch.randn(9, 3, 12, generator=gen, dtype=F64)
    h0 = (torch.randn(3, 4, generator=gen, dtype=F64),)
    p = CellParams(w_ih=torch.zeros(12, 2, dtype=F64), w_hh=None)
    lengths = torch.tensor([9, 4, 1])
    for reverse in (False, True):
        a = dispatch.scan(spec, gx, h0, p, lengths=lengths, reverse=reverse)
        b = reference.scan(spec, gx, h0, p, lengths=lengths, reverse=reverse)
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-13)
        torch.testing.assert_close(a[1][0], b[1][0], rtol=0, atol=1e-13)
