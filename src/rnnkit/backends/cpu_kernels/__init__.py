"""The CPU C-kernel backend: the LSTM, GRU and RNN variants' time loops in C (``csrc/``), each step
one GEMM on torch's BLAS and one kernel for the whole elementwise work. :mod:`.build` compiles the
library (at install time or on first use), :mod:`.library` finds, verifies and loads it;
:mod:`.lstm` and :mod:`.gru` run one direction forward and backward; :mod:`.ops` registers those
as torch ops."""

from .library import (
    BernoulliDraws,
    available,
    bernoulli,
    bernoulli_draws,
    draw_seed,
    enabled,
    kernel,
    library,
    seeded_draws,
    tracing,
    transposed,
)

__all__ = [
    "BernoulliDraws",
    "available",
    "bernoulli",
    "bernoulli_draws",
    "draw_seed",
    "enabled",
    "kernel",
    "library",
    "seeded_draws",
    "tracing",
    "transposed",
]
