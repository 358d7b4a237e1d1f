"""Numeric gradients by centred differences and the relative error, as CS231n's
``gradient_check.py`` (same names, arguments and conventions).

``f`` is called with the array being perturbed; like the course's closures it may ignore its
argument and read the array it captured, because ``x`` is perturbed in place (and restored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "rel_error"]


def eval_numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, verbose: bool = True, h: float = 1e-5
) -> np.ndarray:
    """Gradient of a scalar ``f`` at ``x`` by centred differences ``(f(x+h) - f(x-h)) / 2h``.

    ``x`` (any shape, float) is modified in place during the evaluation and restored afterwards.
    With ``verbose`` each component is logged at INFO level.
    """
    return _centred_differences(f, x, h, lambda pos, neg: pos - neg, verbose)


def eval_numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Gradient of ``sum(f(x) * df)`` at ``x``: the vector-Jacobian product of an array-valued ``f``
    with the upstream gradient ``df`` (same shape as ``f(x)``), by centred differences."""
    return _centred_differences(
        lambda v: np.array(f(v), copy=True), x, h, lambda pos, neg: np.sum((pos - neg) * df)
    )


def _centred_differences(f, x: np.ndarray, h: float, difference, verbose: bool = False):
    """``difference(f(x + h e_i), f(x - h e_i)) / 2h`` for every component ``i`` of ``x``,
    perturbing ``x`` in place and restoring it; ``f``'s results must not alias ``x``."""
    _check_float(x)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = f(x)
        x[ix] = old - h
        neg = f(x)
        x[ix] = old
        grad[ix] = difference(pos, neg) / (2 * h)
        if verbose:
            logger.info("%s %s", ix, grad[ix])
        it.iternext()
    return grad


def rel_error(x, y) -> float:
    """``max(|x - y| / max(1e-8, |x| + |y|))``, CS231n's relative error."""
    x = np.asarray(x)
    y = np.asarray(y)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def _check_float(x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"expected a floating-point numpy array to perturb in place, got {got}")
