"""Layouts of frameworks whose one layer object holds every layer and direction: Gluon, Chainer's
``NStepLSTM`` family, ONNX.

* ``gluon`` (MXNet ``gluon.rnn.LSTM/GRU/RNN``): ``l{k}_i2h_weight (G*H, D)``, ``l{k}_h2h_weight
  (G*H, R)``, ``l{k}_i2h_bias``, ``l{k}_h2h_bias (G*H,)``, ``l{k}_h2r_weight (P, H)`` with
  projection; ``r{k}_...`` for the backward direction. Gate order is torch's (LSTM i, f, c, o; GRU
  r, z, n).
* ``chainer_nstep`` (``L.NStepLSTM``/``NStepBiLSTM``, ``NStepGRU``, ``NStepRNNTanh``): child ``j =
  k*D + d`` holds ``{j}/w0 .. {j}/w{2G-1}`` (each ``(H, D)`` or ``(H, H)``) and ``{j}/b0 ..``:
  ``w0..w{G-1}`` act on the input, ``w{G}..`` on ``h``. LSTM: w0 i, w1 f, w2 a (cell input), w3 o
  -- the order chainer 7.8.1 computes with, which differs from its ``n_step_lstm`` docstring (that
  says w2 o, w3 a).
* ``onnx`` (operators LSTM/GRU/RNN): ``W (D, G*H, C)``, ``R (D, G*H, H)``, ``B (D, 2*G*H)`` = input
  then recurrent biases, ``P (D, 3H)`` peepholes i, o, f; gate order LSTM i, o, f, c; GRU z, r, h
  with ``linear_before_reset=1`` (torch's GRU). One node per layer: bare names for one layer,
  ``l{k}/W`` for more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from .base import ALL_MODES, Layout, count_indexed, gates_of, mode_for, need
from .weights import TORCH_ORDER, Cells, CellWeights, ParamReader, RNNSpec, gate, reorder


class Gluon(Layout):
    name = "gluon"
    source = "MXNet 1.9.1 gluon.rnn.rnn_layer._RNNLayer"
    modes = ALL_MODES
    projection = True

    @staticmethod
    def prefix(k: int, d: int) -> str:
        return f"{'r' if d else 'l'}{k}_"

    def export(self, spec: RNNSpec, cells: Cells, **options: object) -> dict[str, np.ndarray]:
        out = {}
        for (k, d), c in cells.items():
            p = self.prefix(k, d)
            out[p + "i2h_weight"] = c.w_ih
            out[p + "h2h_weight"] = c.w_hh
            out[p + "i2h_bias"] = c.b_ih
            out[p + "h2h_bias"] = c.b_hh
            if spec.proj_size:
                out[p + "h2r_weight"] = c.w_hr
        return out

    def load(self, spec: RNNSpec, reader: ParamReader, **options: object) -> Cells:
        cells = {}
        for k, d in spec.cells():
            p, s = self.prefix(k, d), spec.shapes(k)
            cells[k, d] = CellWeights(
                w_ih=reader.take(p + "i2h_weight", s["w_ih"]),
                w_hh=reader.take(p + "h2h_weight", s["w_hh"]),
                b_ih=reader.take(p + "i2h_bias", s["b_ih"]),
                b_hh=reader.take(p + "h2h_bias", s["b_hh"]),
                w_hr=reader.take(p + "h2r_weight", s["w_hr"]) if spec.proj_size else None,
            )
        return cells

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        w_ih, w_hh = need(params, self.name, "l0_i2h_weight", "l0_h2h_weight")
        w_hr = params.get("l0_h2r_weight")
        hidden = w_hr.shape[1] if w_hr is not None else w_hh.shape[1]
        gates = gates_of(w_hh.shape[0], hidden, self.name)
        mode = mode_for(gates, self.name, str(hints.get("nonlinearity", "tanh")))
        return RNNSpec(
            mode=mode,
            input_size=w_ih.shape[1],
            hidden_size=hidden,
            num_layers=count_indexed(params, r"l(\d+)_i2h_weight"),
            bidirectional="r0_i2h_weight" in params,
            bias=True,
            proj_size=0 if w_hr is None else w_hr.shape[0],
        )


class ChainerNStep(Layout):
    name = "chainer_nstep"
    source = "Chainer 7.8.1 chainer.links.NStepLSTM / functions.rnn.n_step_lstm._lstm"
    modes = ALL_MODES

    def export(self, spec: RNNSpec, cells: Cells, **options: object) -> dict[str, np.ndarray]:
        out, order, g = {}, TORCH_ORDER[spec.mode], spec.gates
        for (k, d), c in cells.items():
            j = k * spec.directions + d
            for n, name in enumerate(order):
                out[f"{j}/w{n}"] = gate(c.w_ih, order, name)
                out[f"{j}/w{n + g}"] = gate(c.w_hh, order, name)
                out[f"{j}/b{n}"] = gate(c.b_ih, order, name)
                out[f"{j}/b{n + g}"] = gate(c.b_hh, order, name)
        return out

    def load(self, spec: RNNSpec, reader: ParamReader, **options: object) -> Cells:
        cells, g, h = {}, spec.gates, spec.hidden_size
        for k, d in spec.cells():
            j, s = k * spec.directions + d, spec.shapes(k)

            def stack(letter: str, first: int, cols: int | None, j: int = j) -> np.ndarray:
                shape = (h,) if cols is None else (h, cols)
                return np.concatenate(
                    [reader.take(f"{j}/{letter}{n}", shape) for n in range(first, first + g)]
                )

            cells[k, d] = CellWeights(
                w_ih=stack("w", 0, s["w_ih"][1]),
                w_hh=stack("w", g, h),
                b_ih=stack("b", 0, None),
                b_hh=stack("b", g, None),
            )
        return cells

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        (w0,) = need(params, self.name, "0/w0")
        hidden, width = w0.shape
        gates = count_indexed(params, r"0/w(\d+)") // 2
        children = count_indexed(params, r"(\d+)/w0")
        bidirectional = hints.get("bidirectional")
        if bidirectional is None:
            # child 1 reads the input (width D) when bidirectional, h of layer 0 (width H) otherwise
            w1 = params["1/w0"].shape[1] if children > 1 else None
            if w1 is None or children % 2:
                bidirectional = False
            elif width != hidden:
                bidirectional = w1 == width
            elif children > 2:
                bidirectional = params["2/w0"].shape[1] == 2 * hidden
            else:
                raise ValueError(
                    f"{self.name}: two children with input size == hidden size ({hidden}) "
                    "may be one bidirectional layer or two layers; pass bidirectional=True or False"
                )
        return RNNSpec(
            mode=mode_for(gates, self.name, str(hints.get("nonlinearity", "tanh"))),
            input_size=width,
            hidden_size=hidden,
            num_layers=children // 2 if bidirectional else children,
            bidirectional=bool(bidirectional),
        )


class Onnx(Layout):
    name = "onnx"
    source = "ONNX operators LSTM/GRU/RNN (onnx 1.23, opset 22 schemas)"
    modes = ALL_MODES
    peephole = True
    ORDER = {"LSTM": "iofg", "GRU": "zrn", "RNN_TANH": "h", "RNN_RELU": "h"}

    @staticmethod
    def prefix(spec: RNNSpec, k: int) -> str:
        return "" if spec.num_layers == 1 else f"l{k}/"

    def export(self, spec: RNNSpec, cells: Cells, **options: object) -> dict[str, np.ndarray]:
        src, dst, out = TORCH_ORDER[spec.mode], self.ORDER[spec.mode], {}
        for k in range(spec.num_layers):
            cs = [cells[k, d] for d in range(spec.directions)]
            p = self.prefix(spec, k)
            out[p + "W"] = np.stack([reorder(c.w_ih, src, dst) for c in cs])
            out[p + "R"] = np.stack([reorder(c.w_hh, src, dst) for c in cs])
            if spec.bias:
                out[p + "B"] = np.stack(
                    [
                        np.concatenate([reorder(c.b_ih, src, dst), reorder(c.b_hh, src, dst)])
                        for c in cs
                    ]
                )
            if spec.peephole:
                out[p + "P"] = np.stack([c.peephole[[0, 2, 1]].reshape(-1) for c in cs])
        return out

    def load(self, spec: RNNSpec, reader: ParamReader, **options: object) -> Cells:
        src, dst = self.ORDER[spec.mode], TORCH_ORDER[spec.mode]
        nd, gh, h = spec.directions, spec.gates * spec.hidden_size, spec.hidden_size
        cells = {}
        for k in range(spec.num_layers):
            p = self.prefix(spec, k)
            w = reader.take(p + "W", (nd, gh, spec.layer_input(k)))
            r = reader.take(p + "R", (nd, gh, h))
            b = (
                reader.take(p + "B", (nd, 2 * gh))
                if reader.has(p + "B")
                else np.zeros((nd, 2 * gh), w.dtype)
            )
            pp = reader.take(p + "P", (nd, 3 * h)) if spec.peephole else None
            for d in range(nd):
                cells[k, d] = CellWeights(
                    w_ih=reorder(w[d], src, dst),
                    w_hh=reorder(r[d], src, dst),
                    b_ih=reorder(b[d, :gh], src, dst),
                    b_hh=reorder(b[d, gh:], src, dst),
                    peephole=None if pp is None else pp[d].reshape(3, h)[[0, 2, 1]],
                )
        return cells

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        layers = count_indexed(params, r"l(\d+)/W")
        p = "l0/" if layers else ""
        w, r = need(params, self.name, p + "W", p + "R")
        return RNNSpec(
            mode=mode_for(
                gates_of(r.shape[1], r.shape[2], self.name),
                self.name,
                str(hints.get("nonlinearity", "tanh")),
            ),
            input_size=w.shape[2],
            hidden_size=r.shape[2],
            num_layers=max(layers, 1),
            bidirectional=w.shape[0] == 2,
            bias=(p + "B") in params,
            peephole=(p + "P") in params,
        )


def gluon_key(name: str) -> tuple[str, str] | None:
    """Split a Gluon parameter name into ``(owner, "l{k}_i2h_weight")``, or None if it is not one.

    Accepts ``save_parameters`` names (``rnn._unfused.0.l_cell.i2h_weight``,
    ``_unfused.0.i2h_weight``), ``collect_params`` names (``lstm0_l0_i2h_weight``) and symbolic
    ``arg:`` names; ``owner`` is what precedes the layer's own part (``rnn.``, ``lstm0_``).
    """
    m = re.search(r"_unfused\.(\d+)\.(?:([lr])_cell\.)?(i2h|h2h|h2r)_(weight|bias)$", name)
    if m:
        key = f"{m.group(2) or 'l'}{m.group(1)}_{m.group(3)}_{m.group(4)}"
        return name[: m.start()], key
    m = re.search(r"([lr]\d+_(?:i2h|h2h|h2r)_(?:weight|bias))$", name)
    if m is None:
        return None
    owner = name[: m.start()]
    return (owner[4:] if owner.startswith(("arg:", "aux:")) else owner), m.group(1)


def gluon_file_names(spec: RNNSpec, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename ``l{k}_i2h_weight`` keys to the names ``Block.save_parameters`` writes for an
    ``_RNNLayer`` (``_unfused.{k}.i2h_weight``, ``_unfused.{k}.l_cell.i2h_weight`` when
    bidirectional), so that ``load_parameters`` accepts the file."""
    out = {}
    for key, value in params.items():
        d, k, rest = key[0], key[1:].split("_", 1)[0], key.split("_", 1)[1]
        cell = f"{d}_cell." if spec.bidirectional else ""
        out[f"_unfused.{k}.{cell}{rest}"] = value
    return out
