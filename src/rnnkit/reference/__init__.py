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

from .captioning import CaptioningRNN
from .gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from .layers import (
    affine_backward,
    affine_forward,
    gru_backward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)
from .variants import (
    gru_variant_backward,
    gru_variant_forward,
    gru_variant_step_backward,
    gru_variant_step_forward,
    layer_norm_backward,
    layer_norm_forward,
    lstm_variant_backward,
    lstm_variant_forward,
    lstm_variant_step_backward,
    lstm_variant_step_forward,
    rnn_variant_backward,
    rnn_variant_forward,
    rnn_variant_step_backward,
    rnn_variant_step_forward,
)

__all__ = [
    "CaptioningRNN",
    "affine_backward",
    "affine_forward",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "gru_backward",
    "gru_forward",
    "gru_step_backward",
    "gru_step_forward",
    "gru_variant_backward",
    "gru_variant_forward",
    "gru_variant_step_backward",
    "gru_variant_step_forward",
    "layer_norm_backward",
    "layer_norm_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "lstm_variant_backward",
    "lstm_variant_forward",
    "lstm_variant_step_backward",
    "lstm_variant_step_forward",
    "rel_error",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "rnn_variant_backward",
    "rnn_variant_forward",
    "rnn_variant_step_backward",
    "rnn_variant_step_forward",
    "sigmoid",
    "temporal_affine_backward",
    "temporal_affine_forward",
    "temporal_softmax_loss",
    "word_embedding_backward",
    "word_embedding_forward",
]
