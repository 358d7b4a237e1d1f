"""Whole-model ``torch.save(model, f)`` / ``torch.load(f)``: rnnkit's modules and their option record
are registered as safe globals, so torch's default ``weights_only=True`` unpickles them as it does
torch.nn's own modules (nothing else of rnnkit is unpickled; a cell spec travels by name)."""

from __future__ import annotations

import torch

from .cell_layers import (
    SLSTM,
    IndRNN,
    IndRNNCell,
    MinGRU,
    MinGRUCell,
    MinLSTM,
    MinLSTMCell,
    SLSTMCell,
)
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN
from .options import Variants
from .recurrent import Recurrent, RecurrentCell
from .regularization import LockedDropout
from .wrappers import Stateful, TimeDistributed

SAFE_GLOBALS = (
    LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell, Recurrent, RecurrentCell,
    MinGRU, MinLSTM, IndRNN, SLSTM, MinGRUCell, MinLSTMCell, IndRNNCell, SLSTMCell,
    Stateful, TimeDistributed, LockedDropout, Variants,
)  # fmt: skip


def register_safe_globals() -> None:
    """Let ``torch.load(..., weights_only=True)`` rebuild rnnkit's modules."""
    torch.serialization.add_safe_globals(list(SAFE_GLOBALS))
