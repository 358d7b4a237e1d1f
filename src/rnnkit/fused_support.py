"""Shared pieces of the fused sequence kernels (:mod:`rnnkit.fused_lstm`, :mod:`rnnkit.fused_gru`).

The fused kernels write the carried state of step ``t`` into ``S[t]`` of a ``(T, N, .)`` buffer
(frozen at padded steps), so the state *before* step ``t`` is ``S[t - 1]`` (``S[t + 1]`` when
reversed) or the initial state. Zoneout and ``lengths`` are both folded into one blend per step::

    s_t = lerp(s_new, s_prev, k_t)        # = s_new + k_t * (s_prev - s_new)

with ``k_t`` the zoneout keep mask (training), the zoneout rate (evaluation) or ``1`` at a padded
step (``lerp`` with weight 1 returns ``s_prev`` exactly), which is :func:`rnnkit.functional.zoneout`
followed by the ``torch.where`` of :func:`rnnkit.functional.scan`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from . import cpu_kernels
from .functional import LN_EPS

# per-step lerp weights: a (T, N, C) or (T, N, 1) tensor, a float, or none
Keep = Tensor | float | None


@dataclass(frozen=True)
class Seq:
    """Time bookkeeping of one direction: ``steps``, ``reverse``, ``valid (T, N, 1)`` or None."""

    steps: int
    reverse: bool
    valid: Tensor | None = None

    def order(self) -> range:
        """Time indices in the order the recurrence visits them."""
        return range(self.steps - 1, -1, -1) if self.reverse else range(self.steps)

    def backward_order(self) -> range:
        return range(self.steps) if self.reverse else range(self.steps - 1, -1, -1)

    def prev(self, buf: Tensor, t: int, initial: Tensor) -> Tensor:
        """The state before step ``t``: ``buf[t -/+ 1]``, or ``initial`` at the first step."""
        if self.reverse:
            return initial if t == self.steps - 1 else buf[t + 1]
        return initial if t == 0 else buf[t - 1]

    def before(self, buf: Tensor, initial: Tensor) -> Tensor:
        """``(T, N, C)`` stack of the states before each step, aligned with ``buf``."""
        if self.reverse:
            return torch.cat([buf[1:], initial.unsqueeze(0)])
        return torch.cat([initial.unsqueeze(0), buf[:-1]])

    def last(self, buf: Tensor) -> Tensor:
        """The final state (after the last visited step), as a new tensor."""
        return (buf[0] if self.reverse else buf[-1]).clone()

    def outputs(self, buf: Tensor) -> Tensor:
        """The layer output: the states, zero at padded steps."""
        return buf if self.valid is None else torch.where(self.valid, buf, 0.0)


def keep_weights(zone: Tensor | float, valid: Tensor | None, like: Tensor) -> Keep:
    """Per-step lerp weights from a zoneout mask ``(T, N, C)`` or rate, and ``valid (T, N, 1)``."""
    if isinstance(zone, Tensor):
        k: Tensor | float | None = zone
    else:
        k = float(zone) if zone else None
    if valid is None:
        return k
    if k is None:
        k = 0.0
    return torch.where(valid, k if isinstance(k, Tensor) else like.new_tensor(k), 1.0).to(
        like.dtype
    )


def at(k: Keep, t: int) -> Tensor | float | None:
    return k[t] if isinstance(k, Tensor) else k


def per_step(k: Keep, steps: int) -> list[Tensor | float | None] | tuple[Tensor, ...]:
    """``k[t]`` for every step, prepared once (a tensor is unbound, a float or None repeated)."""
    return k.unbind(0) if isinstance(k, Tensor) else [k] * steps


def complement(k: Keep) -> Keep:
    """``1 - k`` (the gradient factor of the new state), or None when there is no blend."""
    if k is None:
        return None
    return 1.0 - k


def blend_(out: Tensor, new: Tensor, prev: Tensor, k: Tensor | float | None) -> Tensor:
    """``out = lerp(new, prev, k)``; a plain copy when ``k`` is None."""
    if k is None:
        return out.copy_(new)
    return torch.lerp(new, prev, k, out=out)


def ln_forward(
    x: Tensor, weight: Tensor | None, bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`rnnkit.functional.layer_norm` over the last dim, returning ``(out, mean, rstd)``."""
    return torch.native_layer_norm(x, (x.shape[-1],), weight, bias, LN_EPS)


def ln_backward(
    grad: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, weight: Tensor | None
) -> Tensor:
    """Gradient of :func:`ln_forward` with respect to its input only."""
    return torch.ops.aten.native_layer_norm_backward(
        grad, x, (x.shape[-1],), mean, rstd, weight, None, (True, False, False)
    )[0]


def ln_param_grads(
    grad: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, need: bool
) -> Tensor | None:
    """``sum(grad * (x - mean) * rstd)`` over all leading dims: the gradient of the LN gain."""
    if not need:
        return None
    return (grad * ((x - mean) * rstd)).sum(dim=tuple(range(grad.dim() - 1)))


