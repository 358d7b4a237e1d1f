"""rnnkit: recurrent neural networks on PyTorch.

Drop-in ``torch.nn`` LSTM/GRU/RNN layers and cells with layer norm, recurrent dropout, DropConnect,
zoneout, peepholes and a ``lengths=`` contract; minGRU, minLSTM, IndRNN and sLSTM layers and cells
behind the same contract; wrappers for stateful use and time-distributed modules.
"""

from __future__ import annotations

from .reproducibility import request_reproducible_blas

request_reproducible_blas()  # before anything computes: exact resume needs it (reproducibility.py)

from .cell_layers import (  # noqa: E402
    SLSTM,
    IndRNN,
    IndRNNCell,
    MinGRU,
    MinGRUCell,
    MinLSTM,
    MinLSTMCell,
    SLSTMCell,
)
from .cells import GRUCell, LSTMCell, RNNCell  # noqa: E402
from .layers import GRU, LSTM, RNN  # noqa: E402
from .recurrent import Recurrent, RecurrentCell  # noqa: E402
from .regularization import LockedDropout  # noqa: E402
from .serialization import register_safe_globals  # noqa: E402
from .state import detach_state, last_valid_step, reset_state  # noqa: E402
from .wrappers import Stateful, TimeDistributed  # noqa: E402

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
