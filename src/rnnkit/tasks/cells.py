"""A registered cell's sequence layer, as the task models build it from a config's ``cell`` name."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ..registry import CellSpec, get_cell


def recurrent_layer(
    cell: str | CellSpec, input_size: int, hidden_size: int, **kwargs: Any
) -> nn.Module:
    """The sequence layer of ``cell`` (``rnnkit.LSTM`` for ``"lstm"``, ``rnnkit.RNN`` with ReLU for
    ``"rnn_relu"``): input ``(T, N, input_size)``, output ``(T, N, D * R)``."""
    spec = get_cell(cell)
    if spec.nonlinearity != "tanh":  # the RNN layer's argument; tanh is every layer's default
        kwargs["nonlinearity"] = spec.nonlinearity
    return spec.layer_class()(input_size, hidden_size, **kwargs)


def projects(cell: str | CellSpec) -> bool:
    """Whether the layer of ``cell`` can project its output ``h`` to ``proj_size`` (Sak et al.
    2014): the layers that take a ``proj_size`` (the LSTM's)."""
    return "proj_size" in inspect.signature(get_cell(cell).layer_class()).parameters