def outer_sum(grad: Tensor, x: Tensor) -> Tensor:
    """``sum_t grad_t^T x_t`` as one GEMM: ``(T, N, M), (T, N, K) -> (M, K)``."""
    g2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
    if not _DNN:
        return torch.mm(g2.t(), x2)
    return Gemm(x2.t(), g2.shape[1])(g2.t())


def _cpu_vendor() -> str:
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - a pseudo-file read once
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def prefer_onednn() -> bool:
    """Whether CPU float32 GEMMs go to oneDNN's prepacked GEMM instead of ``torch.mm`` (MKL).

    Measured (docs/benchmarks.md): on AMD CPUs MKL is 1.5-2.5x slower than oneDNN for the skinny
    GEMMs of a recurrence (MKL takes generic code paths off Intel CPUs); on Intel CPUs MKL is as
    fast or faster, and needs no weight packing or transposed copies. ``RNNKIT_CPU_GEMM=onednn``
    or ``=mkl`` overrides the choice.
    """
    choice = os.environ.get("RNNKIT_CPU_GEMM", "").lower()
    if choice in ("onednn", "mkl"):
        return choice == "onednn"
    return _cpu_vendor() != "GenuineIntel"


_linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
_reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)
_DNN = (
    _linear is not None
    and _reorder is not None
    and torch.backends.mkldnn.is_available()
    and prefer_onednn()
)


def dnn_serves(x: Tensor) -> bool:
    """Whether :class:`Gemm` runs ``x``'s GEMMs on oneDNN (CPU float32, see :func:`prefer_onednn`)."""
    return _DNN and x.device.type == "cpu" and x.dtype == torch.float32


class Gemm:
    """``x W^T [+ bias] [+ add]`` for a weight ``W (M, K)`` reused over many calls.

    Where :func:`dnn_serves` (CPU float32 on a CPU where oneDNN is the faster GEMM) the weight is
    packed once for oneDNN (``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiled CPU
    code uses); elsewhere (float64, CUDA, Intel CPUs, a build without oneDNN) it is ``torch.mm``.
    ``rows`` is the expected number of rows of ``x`` (a packing hint).
    """

    def __init__(self, w: Tensor, rows: int) -> None:
        self.packed: Tensor | None = None
        # MKL runs skinny GEMMs (a few dozen rows: one time step) ~30% faster on a row-major W^T
        # than on W transposed; for big ones the layout does not matter (docs/benchmarks.md)
        skinny = w.device.type == "cpu" and rows < 256 and not w.t().is_contiguous()
        self.wt = cpu_kernels.transposed(w.detach()) if skinny else w.t()
        if dnn_serves(w):
            try:
                self.packed = _reorder(w.contiguous(), rows)
            except RuntimeError:  # pragma: no cover - an ISA or build oneDNN cannot serve
                self.packed = None

    def step_fn(self):
        """``f(x, out)``: ``out = x W^T`` with the least Python per call (the recurrences' hot
        loops call it once per step)."""
        if self.packed is None:
            mm, wt = torch.mm, self.wt
            return lambda x, out: mm(x, wt, out=out)
        return lambda x, out: self(x, out=out)

    def __call__(
        self,
        x: Tensor,
        add: Tensor | None = None,
        bias: Tensor | None = None,
        out: Tensor | None = None,
    ) -> Tensor:
        """``x W^T [+ bias] [+ add]``; with ``out`` (``(rows, M)``, no ``add`` or ``bias``) the
        result is written there (the MKL path then spares the per-step allocation)."""
        if out is not None:
            if add is not None or bias is not None:
                raise ValueError("Gemm: out= goes without add= and bias=")
            if self.packed is None:
                return torch.mm(x, self.wt, out=out)
            return out.copy_(_linear(x, self.packed, None, "none", [], ""))
        if self.packed is not None:
            if add is None:
                return _linear(x, self.packed, bias, "none", [], "")
            return _linear.binary(x, add, self.packed, bias, "add")
        if add is None:
            return torch.mm(x, self.wt) if bias is None else torch.addmm(bias, x, self.wt)
        out = torch.addmm(add, x, self.wt)
        return out if bias is None else out.add_(bias)


def gate_scale(like: Tensor, gates: int, hidden: int, doubled: int) -> Tensor:
    """``(G*H,)`` ones with 2 on gate ``doubled``: ``tanh(x) = 2 sigmoid(2x) - 1`` lets one sigmoid
    cover all the gates (torch's CPU ``tanh`` is several times slower than its ``sigmoid``)."""
    scale = like.new_ones(gates, hidden)
    scale[doubled] = 2.0
    return scale.view(-1)


def sum_leading(x: Tensor) -> Tensor:
    return x.sum(dim=tuple(range(x.dim() - 1)))


