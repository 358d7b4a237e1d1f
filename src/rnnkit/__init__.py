"""rnnkit: recurrent neural networks on PyTorch.

Drop-in ``torch.nn`` LSTM/GRU/RNN layers and cells with layer norm, recurrent dropout, DropConnect,
zoneout, peepholes and a ``lengths=`` contract; minGRU, minLSTM, IndRNN and sLSTM layers and cells
behind the same contract; wrappers for stateful use and time-distributed modules.
"""

from __future__ import annotations

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
from .recurrent import Recurrent, RecurrentCell
from .regularization import LockedDropout
from .serialization import register_safe_globals
from .state import detach_state, last_valid_step, reset_state
from .wrappers import Stateful, TimeDistributed

__version__ = "0.1.0"

register_safe_globals()

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "MinGRU",
    "MinLSTM",
    "IndRNN",
    "SLSTM",
    "MinGRUCell",
    "MinLSTMCell",
    "IndRNNCell",
    "SLSTMCell",
    "Recurrent",
    "RecurrentCell",
    "LockedDropout",
    "Stateful",
    "TimeDistributed",
    "detach_state",
    "last_valid_step",
    "reset_state",
    "__version__",
]
