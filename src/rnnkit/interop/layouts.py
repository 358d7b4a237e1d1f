"""Move a recurrent module's weights to and from other frameworks' layouts.

Every framework orders an LSTM's four gates (and a GRU's three) differently and names, transposes
and splits the arrays its own way; docs/layouts.md tables each layout with the source it was checked
against. The functions here work on ``torch.nn.LSTM``/``GRU``/``RNN`` and on any module with their
attributes and parameter names (``rnnkit.LSTM`` and friends):

>>> import torch
>>> lstm = torch.nn.LSTM(3, 5)
>>> params = export_lstm_weights(lstm, "keras")
>>> sorted((k, v.shape) for k, v in params.items())
[('bias', (20,)), ('kernel', (3, 20)), ('recurrent_kernel', (5, 20))]
>>> load_lstm_weights(lstm, params, "keras")

Layouts: ``torch`` (the module's own parameter names, every parameter), ``cs231n``, ``keras``,
``gluon``, ``chainer`` (``L.LSTM``), ``chainer_nstep`` (``L.NStepLSTM`` and kin), ``onnx``,
``haste``, ``flax``. Loading is in place and checks every shape; errors name the array with the
expected and the received shape, and list missing or unexpected names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from .base import ALL_MODES, Layout, count_indexed, gates_of, mode_for
from .layouts_cell import Chainer, Cs231n, Flax, Haste
from .layouts_keras import Keras, ResetBeforeError
from .layouts_stacked import ChainerNStep, Gluon, Onnx
from .weights import (
    ParamReader,
    RNNSpec,
    changed_eval_math,
    extra_parameters,
    read_module,
    spec_of,
    write_module,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "ResetBeforeError",
    "export_gru_weights",
    "export_lstm_weights",
    "export_rnn_weights",
    "export_weights",
    "get_layout",
    "load_gru_weights",
    "load_lstm_weights",
    "load_rnn_weights",
    "load_weights",
]


class Torch(Layout):
    """torch.nn's own names (``weight_ih_l{k}[_reverse]`` ...), plus rnnkit's ``peephole_l{k}``."""

    name = "torch"
    source = "torch 2.13 torch/nn/modules/rnn.py (RNNBase._flat_weights_names)"
    modes = ALL_MODES
    projection = True
    peephole = True

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
            raise ValueError(
                f"torch: no weight_ih_l0/weight_hh_l0 among keys {sorted(params)[:12]}"
            )
        w_ih, w_hh = np.asarray(params["weight_ih_l0"]), np.asarray(params["weight_hh_l0"])
        w_hr = params.get("weight_hr_l0")
        hidden = np.shape(w_hr)[1] if w_hr is not None else w_hh.shape[1]
        nonlinearity = str(hints.get("nonlinearity", "tanh"))
        return RNNSpec(
            mode=mode_for(gates_of(w_hh.shape[0], hidden, "torch"), "torch", nonlinearity),
            input_size=w_ih.shape[1],
            hidden_size=hidden,
            num_layers=count_indexed(params, r"weight_ih_l(\d+)"),
            bidirectional="weight_ih_l0_reverse" in params,
            bias="bias_ih_l0" in params,
            proj_size=0 if w_hr is None else np.shape(w_hr)[0],
            peephole="peephole_l0" in params,
        )


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Torch(),
        Cs231n(),
        Keras(),
        Gluon(),
        Chainer(),
        ChainerNStep(),
        Onnx(),
        Haste(),
        Flax(),
    )
}


def get_layout(name: str) -> Layout:
    """The :class:`Layout` registered under ``name``."""
    if not isinstance(name, str) or name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def _checked(module: object, layout: str, expect: str | None) -> tuple[Layout, RNNSpec]:
    lay = get_layout(layout)
    spec = spec_of(module)
    if expect is not None and not spec.mode.startswith(expect):
        raise TypeError(
            f"expected a {expect} module, got {type(module).__name__} (mode {spec.mode})"
        )
    if layout != "torch":
        extras = extra_parameters(module, spec)
        if extras:
            raise ValueError(
                f"layout {layout!r} cannot hold the parameters {extras} (e.g. rnnkit's layer norm "
                "gains): no such weights exist in that framework; export to 'torch' instead"
            )
        changed = changed_eval_math(module)
        if changed:
            logger.warning(
                "%s uses %s: the weights are exported exactly, but a plain %s layer will not "
                "reproduce rnnkit's eval-mode step",
                type(module).__name__,
                ", ".join(changed),
                layout,
            )
    lay.check(spec)
    return lay, spec


def export_weights(module: object, layout: str, **options: object) -> dict[str, np.ndarray]:
    """The module's weights as ``{name: array}`` in ``layout`` (copies; dtype of the module).

    ``layout="torch"`` gives every parameter under the module's own name (layer norm gains too).
    Options: ``reset_after`` (Keras GRU, default True).
    """
    if layout == "torch":
        _checked(module, layout, None)
        return {
            name: p.detach().cpu().numpy().copy()
            for name, p in module.named_parameters()  # type: ignore[attr-defined]
        }
    lay, _ = _checked(module, layout, None)
    spec, cells = read_module(module)
    return lay.export(spec, cells, **options)


def load_weights(
    module: object, params: Mapping[str, object], layout: str, **options: object
) -> None:
    """Copy ``params`` (named as in ``layout``) into the module in place.

    Every array's shape is checked; ValueError names the array, the expected and the received shape,
    and missing or unexpected names. Options: ``reset_after`` (Keras GRU: None infers it from the
    bias shape).
    """
    lay, spec = _checked(module, layout, None)
    reader = ParamReader(params, layout)
    if layout == "torch":
        import torch

        named = dict(module.named_parameters())  # type: ignore[attr-defined]
        values = {n: reader.take(n, tuple(p.shape)) for n, p in named.items()}
        reader.finish()
        with torch.no_grad():
            for n, p in named.items():
                p.copy_(torch.as_tensor(np.ascontiguousarray(values[n]), dtype=p.dtype))
        return
    cells = lay.load(spec, reader, **options)
    reader.finish()
    write_module(module, spec, cells, layout)


def export_lstm_weights(module: object, layout: str) -> dict[str, np.ndarray]:
    """An LSTM's weights in ``layout`` (see :func:`export_weights`)."""
    _expect(module, "LSTM")
    return export_weights(module, layout)


