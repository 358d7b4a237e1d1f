"""The cell registry: one module per recurrent cell type, each describing its gates, its state
tensors, its step function with the equations and paper, the parameters its options add and the
backends that run it (:class:`CellSpec`).

Adding a cell type is one module here that calls :func:`register_cell`, imported below, plus its
NumPy reference (:mod:`rnnkit.reference`) and its tests; ``docs/architecture.md`` lists the steps.
"""

from .gru import GRU, gru_step
from .indrnn import INDRNN, indrnn_step, recurrent_max_for
from .lstm import LSTM, lstm_step
from .mingru import MINGRU, mingru_step
from .minlstm import MINLSTM, minlstm_step
from .rnn import RNN_RELU, RNN_TANH, rnn_cell, rnn_step
from .slstm import SLSTM, slstm_step
from .spec import (
    COMMON_OPTIONS,
    CellSpec,
    StateSpec,
    cell_names,
    cell_of,
    get_cell,
    register_cell,
)

__all__ = [
    "COMMON_OPTIONS",
    "GRU",
    "INDRNN",
    "LSTM",
    "MINGRU",
    "MINLSTM",
    "RNN_RELU",
    "RNN_TANH",
    "SLSTM",
    "CellSpec",
    "StateSpec",
    "cell_names",
    "cell_of",
    "get_cell",
    "gru_step",
    "indrnn_step",
    "lstm_step",
    "mingru_step",
    "minlstm_step",
    "recurrent_max_for",
    "register_cell",
    "rnn_cell",
    "rnn_step",
    "slstm_step",
]
