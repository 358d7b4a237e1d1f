"""Recurrent state: create, validate, detach, reset by mask, and pick the last valid step.

A layer's state is one tensor per state of its cell (:class:`rnnkit.registry.CellSpec`): ``h`` of
shape ``(L*D, N, R)`` (GRU, RNN, minGRU, minLSTM, IndRNN), ``(h, c)`` with ``c (L*D, N, H)``
(LSTM) or ``(h, c, n, m)`` (sLSTM), where ``L`` is the
number of layers, ``D`` 2 if bidirectional else 1, ``R`` the output size (``proj_size`` or ``H``) --
torch.nn's layout. Device and dtype always come from the input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

State = Tensor | tuple[Tensor, ...]


def zero_state(sizes: tuple[int, ...], lead: tuple[int, ...], like: Tensor) -> tuple[Tensor, ...]:
    """One zero tensor ``(*lead, size)`` per state size (e.g. ``lead = (L*D, N)``), with ``like``'s
    dtype and device."""
    return tuple(like.new_zeros(*lead, size) for size in sizes)


def check_state(
    spec: Any,
    hx: Any,
    sizes: tuple[int, ...],
    lead: tuple[int, ...],
    like: Tensor,
    *,
    suffix: str = "",
    names: tuple[str, ...] | None = None,
) -> tuple[Tensor, ...]:
    """Validate a user's state for a cell of ``spec`` (a :class:`rnnkit.registry.CellSpec`): one
    tensor ``(*lead, size)`` for a cell with one state, else a tuple with one per state, named
    ``{state}{suffix}`` in errors (``h_0``, ``c_0``) unless ``names`` says otherwise."""
    names = names or tuple(n + suffix for n in spec.state_names)
    if len(sizes) == 1:
        parts: tuple[Any, ...] = (hx,)
    elif isinstance(hx, (tuple, list)) and len(hx) == len(sizes):
        parts = tuple(hx)
    else:
        raise TypeError(
            f"{spec.title} hx must be a tuple ({', '.join(names)}), got {type(hx).__name__}"
        )
    for t, name, size in zip(parts, names, sizes):
        check_state_tensor(name, t, (*lead, size), like)
    if _autocast_on(like):  # a state carried out of an autocast step: in the input's dtype
        parts = tuple(t.to(like.dtype) for t in parts)
    return parts


def _autocast_on(like: Tensor) -> bool:
    return like.is_floating_point() and torch.is_autocast_enabled(like.device.type)


def check_state_tensor(name: str, t: Any, shape: tuple[int, ...], like: Tensor) -> None:
    """Raise a TypeError/ValueError naming ``name`` unless ``t`` is a tensor of ``shape`` on ``like``'s
    dtype and device (under autocast any floating dtype: :func:`check_state` casts it)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape {shape}, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype != like.dtype and not (_autocast_on(like) and t.is_floating_point()):
        raise TypeError(f"{name} must have the input's dtype {like.dtype}, got {t.dtype}")
    if t.device != like.device:
        raise ValueError(f"{name} must be on the input's device {like.device}, got {t.device}")


def detach_state(state: Any) -> Any:
    """Detach tensors (nested in tuples, lists or dicts) from the graph: truncated BPTT's
    ``repackage_hidden``. None passes through."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    if isinstance(state, list):
        return [detach_state(s) for s in state]
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    raise TypeError(
        f"state must be tensors nested in tuples/lists/dicts, got {type(state).__name__}"
    )


def reset_state(state: Any, mask: Tensor, batch_dim: int = 1) -> Any:
    """Zero the state of the samples where ``mask (N,)`` is True (a stream whose sequence ended).

    Tensors are indexed along ``batch_dim`` (1 for torch.nn's ``(L*D, N, H)``)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        shape = [1] * state.dim()
        shape[batch_dim] = -1
        keep = (~mask.to(device=state.device, dtype=torch.bool)).view(shape)
        return state * keep.to(state.dtype)
    if isinstance(state, (tuple, list)):
        return type(state)(reset_state(s, mask, batch_dim) for s in state)
    raise TypeError(f"state must be tensors nested in tuples/lists, got {type(state).__name__}")


def last_valid_step(outputs: Tensor, lengths: Tensor, batch_first: bool = False) -> Tensor:
    """The output at each sequence's last valid step: ``(T, N, C)`` -> ``(N, C)``.

    For a bidirectional layer this is the forward direction's final state only in the first half of
    the features; use the layer's ``h_n`` for both directions' final states."""
    seq = outputs.transpose(0, 1) if batch_first else outputs
    idx = (lengths.to(seq.device).long() - 1).view(1, -1, 1).expand(1, seq.shape[1], seq.shape[2])
    return seq.gather(0, idx).squeeze(0)


def check_lengths(lengths: Any, batch: int, steps: int) -> Tensor:
    """Validate per-sequence ``lengths`` ``(N,)`` against ``batch`` N and ``steps`` T; return int64 CPU."""
    if isinstance(lengths, (list, tuple)):
        lengths = torch.tensor(lengths)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be a 1-D integer tensor, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (N,), got shape {tuple(lengths.shape)}")
    if lengths.numel() != batch:
        raise ValueError(
            f"lengths must have one entry per sequence ({batch}), got {lengths.numel()}"
        )
    lengths = lengths.detach().to("cpu", torch.int64)
    if torch.compiler.is_compiling():  # torch.export/compile trace: the values are not known yet
        return lengths
    if batch and int(lengths.min()) < 1:
        raise ValueError(f"lengths must be >= 1, got min {int(lengths.min())}")
    if batch and int(lengths.max()) > steps:
        raise ValueError(
            f"lengths must be <= the time dimension {steps}, got max {int(lengths.max())}"
        )
    return lengths
