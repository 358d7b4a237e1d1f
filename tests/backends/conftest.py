"""Shared helpers of the backend tests."""

from __future__ import annotations

import pytest
import torch


def _outputs_and_gradients(layer, x, lengths):
    """``(out, states, grads)`` of ``layer(x, lengths=...)`` with the masks drawn from seed 1: the
    final states as a tuple, and the gradients of ``sum(out^2) + sum(states)`` with respect to
    ``x`` and every parameter."""
    torch.manual_seed(1)
    xi = x.clone().requires_grad_()
    out, hn = layer(xi, lengths=lengths)
    states = hn if isinstance(hn, tuple) else (hn,)
    loss = out.square().sum() + sum(s.sum() for s in states)
    return out, states, torch.autograd.grad(loss, [xi, *layer.parameters()])


@pytest.fixture
def outputs_and_gradients():
    """:func:`_outputs_and_gradients`, for comparing one layer on two backends."""
    return _outputs_and_gradients
