"""Layouts of frameworks whose layer object is one layer in one direction: CS231n, Haste, Flax and
Chainer's ``L.LSTM`` (Keras, the fifth, is in :mod:`~rnnkit.interop.layouts_keras`).

Stacked or bidirectional modules map to one such object per layer and direction, named the way the
framework names them (see each ``prefix``); a one-layer, one-direction module uses the bare names.
Frameworks with a single bias receive ``b_ih + b_hh`` and give back ``b_ih = bias, b_hh = 0`` (the
same function; the biases come back summed).

* ``cs231n``: ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``, gates i, f, o, g; RNN ``Wx (D, H)``.
* ``haste`` (``haste_pytorch.LSTM/GRU``): ``kernel (D, G*H)``, ``recurrent_kernel (H, G*H)``; LSTM
  ``bias (4H,)`` gates i, g, f, o; GRU ``bias``, ``recurrent_bias (3H,)`` gates z, r, h.
* ``flax`` (linen ``LSTMCell``/``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``): one Dense per
  gate, ``i{g}/kernel (D, H)`` on the input, ``h{g}/kernel (H, H)`` on ``h``; LSTM biases on
  ``h{g}`` only; GRU biases on ``ir``, ``iz``, ``in`` and ``hn``; ``SimpleCell``: ``i`` (with
  bias), ``h``. Flax's LSTM carry is ``(c, h)``.
* ``chainer`` (``L.LSTM``): ``upward/W (4H, D)``, ``upward/b (4H,)``, ``lateral/W (4H, H)`` (no
  bias), gates interleaved per unit: row ``4*j + q`` is unit ``j`` of gate ``q``, q = a, i, f, o.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from .base import ALL_MODES, Layout, gates_of, mode_for, need, tail_is
from .weights import TORCH_ORDER, Cells, CellWeights, ParamReader, RNNSpec, gate, reorder


class CellLayout(Layout):
    """A framework with one object per layer and direction (``prefix`` names each)."""

    def prefix(self, spec: RNNSpec, k: int, d: int) -> str:
        raise NotImplementedError

    def export(self, spec: RNNSpec, cells: Cells, **options: object) -> dict[str, np.ndarray]:
        out = {}
        for (k, d), c in cells.items():
            p = self.prefix(spec, k, d)
            out.update({p + name: a for name, a in self.export_cell(spec, c, **options).items()})
        return out

    def load(self, spec: RNNSpec, reader: ParamReader, **options: object) -> Cells:
        return {
            (k, d): self.load_cell(spec, k, reader, self.prefix(spec, k, d), **options)
            for k, d in spec.cells()
        }

    def export_cell(
        self, spec: RNNSpec, c: CellWeights, **options: object
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_cell(
        self, spec: RNNSpec, k: int, reader: ParamReader, p: str, **options: object
    ) -> CellWeights:
        raise NotImplementedError


class Cs231n(CellLayout):
    name = "cs231n"
    source = "CS231n assignment 3, cs231n/rnn_layers.py (lstm_step_forward, rnn_step_forward)"
    modes = frozenset({"LSTM", "RNN_TANH"})
    bidirectional = False
    multilayer = False
    ORDER = {"LSTM": "ifog", "RNN_TANH": "h"}

    def prefix(self, spec: RNNSpec, k: int, d: int) -> str:
        return ""

    def export_cell(
        self, spec: RNNSpec, c: CellWeights, **options: object
    ) -> dict[str, np.ndarray]:
        src, dst = TORCH_ORDER[spec.mode], self.ORDER[spec.mode]
        return {
            "Wx": reorder(c.w_ih, src, dst).T,
            "Wh": reorder(c.w_hh, src, dst).T,
            "b": reorder(c.b_ih + c.b_hh, src, dst),
        }

    def load_cell(
        self, spec: RNNSpec, k: int, reader: ParamReader, p: str, **options: object
    ) -> CellWeights:
        src, dst, gh = self.ORDER[spec.mode], TORCH_ORDER[spec.mode], spec.gates * spec.hidden_size
        b = reorder(reader.take("b", (gh,)), src, dst)
        return CellWeights(
            w_ih=reorder(reader.take("Wx", (spec.input_size, gh)).T, src, dst),
            w_hh=reorder(reader.take("Wh", (spec.hidden_size, gh)).T, src, dst),
            b_ih=b,
            b_hh=np.zeros_like(b),
        )

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        wx, wh = need(params, self.name, "Wx", "Wh")
        return RNNSpec(
            mode=mode_for(gates_of(wh.shape[1], wh.shape[0], self.name), self.name),
            input_size=wx.shape[0],
            hidden_size=wh.shape[0],
        )


class Haste(CellLayout):
    name = "haste"
    source = "lmnt-com/haste frameworks/pytorch/{lstm,gru}.py (to_native_weights)"
    modes = frozenset({"LSTM", "GRU"})
    bidirectional = False
    ORDER = {"LSTM": "igfo", "GRU": "zrn"}

    def prefix(self, spec: RNNSpec, k: int, d: int) -> str:
        """An ``nn.Sequential`` of Haste layers: ``0.kernel``, ``1.kernel``, ..."""
        return "" if spec.num_layers == 1 else f"{k}."

    def export_cell(
        self, spec: RNNSpec, c: CellWeights, **options: object
    ) -> dict[str, np.ndarray]:
        src, dst = TORCH_ORDER[spec.mode], self.ORDER[spec.mode]
        out = {
            "kernel": reorder(c.w_ih, src, dst).T,
            "recurrent_kernel": reorder(c.w_hh, src, dst).T,
        }
        if spec.mode == "LSTM":
            out["bias"] = reorder(c.b_ih + c.b_hh, src, dst)
        else:
            out["bias"] = reorder(c.b_ih, src, dst)
            out["recurrent_bias"] = reorder(c.b_hh, src, dst)
        return out

    def load_cell(
        self, spec: RNNSpec, k: int, reader: ParamReader, p: str, **options: object
    ) -> CellWeights:
        src, dst, gh = self.ORDER[spec.mode], TORCH_ORDER[spec.mode], spec.gates * spec.hidden_size
        w_ih = reorder(reader.take(p + "kernel", (spec.layer_input(k), gh)).T, src, dst)
        w_hh = reorder(reader.take(p + "recurrent_kernel", (spec.hidden_size, gh)).T, src, dst)
        b = reorder(reader.take(p + "bias", (gh,)), src, dst)
        if spec.mode == "LSTM":
            return CellWeights(w_ih, w_hh, b, np.zeros_like(b))
        return CellWeights(
            w_ih, w_hh, b, reorder(reader.take(p + "recurrent_bias", (gh,)), src, dst)
        )

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        layers = max(1, _count(params, r"(\d+)\.kernel", 0))
        p = "" if "kernel" in params else "0."
        kernel, rec = need(params, self.name, p + "kernel", p + "recurrent_kernel")
        return RNNSpec(
            mode=mode_for(gates_of(rec.shape[1], rec.shape[0], self.name), self.name),
            input_size=kernel.shape[0],
            hidden_size=rec.shape[0],
            num_layers=layers,
        )


class Flax(CellLayout):
    name = "flax"
    source = (
        "flax 0.12.8 flax/linen/recurrent.py (LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell)"
    )
    modes = ALL_MODES

    def prefix(self, spec: RNNSpec, k: int, d: int) -> str:
        """``nn.RNN(cell)`` layers in a list (``layers_{k}``), ``nn.Bidirectional``'s
        ``forward_rnn``/``backward_rnn``; a lone cell's own names otherwise."""
        if spec.num_layers == 1 and not spec.bidirectional:
            return ""
        p = f"layers_{k}/" if spec.num_layers > 1 else ""
        if spec.bidirectional:
            p += ("backward_rnn" if d else "forward_rnn") + "/"
        return p + "cell/"

    def export_cell(
        self, spec: RNNSpec, c: CellWeights, **options: object
    ) -> dict[str, np.ndarray]:
        order = TORCH_ORDER[spec.mode]

        def g(a: np.ndarray, name: str) -> np.ndarray:
            return gate(a, order, name)

        if spec.mode == "LSTM":
            out = {}
            for q in order:
                out[f"i{q}/kernel"] = g(c.w_ih, q).T
                out[f"h{q}/kernel"] = g(c.w_hh, q).T
                out[f"h{q}/bias"] = g(c.b_ih + c.b_hh, q)
            return out
        if spec.mode == "GRU":
            out = {}
            for q in order:
                out[f"i{q}/kernel"] = g(c.w_ih, q).T
                out[f"h{q}/kernel"] = g(c.w_hh, q).T
            out.update(
                {
                    "ir/bias": g(c.b_ih, "r") + g(c.b_hh, "r"),
                    "iz/bias": g(c.b_ih, "z") + g(c.b_hh, "z"),
                    "in/bias": g(c.b_ih, "n"),
                    "hn/bias": g(c.b_hh, "n"),
                }
            )
            return out
        return {"i/kernel": c.w_ih.T, "i/bias": c.b_ih + c.b_hh, "h/kernel": c.w_hh.T}

    def load_cell(
        self, spec: RNNSpec, k: int, reader: ParamReader, p: str, **options: object
    ) -> CellWeights:
        d, h = spec.layer_input(k), spec.hidden_size

        def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
            return reader.take(p + name, shape)

        if spec.mode == "LSTM":
            order = TORCH_ORDER["LSTM"]
            w_ih = np.concatenate([take(f"i{q}/kernel", (d, h)).T for q in order])
            w_hh = np.concatenate([take(f"h{q}/kernel", (h, h)).T for q in order])
            b = np.concatenate([take(f"h{q}/bias", (h,)) for q in order])
            return CellWeights(w_ih, w_hh, b, np.zeros_like(b))
        if spec.mode == "GRU":
            w_ih = np.concatenate([take(f"i{q}/kernel", (d, h)).T for q in "rzn"])
            w_hh = np.concatenate([take(f"h{q}/kernel", (h, h)).T for q in "rzn"])
            b_ih = np.concatenate([take(f"i{q}/bias", (h,)) for q in "rzn"])
            hn = take("hn/bias", (h,))
            return CellWeights(w_ih, w_hh, b_ih, np.concatenate([np.zeros_like(hn)] * 2 + [hn]))
        b = take("i/bias", (h,))
        return CellWeights(
            take("i/kernel", (d, h)).T, take("h/kernel", (h, h)).T, b, np.zeros_like(b)
        )

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        for found, probe in (("LSTM", "hf/kernel"), ("GRU", "hz/kernel"), ("RNN_TANH", "h/kernel")):
            prefixes = sorted(k[: -len(probe)] for k in params if tail_is(k, probe))
            if prefixes:
                mode = found
                break
        else:
            raise ValueError(
                f"{self.name}: no flax recurrent cell among keys {sorted(params)[:12]}"
            )
        if mode == "RNN_TANH" and hints.get("nonlinearity") == "relu":
            mode = "RNN_RELU"
        first = prefixes[0]
        inp = (
            "i/kernel"
            if mode.startswith("RNN")
            else ("if/kernel" if mode == "LSTM" else "iz/kernel")
        )
        (kernel,) = need(params, self.name, first + inp)
        bidirectional = any("forward_rnn/" in p for p in prefixes)
        return RNNSpec(
            mode=mode,
            input_size=kernel.shape[0],
            hidden_size=kernel.shape[1],
            num_layers=len(prefixes) // (2 if bidirectional else 1),
            bidirectional=bidirectional,
        )


