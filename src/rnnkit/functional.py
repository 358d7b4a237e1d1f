"""The math every recurrent cell shares, as pure functions on tensors.

Gate order is torch's everywhere in rnnkit: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``, so that weights
interoperate with ``torch.nn``. A step is split in two so that the input half can be computed for
all time steps with one GEMM:

* :func:`input_projection`: ``LN(x W_ih^T; gamma_ih) + b_ih`` for ``x`` of shape ``(..., D)``;
* a cell's step function (:mod:`rnnkit.registry`, e.g. ``lstm_step``): the recurrence given that
  projection for one step, built from :func:`recurrent_projection` and the gate math.

Layer normalisation follows Ba, Kiros & Hinton 2016, "Layer Normalization", eq. (20)-(22): the input and
the recurrent pre-activations are normalised separately over the whole gate vector (``G*H`` features)
with their own gains (the biases ``b_ih``, ``b_hh`` play the role of the shifts), and for the LSTM the
cell state is normalised (gain and shift) before the output ``tanh``; the carried ``c`` is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

LN_EPS = 1e-5


@dataclass(frozen=True)
class CellParams:
    """The parameters of one direction of one layer.

    Shapes, for ``G`` gates (LSTM 4, GRU 3, RNN 1), hidden size ``H``, input size ``D`` and recurrent
    size ``R`` (``H``, or ``proj_size`` for a projected LSTM):
    ``w_ih (G*H, D)``, ``w_hh (G*H, R)``, ``b_ih``/``b_hh (G*H,)`` or None, ``w_hr (R, H)`` or None,
    ``ln_ih``/``ln_hh (G*H,)`` layer-norm gains or None, ``ln_c_weight``/``ln_c_bias (H,)`` or None,
    ``peephole (3, H)`` (rows i, f, o) or None.
    """

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None = None
    b_hh: Tensor | None = None
    w_hr: Tensor | None = None
    ln_ih: Tensor | None = None
    ln_hh: Tensor | None = None
    ln_c_weight: Tensor | None = None
    ln_c_bias: Tensor | None = None
    peephole: Tensor | None = None

    @classmethod
    def of(cls, module: Any, suffix: str = "") -> CellParams:
        """The parameters of a torch.nn or rnnkit layer or cell named ``weight_ih{suffix}`` etc.
        (``suffix`` ``"_l0"``, ``"_l1_reverse"``; ``""`` for a cell)."""

        def get(name: str) -> Tensor | None:
            return getattr(module, name + suffix, None)

        return cls(
            w_ih=get("weight_ih"),
            w_hh=get("weight_hh"),
            b_ih=get("bias_ih") if module.bias else None,
            b_hh=get("bias_hh") if module.bias else None,
            w_hr=get("weight_hr") if getattr(module, "proj_size", 0) else None,
            ln_ih=get("layer_norm_ih"),
            ln_hh=get("layer_norm_hh"),
            ln_c_weight=get("layer_norm_c_weight"),
            ln_c_bias=get("layer_norm_c_bias"),
            peephole=get("peephole"),
        )


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None = None) -> Tensor:
    """``weight * (x - mean) / sqrt(var + eps) + bias`` over the last dimension (biased variance)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, LN_EPS)


def input_projection(x: Tensor, p: CellParams) -> Tensor:
    """``LN(x W_ih^T; ln_ih) + b_ih``: ``(..., D) -> (..., G*H)``; one GEMM for every step at once."""
    if p.ln_ih is None:
        return F.linear(x, p.w_ih, p.b_ih)
    out = layer_norm(F.linear(x, p.w_ih), p.ln_ih)
    return out if p.b_ih is None else out + p.b_ih


def recurrent_projection(
    h: Tensor, p: CellParams, w_hh: Tensor | None = None, dropout_mask: Tensor | None = None
) -> Tensor:
    """``LN((h * mask) W_hh^T; ln_hh) + b_hh``: ``(N, R) -> (N, G*H)``.

    ``w_hh`` overrides ``p.w_hh`` (DropConnect passes the dropped matrix); ``dropout_mask (N, R)`` is the
    recurrent dropout mask, applied to the GEMM's input only (the carried state is not masked).
    """
    w = p.w_hh if w_hh is None else w_hh
    if dropout_mask is not None:
        h = h * dropout_mask
    if p.ln_hh is None:
        return F.linear(h, w, p.b_hh)
    out = layer_norm(F.linear(h, w), p.ln_hh)
    return out if p.b_hh is None else out + p.b_hh


def zoneout(prev: Tensor, new: Tensor, keep: Tensor | float) -> Tensor:
    """Zoneout (Krueger et al. 2017): ``keep * prev + (1 - keep) * new``.

    In training ``keep`` is a Bernoulli(rate) mask (1 keeps the previous value); in evaluation it is the
    rate itself, the mask's expectation.
    """
    return new + keep * (prev - new)


@dataclass(frozen=True)
class StepOptions:
    """Per-direction stochastic inputs of the time loop (all optional).

    ``dropout_mask (N, R)``: recurrent dropout mask, already scaled by ``1/(1-p)`` (Gal & Ghahramani 2016);
    ``w_hh``: the DropConnected recurrent matrix (Merity et al. 2017);
    ``zoneout_h``/``zoneout_c``: ``(T, N, .)`` masks in training or floats (rates) in evaluation.
    """

    dropout_mask: Tensor | None = None
    w_hh: Tensor | None = None
    zoneout_h: Tensor | float = 0.0
    zoneout_c: Tensor | float = 0.0

    def zoneout_for(self, state: str | None) -> Tensor | float:
        """The zoneout weights of a state whose ``StateSpec.zoneout`` is ``state``."""
        if state == "h":
            return self.zoneout_h
        return self.zoneout_c if state == "c" else 0.0
