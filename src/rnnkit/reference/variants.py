"""NumPy oracle for rnnkit's layer options: layer norm, peephole, zoneout, recurrent dropout, relu.

One general step per cell with optional features, its hand-written backward, and the sequence
versions that loop over time. They live in :mod:`.lstm`, :mod:`.gru` and :mod:`.rnn`, the shared
pieces (layer norm, masks, the loops over time) in :mod:`.common`; this module gathers their
names. Conventions are those of :mod:`rnnkit.reference.layers`: batch-first ``x (N, T, D)``,
hidden size ``H``, CS231n LSTM gate order ``i, f, o, g`` (``Wx (D, 4H)``, ``Wh (H, 4H)``, one
bias ``b (4H,)``), GRU order ``r, z, n`` with two biases ``bx, bh (3H,)``. With every option left
at ``None`` each function equals its plain namesake in ``layers``, which wraps it.

Options (each ``None`` = off):

- **Layer norm** (Ba et al. 2016, "Layer Normalization", sec. 3.1 and the LSTM equations in
  their appendix): ``LN(a; gamma) = gamma * (a - mean(a)) / sqrt(var(a) + eps)`` with mean and
  biased variance over the last axis, i.e. over the *whole* pre-activation vector (4H for LSTM, 3H
  for GRU, H for RNN), no beta on the pre-activation norms (the biases play that role).
  ``gamma_x`` normalises ``x Wx``, ``gamma_h`` normalises ``h Wh``; ``gamma_c``/``beta_c`` (LSTM
  only) normalise the cell before its tanh: ``h = o * tanh(LN(c; gamma_c) + beta_c)``, while the
  carried ``c`` stays un-normalised.
- **Peephole** (Gers & Schmidhuber 2000), LSTM only, ``peephole (3, H)`` rows for i, f, o:
  ``i = s(a_i + P[0] * c_prev)``, ``f = s(a_f + P[1] * c_prev)``, ``o = s(a_o + P[2] * c_new)``.
- **Zoneout** (Krueger et al. 2017, eqs. for the LSTM in sec. 3.3): masks ``zoneout_h``,
  ``zoneout_c`` with 1 = keep the previous value: ``h = m_h * h_prev + (1 - m_h) * h_new``,
  ``c = m_c * c_prev + (1 - m_c) * c_new``, where ``h_new = o * tanh(c_new)`` uses the *new*
  (not zoned-out) cell. Masks may be real-valued: in eval the rate itself is the mask (the
  expected value). Step masks broadcast to ``(N, H)``, sequence masks to ``(N, T, H)``.
- **Recurrent dropout** (Gal & Ghahramani 2016): ``dropout_mask`` broadcastable to ``(N, H)``,
  already scaled by ``1/(1-p)``, multiplies ``h_prev`` before ``h_prev Wh``; the carried ``h`` is
  not masked, and the sequence functions reuse the same mask at every step.
- **Nonlinearity** (RNN only): ``'tanh'`` or ``'relu'``.

DropConnect on ``Wh`` (weight drop) needs no option: pass the masked ``Wh`` and chain ``dWh``.
"""

from .common import layer_norm_backward, layer_norm_forward
from .gru import (
    gru_variant_backward,
    gru_variant_forward,
    gru_variant_step_backward,
    gru_variant_step_forward,
)
from .lstm import (
    lstm_variant_backward,
    lstm_variant_forward,
    lstm_variant_step_backward,
    lstm_variant_step_forward,
)
from .rnn import (
    rnn_variant_backward,
    rnn_variant_forward,
    rnn_variant_step_backward,
    rnn_variant_step_forward,
)

__all__ = [
    "gru_variant_backward",
    "gru_variant_forward",
    "gru_variant_step_backward",
    "gru_variant_step_forward",
    "layer_norm_backward",
    "layer_norm_forward",
    "lstm_variant_backward",
    "lstm_variant_forward",
    "lstm_variant_step_backward",
    "lstm_variant_step_forward",
    "rnn_variant_backward",
    "rnn_variant_forward",
    "rnn_variant_step_backward",
    "rnn_variant_step_forward",
]
