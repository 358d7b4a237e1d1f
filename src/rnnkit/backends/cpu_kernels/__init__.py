"""The CPU C-kernel backend: one C call per time step for the whole elementwise work of the LSTM,
GRU and RNN variants (``csrc/``), between torch's GEMMs. :mod:`.library` builds, caches, verifies
and loads the compiled library; :mod:`.lstm` and :mod:`.gru` are the sequence Functions."""

from .library import available, bernoulli, draw_seed, enabled, kernel, library, transposed

__all__ = ["available", "bernoulli", "draw_seed", "enabled", "kernel", "library", "transposed"]
