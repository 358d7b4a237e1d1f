"""IndRNN (Li, Li, Cook, Zhu & Gao 2018, "Independently Recurrent Neural Network (IndRNN):
Building A Longer and Deeper RNN"): each unit recurs only on itself, through one weight.

Gate ``(h,)``; state ``(h,)``, ``h (N, H)``; recurrent weight ``u = weight_hh (H,)``,
elementwise::

    h_t = relu(LN(x_t W_ih^T; ln_ih) + b_ih + u' * (h_{t-1} * mask) + b_hh),
    u' = clamp(u, -recurrent_max, recurrent_max)            (u itself with recurrent_max None)

The paper bounds ``|u|`` to keep the gradient through ``T`` steps from exploding or vanishing:
with relu, ``|u| <= gamma^(1/T)`` lets it grow at most ``gamma``-fold (:func:`recurrent_max_for`).
``recurrent_max`` applies that bound as a clamp inside every step (differentiable: a clamped
entry gets no gradient, and the stored ``u`` keeps its value). ``u`` starts uniform in ``[0, 1]``
(in ``[0, recurrent_max]`` when that is smaller), as in the paper. Options: ``layer_norm`` (of the
input projection only, ``ln_ih (H,)``), ``recurrent_dropout`` (on ``h`` before ``u``),
``weight_drop`` (DropConnect on ``u``; the clamp applies to the dropped weight), ``zoneout`` and
``recurrent_max``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import CellParams, recurrent_projection
from .spec import CellSpec, StateSpec, register_cell


def recurrent_max_for(steps: int, gamma: float = 2.0) -> float:
    """The paper's bound ``gamma^(1/steps)`` on ``|u|`` for sequences of ``steps`` steps: the
    gradient through them then grows at most ``gamma``-fold."""
    if steps < 1 or gamma <= 0:
        raise ValueError(f"steps must be >= 1 and gamma > 0, got steps={steps}, gamma={gamma}")
    return float(gamma) ** (1.0 / steps)


def indrnn_step(
    gx: Tensor,
    h: Tensor,
    p: CellParams,
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """One IndRNN step: ``gx (N, H)`` the input projection, ``h (N, H)``; ``p.w_hh`` (or the
    DropConnected ``w_hh``) is ``u (H,)``, clamped to ``p.variants.recurrent_max``."""
    u = p.w_hh if w_hh is None else w_hh
    bound = getattr(p.variants, "recurrent_max", None)
    if bound is not None:
        u = torch.clamp(u, -bound, bound)
    return torch.relu(gx + recurrent_projection(h, p, u, dropout_mask))


def _step(gx, state, p, w_hh=None, dropout_mask=None):
    return (indrnn_step(gx, state[0], p, w_hh, dropout_mask),)


def _parameters(hidden: int, variants) -> dict[str, tuple[int, ...]]:
    return {"layer_norm_ih": (hidden,)} if variants.layer_norm else {}


@torch.no_grad()
def _init_parameter(name: str, param: Tensor, hidden: int, variants) -> None:
    if name.startswith("weight_hh"):
        bound = getattr(variants, "recurrent_max", None)
        param.uniform_(0.0, 1.0 if bound is None else min(1.0, bound))


INDRNN = register_cell(
    CellSpec(
        name="indrnn",
        title="IndRNN",
        torch_mode="",
        gates=("h",),
        states=(StateSpec("h", "output", zoneout="h"),),
        step=_step,
        parameters=_parameters,
        layer="IndRNN",
        cell="IndRNNCell",
        options=frozenset({"recurrent_max"}),
        paper="Li, Li, Cook, Zhu & Gao 2018",
        recurrent="diagonal",
        init_parameter=_init_parameter,
    )
)