class Chainer(CellLayout):
    name = "chainer"
    source = "Chainer 7.8.1 chainer/links/connection/lstm.py, chainer/functions/activation/lstm.py"
    modes = frozenset({"LSTM"})
    bidirectional = False

    def prefix(self, spec: RNNSpec, k: int, d: int) -> str:
        """Links ``l1``, ``l2``, ... of a chain (as in Chainer's PTB example) for stacked layers."""
        return "" if spec.num_layers == 1 else f"l{k + 1}/"

    @staticmethod
    def interleave(a: np.ndarray) -> np.ndarray:
        """torch's stacked ``i, f, g, o`` -> Chainer's per-unit ``a, i, f, o`` rows."""
        i, f, g, o = np.split(a, 4)
        return np.stack([g, i, f, o], axis=1).reshape(a.shape)

    @staticmethod
    def deinterleave(a: np.ndarray) -> np.ndarray:
        h = a.shape[0] // 4
        q = a.reshape(h, 4, *a.shape[1:])
        return np.concatenate([q[:, 1], q[:, 2], q[:, 0], q[:, 3]])

    def export_cell(
        self, spec: RNNSpec, c: CellWeights, **options: object
    ) -> dict[str, np.ndarray]:
        return {
            "upward/W": self.interleave(c.w_ih),
            "upward/b": self.interleave(c.b_ih + c.b_hh),
            "lateral/W": self.interleave(c.w_hh),
        }

    def load_cell(
        self, spec: RNNSpec, k: int, reader: ParamReader, p: str, **options: object
    ) -> CellWeights:
        gh = 4 * spec.hidden_size
        b = self.deinterleave(reader.take(p + "upward/b", (gh,)))
        return CellWeights(
            w_ih=self.deinterleave(reader.take(p + "upward/W", (gh, spec.layer_input(k)))),
            w_hh=self.deinterleave(reader.take(p + "lateral/W", (gh, spec.hidden_size))),
            b_ih=b,
            b_hh=np.zeros_like(b),
        )

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        layers = _count(params, r"l(\d+)/upward/W", 1)
        p = "l1/" if layers else ""
        up, lat = need(params, self.name, p + "upward/W", p + "lateral/W")
        return RNNSpec(
            mode="LSTM", input_size=up.shape[1], hidden_size=lat.shape[1], num_layers=max(layers, 1)
        )


def _count(params: Mapping[str, np.ndarray], pattern: str, start: int) -> int:
    found = {int(m.group(1)) for k in params if (m := re.fullmatch(pattern, k))}
    n = 0
    while start + n in found:
        n += 1
    return n
