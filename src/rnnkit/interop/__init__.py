"""Interoperability: other frameworks' weight layouts, their checkpoint files, and ONNX export.

* :mod:`~rnnkit.interop.layouts`: ``export_lstm_weights(module, layout)`` /
  ``load_lstm_weights(module, params, layout)`` and the GRU/RNN twins, for the layouts ``torch``,
  ``cs231n``, ``keras``, ``gluon``, ``chainer``, ``chainer_nstep``, ``onnx``, ``haste``, ``flax``;
* :mod:`~rnnkit.interop.legacy`: ``load_checkpoint(path)`` reads Chainer ``.npz``, Keras ``.h5`` /
  ``.weights.h5`` / ``.keras``, MXNet Gluon ``.params`` (without MXNet) and ONNX models;
  ``convert_file(src, from_layout, to_layout, out)`` converts between them; files that are
  garbled, too large or reach outside themselves raise :class:`CheckpointFileError`;
* :mod:`~rnnkit.interop.onnx`: ``to_onnx(module, example_input)`` exports to the standard ONNX
  ``LSTM``/``GRU``/``RNN`` operators.
"""

from __future__ import annotations

from . import layouts
from .base import CheckpointFileError
from .layouts import *  # noqa: F403 - the weight layouts, listed in layouts.__all__
from .legacy import convert_file, load_checkpoint
from .onnx import lm_to_onnx, to_onnx

__all__ = [
    "CheckpointFileError",
    *layouts.__all__,
    "convert_file",
    "load_checkpoint",
    "lm_to_onnx",
    "to_onnx",
]
