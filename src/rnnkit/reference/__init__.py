"""NumPy oracle for rnnkit: float64 recurrent layers with hand-written backward passes.

The API is Stanford CS231n assignment 3's (``rnn_layers.py``, ``CaptioningRNN``,
``gradient_check.py``): same names, argument orders, shapes and return tuples, so course code runs
on it unchanged. ``variants`` adds rnnkit's layer options (layer norm, peephole, zoneout,
recurrent dropout, relu) as the oracle for the torch layers; ``mingru``, ``minlstm``, ``indrnn``
and ``slstm`` are the oracles of the cells without a torch.nn twin. This package imports only
NumPy.

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

from . import indrnn, layers, mingru, minlstm, slstm, variants
from .captioning import CaptioningRNN
from .gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from .indrnn import *  # noqa: F403 - listed in indrnn.__all__
from .layers import *  # noqa: F403 - the CS231n names, listed in layers.__all__
from .mingru import *  # noqa: F403 - listed in mingru.__all__
from .minlstm import *  # noqa: F403 - listed in minlstm.__all__
from .slstm import *  # noqa: F403 - listed in slstm.__all__
from .variants import *  # noqa: F403 - the variant oracle, listed in variants.__all__

__all__ = [
    "CaptioningRNN",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "rel_error",
    *layers.__all__,
    *variants.__all__,
    *mingru.__all__,
    *minlstm.__all__,
    *indrnn.__all__,
    *slstm.__all__,
]
