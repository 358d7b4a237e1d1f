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

import torch
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
    ``peephole (3, H)`` (rows i, f, o) or None. ``w_hh`` takes the shape of the cell's kind of
    recurrent weight (:meth:`rnnkit.registry.CellSpec.weight_hh_shape`): ``(G*H,)`` elementwise,
    ``(K, G*H/K, H/K)`` block-diagonal by heads, or None for a cell without one.
    ``variants`` is the layer's validated options (:class:`rnnkit.options.Variants`) for the
    steps that read one (IndRNN's ``recurrent_max``, sLSTM's ``forget_gate``), else None.
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
    variants: Any = None

    @classmethod
    def of(cls, module: Any, suffix: str = "") -> CellParams:
        """The parameters of a torch.nn or rnnkit layer or cell named ``weight_ih{suffix}`` etc.
        (``suffix`` ``"_l0"``, ``"_l1_reverse"``; ``""`` for a cell)."""

        params = getattr(module, "_parameters", None) or {}

        def get(name: str) -> Tensor | None:
            key = name + suffix  # a registered parameter first: nn.Module.__getattr__ is slow
            return params[key] if key in params else getattr(module, key, None)

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
            variants=getattr(module, "variants", None),
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
    The weight's rank says how it applies (:func:`apply_recurrent_weight`).
    """
    w = p.w_hh if w_hh is None else w_hh
    if dropout_mask is not None:
        h = h * dropout_mask
    if w.dim() == 2 and p.ln_hh is None:
        return F.linear(h, w, p.b_hh)
    out = apply_recurrent_weight(h, w)
    if p.ln_hh is not None:
        out = layer_norm(out, p.ln_hh)
    return out if p.b_hh is None else out + p.b_hh


def apply_recurrent_weight(h: Tensor, w: Tensor) -> Tensor:
    """``h (N, H)`` through a recurrent weight of any kind, ``-> (N, G*H)``:

    * ``(G*H, H)`` dense: ``h W^T``;
    * ``(G*H,)`` elementwise (IndRNN, Li et al. 2018): ``[h, ..., h] * w`` (``h`` repeated per gate);
    * ``(K, G*H/K, H/K)`` block-diagonal by heads (xLSTM's sLSTM, Beck et al. 2024): head ``k``
      maps units ``k*H/K ... (k+1)*H/K - 1`` of ``h`` to the ``G`` gates of the same units, its
      rows gate-major (gate ``g``, unit ``j`` of the head is row ``g*H/K + j``).
    """
    if w.dim() == 2:
        return F.linear(h, w)
    if w.dim() == 1:
        gates = w.shape[0] // h.shape[-1]
        return (h if gates == 1 else h.repeat(1, gates)) * w
    heads, rows, size = w.shape
    n = h.shape[0]
    out = torch.bmm(h.view(n, heads, size).transpose(0, 1), w.transpose(1, 2))  # (K, N, G*H/K)
    gates = rows // size
    return out.view(heads, n, gates, size).permute(1, 2, 0, 3).reshape(n, gates * heads * size)


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
    ``zoneout_h``/``zoneout_c``: ``(T, N, .)`` masks in training or floats (rates) in evaluation;
    a layer's masks may come as ``BernoulliDraws`` (:mod:`rnnkit.backends.cpu_kernels.library`),
    which the C kernels draw themselves and :func:`rnnkit.backends.dispatch.drawn` makes tensors
    of for every other backend.
    """

    dropout_mask: Tensor | None = None
    w_hh: Tensor | None = None
    zoneout_h: Any = 0.0  # Tensor | BernoulliDraws | float
    zoneout_c: Any = 0.0

    def zoneout_for(self, state: str | None) -> Tensor | float:
        """The zoneout weights of a state whose ``StateSpec.zoneout`` is ``state``."""
        if state == "h":
            return self.zoneout_h
        return self.zoneout_c if state == "c" else 0.0
