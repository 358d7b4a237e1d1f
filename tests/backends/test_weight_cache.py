"""Issue #10, the forward without gradients: the weights' packed layouts are kept between calls
(:mod:`rnnkit.backends.cpu_kernels.weight_cache`) and eager calls skip the op dispatcher; a weight
written in place is packed again, and the op still serves whatever needs to see it."""

from __future__ import annotations

import gc

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels
from rnnkit.backends.cpu_kernels import weight_cache

pytestmark = pytest.mark.skipif(
    cpu_kernels.library(torch.float32) is None, reason="the C kernels do not build here"
)


def _counting_build(calls: list):
    def build(w):
        calls.append(1)
        return w.t().contiguous()

    return build


def test_a_layout_is_built_once_per_unchanged_weight_and_again_after_a_write():
    w, calls = torch.randn(6, 4), []
    build = _counting_build(calls)
    first = weight_cache.reused(w, "t", build)
    assert weight_cache.reused(w, "t", build) is first and len(calls) == 1
    weight_cache.reused(w, "other", build)  # another layout of the same weight: its own entry
    assert len(calls) == 2
    with torch.no_grad():
        w.mul_(2.0)  # an in-place write bumps the version counter
    again = weight_cache.reused(w, "t", build)
    assert len(calls) == 3 and torch.equal(again, w.t())


def test_an_entry_dies_with_its_weight_and_inference_tensors_are_not_kept():
    weight_cache.clear()
    w = torch.randn(3, 3)
    weight_cache.reused(w, "t", _counting_build([]))
    assert weight_cache.size() == 1
    del w
    gc.collect()
    assert weight_cache.size() == 0
    with torch.inference_mode():
        v = torch.randn(3, 3)
    calls = []
    weight_cache.reused(v, "t", _counting_build(calls))
    weight_cache.reused(v, "t", _counting_build(calls))
    assert len(calls) == 2 and weight_cache.size() == 0


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
def test_a_forward_without_gradients_sees_weights_changed_in_place(cls):
    torch.manual_seed(0)
    layer = cls(8, 16, 2, layer_norm=True).eval()
    x = torch.randn(7, 3, 8)
    with torch.no_grad():
        layer(x)  # packs and keeps the weights
        for p in layer.parameters():
            p.add_(0.05 * torch.randn_like(p))  # as an optimizer step does
        got, _ = layer(x)
    fresh = cls(8, 16, 2, layer_norm=True).eval()
    fresh.load_state_dict(layer.state_dict())
    want, _ = fresh(x)  # with gradients: nothing kept, the op dispatched
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)


def test_an_optimizer_step_between_evaluations_changes_the_outputs():
    torch.manual_seed(1)
    layer = rnnkit.LSTM(6, 12, zoneout=0.1).eval()
    x = torch.randn(5, 2, 6)
    with torch.no_grad():
        before, _ = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x)[0].square().sum().backward()
    opt.step()
    with torch.no_grad():
        after, _ = layer(x)
        layer.train(False)
        reference = rnnkit.LSTM(6, 12, zoneout=0.1, backend="reference").eval()
        reference.load_state_dict(layer.state_dict())
        want, _ = reference(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, want, rtol=1e-5, atol=1e-6)


def test_the_profiler_still_sees_the_op_without_gradients():
    layer = rnnkit.LSTM(4, 8, layer_norm=True)
    x = torch.randn(3, 2, 4)
    with torch.no_grad(), torch.profiler.profile() as prof:
        layer(x)
    assert any(e.name == "rnnkit::lstm_sequence" for e in prof.events())
