"""NumPy oracle for rnnkit: float64 recurrent layers with hand-written backward passes.

The API is Stanford CS231n assignment 3's (``rnn_layers.py``, ``CaptioningRNN``,
``gradient_check.py``): same names, argument orders, shapes and return tuples, so course code runs
on it unchanged. ``variants`` adds rnnkit's layer options (layer norm, peephole, zoneout,
recurrent dropout, relu) as the oracle for the torch layers. This package imports only NumPy.

Example::

    import numpy as np
    from rnnkit.reference import lstm_forward, lstm_backward

    rng = np.random.default_rng(0)
    N, T, D, H = 2, 3, 4, 5
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), np.zeros(4 * H)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)  # h: (N, T, H)
    dx, dh0, dWx, dWh, db = lstm_backward(np.ones_like(h), cache)
"""

from . import layers, variants
from .captioning import CaptioningRNN
from .gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from .layers import *  # noqa: F403 - the CS231n names, listed in layers.__all__
from .variants import *  # noqa: F403 - the variant oracle, listed in variants.__all__

__all__ = [
    "CaptioningRNN",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "rel_error",
    *layers.__all__,
    *variants.__all__,
]
