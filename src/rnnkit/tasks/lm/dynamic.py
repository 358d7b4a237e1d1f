"""Dynamic evaluation, Krause, Kahembwe, Murray & Renals 2018, "Dynamic Evaluation of Neural Sequence
Models": after scoring each segment of the text, one gradient step on that segment, so the model
adapts to the recent history as it reads.

Two update rules, for the parameters ``θ`` (``θ_0`` the trained ones) and the gradient ``g`` of the
segment's mean loss:

- ``"sgd"`` (their section 5, plain SGD with an optional decay toward the trained weights)::

      θ <- θ - lr g + decay (θ_0 - θ)

- ``"rms"`` (their "RMS normalised" rule with global decay, section 5.1): ``MS = sqrt(mean g^2)``
  of each parameter over ``rms_batches`` training windows, ``r = MS / sum_p mean(MS_p)`` (clamped
  at ``1 / decay``, so no step goes past ``θ_0``)::

      θ <- θ - lr g / (MS + eps) + decay r (θ_0 - θ)

The model updated is a copy: the one given, and the checkpoint it came from, are never changed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...state import detach_state

METHODS = ("sgd", "rms")


@dataclass
class DynamicEvalConfig:
    """Settings of dynamic evaluation.

    ``lr`` the step size (0: plain evaluation); ``decay`` the pull toward the trained weights;
    ``method`` ``"sgd"`` or ``"rms"``; ``bptt`` the segment length (None: the run's); ``batch_size``
    the columns read in parallel, all adapting one model (None: the run's ``eval_batch_size``; 1
    reads the text as one stream, as Krause et al.); ``rms_batches`` the training windows of the
    ``"rms"`` rule's statistics; ``eps`` its floor.
    """

    lr: float = 2e-5
    decay: float = 0.02
    method: str = "rms"
    bptt: int | None = None
    batch_size: int | None = None
    rms_batches: int = 100
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"dynamic eval method must be one of {METHODS}, got {self.method!r}")
        for name in ("lr", "decay", "eps"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not (math.isfinite(v) and v >= 0)
            ):
                raise ValueError(f"dynamic eval {name} must be a finite number >= 0, got {v!r}")
        if self.method == "rms" and self.eps <= 0:
            raise ValueError(f"dynamic eval eps must be > 0 with method 'rms', got {self.eps!r}")
        for name in ("bptt", "batch_size", "rms_batches"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"dynamic eval {name} must be an integer >= 1, got {v!r}")


class DynamicUpdater:
    """Holds the adapting copy of a model and applies the configured update after each segment."""

    def __init__(self, model: nn.Module, cfg: DynamicEvalConfig) -> None:
        self.cfg = cfg
        self.model = copy.deepcopy(model).eval()  # eval mode: no dropout while adapting
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.start = [p.detach().clone() for p in self.params]
        self.ms: list[Tensor] | None = None  # per-parameter RMS of training gradients
        self.rate: list[Tensor] | None = None  # per-parameter decay rates ("rms")

    def gradient_statistics(self, task: Any, device: torch.device) -> None:
        """The ``"rms"`` rule's ``MS`` from the first ``rms_batches`` training windows (evaluation
        mode, the state carried as in training); then :meth:`set_statistics`."""
        batches = task.batches("train", 0)
        n = min(len(batches), self.cfg.rms_batches)
        sums = [torch.zeros_like(p) for p in self.params]
        state = None
        for i in range(n):
            batch = tuple(t.to(device) for t in batches[i])
            loss, state, _ = task.loss(self.model, batch, state)
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s.add_(g * g)
            state = detach_state(state)
        self.set_statistics([(s / max(n, 1)).sqrt_() for s in sums])

    def set_statistics(self, ms: list[Tensor]) -> None:
        """``MS`` per parameter; the decay rates ``r = MS / sum_p mean(MS_p)``, at most
        ``1 / decay``."""
        self.ms = ms
        total = sum(float(m.mean()) for m in ms)
        cap = 1.0 / self.cfg.decay if self.cfg.decay > 0 else math.inf
        self.rate = [(m / max(total, 1e-30)).clamp_(max=cap) for m in ms]
        self._inverse = [1.0 / (m + self.cfg.eps) for m in ms]
        self._pull = [self.cfg.decay * r for r in self.rate]

    @torch.no_grad()
    def update(self, grads: list[Tensor | None]) -> None:
        """One step with the gradients of the segment just scored (one per parameter, None for a
        parameter the segment did not reach); both terms from the weights before the step."""
        cfg = self.cfg
        rms = cfg.method == "rms"
        if rms and self.ms is None:
            raise ValueError("the 'rms' rule needs gradient_statistics(task, device) first")
        pull = None
        if cfg.decay:
            pull = torch._foreach_sub(self.start, self.params)  # theta_0 - theta, before the step
            torch._foreach_mul_(pull, self._pull if rms else cfg.decay)
        live = [i for i, g in enumerate(grads) if g is not None]
        if cfg.lr and live:
            params = [self.params[i] for i in live]
            steps = [grads[i] for i in live]
            if rms:
                inverse = [self._inverse[i] for i in live]
                torch._foreach_addcmul_(params, steps, inverse, value=-cfg.lr)
            else:
                torch._foreach_add_(params, steps, alpha=-cfg.lr)
        if pull is not None:
            torch._foreach_add_(self.params, pull)
