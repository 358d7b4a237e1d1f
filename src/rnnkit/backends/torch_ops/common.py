"""Pieces of the torch-op kernels (:mod:`.lstm`, :mod:`.gru`): per-step blends, layer-norm
forward/backward with saved statistics, the gate scaling trick, the carried gradient, and saving
named intermediates for backward."""

from __future__ import annotations

import torch
from torch import Tensor

from ...functional import LN_EPS
from ..gemm import Gemm, outer_sum
from ..sequence import Keep, recurrent_input, sum_leading


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


def gate_scale(like: Tensor, gates: int, hidden: int, doubled: int) -> Tensor:
    """``(G*H,)`` ones with 2 on gate ``doubled``: ``tanh(x) = 2 sigmoid(2x) - 1`` lets one sigmoid
    cover all the gates (torch's CPU ``tanh`` is several times slower than its ``sigmoid``)."""
    scale = like.new_ones(gates, hidden)
    scale[doubled] = 2.0
    return scale.view(-1)


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
