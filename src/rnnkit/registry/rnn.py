"""Elman RNN (Elman 1990): ``h' = act(gx + LN(h W_hh^T; ln_hh) + b_hh)``, ``act`` tanh or relu.

One gate ``(h,)``; state ``(h,)``, ``h (N, H)``. Two registered cells, ``"rnn"`` (tanh, torch's
``RNN_TANH``) and ``"rnn_relu"`` (``RNN_RELU``), both served by :class:`rnnkit.RNN`. Parameters the
options add: ``layer_norm_ih``/``layer_norm_hh`` ``(H,)``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..functional import CellParams, recurrent_projection
from .spec import CellSpec, StateSpec, layer_norm_parameters, register_cell

NONLINEARITIES = ("tanh", "relu")


def rnn_step(
    gx: Tensor,
    h: Tensor,
    p: CellParams,
    nonlinearity: str = "tanh",
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """One Elman RNN step: ``h' = act(gx + LN(h W_hh^T; ln_hh) + b_hh)``; ``gx``, ``h (N, H)``."""
    pre = gx + recurrent_projection(h, p, w_hh, dropout_mask)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def _tanh_step(gx, state, p, w_hh=None, dropout_mask=None):
    return (rnn_step(gx, state[0], p, "tanh", w_hh, dropout_mask),)


def _relu_step(gx, state, p, w_hh=None, dropout_mask=None):
    return (rnn_step(gx, state[0], p, "relu", w_hh, dropout_mask),)


RNN_TANH = register_cell(
    CellSpec(
        name="rnn",
        title="RNN",
        torch_mode="RNN_TANH",
        gates=("h",),
        states=(StateSpec("h", "output", zoneout="h"),),
        step=_tanh_step,
        parameters=layer_norm_parameters(1),
        layer="RNN",
        cell="RNNCell",
        kernel="rnn",
        backends=("native", "cpu_kernels", "torch_ops", "reference"),
        onnx_op="RNN",
        onnx_attributes=(("activation", "Tanh"),),
        paper="Elman 1990",
    )
)
RNN_RELU = register_cell(
    replace(
        RNN_TANH,
        name="rnn_relu",
        torch_mode="RNN_RELU",
        step=_relu_step,
        nonlinearity="relu",
        onnx_attributes=(("activation", "Relu"),),
    )
)


def rnn_cell(nonlinearity: str) -> CellSpec:
    """The registered RNN spec of ``nonlinearity`` (``"tanh"`` or ``"relu"``)."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return RNN_TANH if nonlinearity == "tanh" else RNN_RELU