@dataclass(frozen=True)
class Aux:
    """The non-differentiable inputs of a fused sequence: time bookkeeping, the recurrent dropout
    mask ``(N, R)``, the lerp weights of ``h`` and ``c`` (module docstring), the RNN activation."""

    seq: Seq
    mask: Tensor | None = None
    keep_h: Keep = None
    keep_c: Keep = None
    nonlinearity: str = "tanh"


def stack_visited(items: list[Tensor], seq: Seq, backward: bool = False) -> Tensor:
    """Stack per-step tensors collected in visiting order into time order ``(T, ...)``."""
    forward_in_time = seq.reverse == backward
    return torch.stack(items if forward_in_time else items[::-1])


def recurrent_input(h: Tensor, mask: Tensor | None) -> Tensor:
    """The input of the recurrent GEMM: ``h * mask`` (recurrent dropout) or ``h``."""
    return h if mask is None else h * mask


def carry_back(
    base: Tensor | None,
    dh: Tensor,
    keep: Tensor | float | None,
    da: Tensor,
    gemm_t: Gemm,
    mask: Tensor | None,
) -> Tensor:
    """Gradient of the state before a step: ``base + dh * keep + ((da W) * mask)``.

    ``base`` is the output gradient of the previous step (None at the first step), ``dh`` the
    gradient of the state after the step, ``da (N, G*H)`` that of the recurrent pre-activations,
    ``gemm_t`` the :class:`Gemm` of ``W^T``.
    """
    if keep is not None:
        if base is None:
            base = dh * keep
        elif isinstance(keep, Tensor):
            base = torch.addcmul(base, dh, keep)
        else:
            base = base.add(dh, alpha=keep)
    if mask is not None:
        rec = gemm_t(da).mul_(mask)
        return rec if base is None else rec.add_(base)
    return gemm_t(da, add=base)


def recurrent_param_grads(
    needs: tuple[bool, bool, bool],
    d_pre: Tensor,
    d_post: Tensor,
    h_before: Tensor,
    mask: Tensor | None,
    ln: tuple[Tensor, Tensor, Tensor] | None,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(dW_hh, db_hh, d ln_hh)`` from the stacked gradients: ``d_pre`` of ``h W_hh^T`` and
    ``d_post`` of the normalised pre-activations (the same tensor without layer norm),
    ``(T, N, G*H)``; ``ln`` is ``(A, mean, rstd)`` of the recurrent layer norm."""
    need_w, need_b, need_ln = needs
    dw = outer_sum(d_pre, recurrent_input(h_before, mask)) if need_w else None
    db = sum_leading(d_post) if need_b else None
    dln = None if ln is None else ln_param_grads(d_post, *ln, need=need_ln)
    return dw, db, dln


def save_named(ctx, inputs: tuple[Tensor | None, ...], named: dict[str, object]) -> None:
    """``ctx.save_for_backward`` for the inputs and the named intermediates (a Tensor, None or a
    tuple of Tensors each): saving through autograd, not as ``ctx`` attributes, keeps outputs out
    of a reference cycle and checks that nothing was modified in place before backward."""
    flat: list[Tensor | None] = list(inputs)
    layout: list[tuple[str, int, bool]] = []
    for name, value in named.items():
        items = value if isinstance(value, tuple) else (value,)
        layout.append((name, len(items), isinstance(value, tuple)))
        flat.extend(items)  # type: ignore[arg-type]
    ctx.layout = (len(inputs), layout)
    ctx.save_for_backward(*flat)


def load_named(ctx) -> tuple[tuple[Tensor | None, ...], dict[str, object]]:
    """The inverse of :func:`save_named`: ``(inputs, named)``."""
    flat = ctx.saved_tensors
    n_inputs, layout = ctx.layout
    named: dict[str, object] = {}
    pos = n_inputs
    for name, count, is_tuple in layout:
        items = tuple(flat[pos : pos + count])
        named[name] = items if is_tuple else items[0]
        pos += count
    return tuple(flat[:n_inputs]), named


class DnnLinear(torch.autograd.Function):
    """``x W^T + b`` for ``x (..., K)``, ``W (M, K)`` with every GEMM, forward and backward, through
    :class:`Gemm` (oneDNN on CPU float32)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:  # noqa: D102
        x2 = x.reshape(-1, x.shape[-1])
        ctx.save_for_backward(x2, w)
        ctx.has_bias = b is not None
        return Gemm(w, x2.shape[0])(x2, bias=b).view(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, dy: Tensor):  # noqa: D102
        x2, w = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])
        need_x, need_w, need_b = ctx.needs_input_grad
        dx = Gemm(w.t(), dy2.shape[0])(dy2).view(*dy.shape[:-1], w.shape[1]) if need_x else None
        dw = outer_sum(dy2, x2) if need_w else None
        db = dy2.sum(0) if need_b and ctx.has_bias else None
        return dx, dw, db
