"""Layouts of a weight kept for as long as the weight lives unchanged: the panels of ``W`` or
``W^T`` (:func:`.panels.pack`) and the row-major ``W^T`` that the time loops' GEMMs read.

A forward without gradients (inference, evaluation, decoding) calls the same weights again and
again; packing them is ~16 us per matrix at H=128, a few percent of a 2-layer forward there
(``docs/benchmarks.md``). Training does not use this: its weights change at every optimizer step,
and its backward reads other layouts than its forward.

An entry is keyed on the tensor object (a weak reference, so it dies with the tensor) and checked
against the tensor's storage address, version counter (bumped by every in-place write, an
optimizer step or ``load_state_dict`` included), shape, strides and dtype: a weight written since
it was packed is packed again. Inference tensors have no version counter, so they are never kept.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from torch import Tensor

_entries: dict[tuple[int, str], tuple[weakref.ref, tuple, Any]] = {}


def _stamp(w: Tensor) -> tuple:
    return (w.data_ptr(), w._version, tuple(w.shape), w.stride(), w.dtype)


def reused(w: Tensor, layout: str, build: Callable[[Tensor], Any]) -> Any:
    """``build(w)``, or what it returned for this same, unchanged ``w`` before (``layout`` names
    what ``build`` makes, one entry per weight and layout)."""
    if w.is_inference() or w.requires_grad and w.grad_fn is not None:
        return build(w)  # no version counter, or a product autograd is building
    key = (id(w), layout)
    stamp = _stamp(w)
    hit = _entries.get(key)
    if hit is not None and hit[0]() is w and hit[1] == stamp:
        return hit[2]
    value = build(w)

    def forget(ref: weakref.ref, key: tuple = key) -> None:
        if _entries.get(key, (None,))[0] is ref:
            del _entries[key]

    _entries[key] = (weakref.ref(w, forget), stamp, value)
    return value


def clear() -> None:
    """Drop every kept layout."""
    _entries.clear()


def size() -> int:
    """How many layouts are kept."""
    return len(_entries)