def load_lstm_weights(module: object, params: Mapping[str, object], layout: str) -> None:
    """Load an LSTM's weights from ``layout`` in place (see :func:`load_weights`)."""
    _expect(module, "LSTM")
    load_weights(module, params, layout)


def export_gru_weights(
    module: object, layout: str, *, reset_after: bool = True
) -> dict[str, np.ndarray]:
    """A GRU's weights in ``layout``. ``reset_after=False`` (Keras only) writes the reset-before
    GRU, exact only when every ``W_hn`` is diagonal and ``b_hn = 0`` (else
    :class:`ResetBeforeError`)."""
    _expect(module, "GRU")
    if not reset_after and layout != "keras":
        raise ValueError(f"reset_after=False exists only for the 'keras' layout, not {layout!r}")
    return export_weights(
        module, layout, **({"reset_after": reset_after} if layout == "keras" else {})
    )


def load_gru_weights(
    module: object, params: Mapping[str, object], layout: str, *, reset_after: bool | None = None
) -> None:
    """Load a GRU's weights from ``layout`` in place. For Keras, ``reset_after=None`` reads the
    convention from the bias shape (``(2, 3H)``: True, ``(3H,)``: False)."""
    _expect(module, "GRU")
    if reset_after is not None and layout != "keras":
        raise ValueError(f"reset_after applies only to the 'keras' layout, not {layout!r}")
    load_weights(
        module, params, layout, **({"reset_after": reset_after} if layout == "keras" else {})
    )


def export_rnn_weights(module: object, layout: str) -> dict[str, np.ndarray]:
    """A vanilla (Elman) RNN's weights in ``layout``."""
    _expect(module, "RNN")
    return export_weights(module, layout)


def load_rnn_weights(module: object, params: Mapping[str, object], layout: str) -> None:
    """Load a vanilla RNN's weights from ``layout`` in place."""
    _expect(module, "RNN")
    load_weights(module, params, layout)


def _expect(module: object, kind: str) -> None:
    mode = getattr(module, "mode", None)
    if not isinstance(mode, str) or not mode.startswith(kind):
        raise TypeError(
            f"expected a {kind} module (torch.nn.{kind} or rnnkit.{kind}), got "
            f"{type(module).__name__} with mode={mode!r}"
        )
