"""The Keras layout (Keras 3 ``LSTMCell``/``GRUCell``/``SimpleRNNCell``), and the reset-before GRU.

``kernel (D, G*H)``, ``recurrent_kernel (H, G*H)``, ``bias``; LSTM gates i, f, c, o; GRU z, r, h.
A Keras GRU has two conventions: ``reset_after=True`` (Keras' default since TF 2, bias ``(2, 3H)`` =
input row, recurrent row) is torch's GRU exactly; ``reset_after=False`` (bias ``(3H,)``) applies the
reset gate before the recurrent matmul (Cho et al. 2014, arXiv:1406.1078 v3), which equals torch's
GRU only when ``W_hn`` is diagonal and ``b_hn = 0`` (:func:`check_reset_before`).

Stacked layers take Keras' default names in a fresh session: ``lstm``, ``lstm_1``, ...;
bidirectional ones ``bidirectional[_k]/forward_lstm[_k]`` and ``backward_...``; one layer has bare
names.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import ALL_MODES, gates_of, mode_for, need, tail_is
from .layouts_cell import CellLayout
from .weights import TORCH_ORDER, CellWeights, ParamReader, RNNSpec, gate, reorder


class Keras(CellLayout):
    name = "keras"
    source = "Keras 3.15.1 keras/src/layers/rnn/{lstm,gru,simple_rnn}.py"
    modes = ALL_MODES
    ORDER = {"LSTM": "ifgo", "GRU": "zrn", "RNN_TANH": "h", "RNN_RELU": "h"}
    BASE = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "simple_rnn", "RNN_RELU": "simple_rnn"}

    def prefix(self, spec: RNNSpec, k: int, d: int) -> str:
        """Keras' default layer names: ``lstm``, ``lstm_1``, ...;
        ``bidirectional[_k]/forward_lstm``."""
        if spec.num_layers == 1 and not spec.bidirectional:
            return ""
        base = self.BASE[spec.mode]
        name = base if k == 0 else f"{base}_{k}"
        if not spec.bidirectional:
            return name + "/"
        wrapper = "bidirectional" if k == 0 else f"bidirectional_{k}"
        return f"{wrapper}/{'backward' if d else 'forward'}_{name}/"

    def export_cell(
        self, spec: RNNSpec, c: CellWeights, **options: object
    ) -> dict[str, np.ndarray]:
        src, dst = TORCH_ORDER[spec.mode], self.ORDER[spec.mode]
        w_hh = reorder(c.w_hh, src, dst)
        out = {"kernel": reorder(c.w_ih, src, dst).T, "recurrent_kernel": w_hh.T}
        if not spec.bias:
            if spec.mode == "GRU" and not options.get("reset_after", True):
                check_reset_before(gate(c.w_hh, src, "n"), None, "torch GRU weight_hh (n block)")
            return out
        if spec.mode != "GRU":
            out["bias"] = reorder(c.b_ih + c.b_hh, src, dst)
        elif options.get("reset_after", True):
            out["bias"] = np.stack([reorder(c.b_ih, src, dst), reorder(c.b_hh, src, dst)])
        else:
            check_reset_before(gate(c.w_hh, src, "n"), gate(c.b_hh, src, "n"), "torch GRU")
            b_hh = c.b_hh.copy()
            b_hh[2 * spec.hidden_size :] = 0  # b_hn is zero (checked)
            out["bias"] = reorder(c.b_ih + b_hh, src, dst)
        return out

    def load_cell(
        self, spec: RNNSpec, k: int, reader: ParamReader, p: str, **options: object
    ) -> CellWeights:
        src, dst, gh = self.ORDER[spec.mode], TORCH_ORDER[spec.mode], spec.gates * spec.hidden_size
        w_ih = reorder(reader.take(p + "kernel", (spec.layer_input(k), gh)).T, src, dst)
        w_hh = reorder(reader.take(p + "recurrent_kernel", (spec.hidden_size, gh)).T, src, dst)
        zeros = np.zeros(gh, dtype=w_ih.dtype)
        cell = CellWeights(w_ih=w_ih, w_hh=w_hh, b_ih=zeros, b_hh=zeros.copy())
        reset_after = options.get("reset_after")
        bias = reader.params.get(p + "bias")
        if spec.mode == "GRU" and reset_after is None:
            reset_after = bias is None or np.ndim(bias) == 2
        if spec.mode == "GRU" and not reset_after:
            check_reset_before(
                gate(w_hh, dst, "n"), None, f"keras GRU {p}recurrent_kernel (h block)"
            )
        if bias is None and not spec.bias:
            return cell
        if spec.mode == "GRU" and reset_after:
            b = reader.take(p + "bias", (2, gh), "a GRU with reset_after=True")
            return CellWeights(w_ih, w_hh, reorder(b[0], src, dst), reorder(b[1], src, dst))
        return cell.with_bias(reorder(reader.take(p + "bias", (gh,)), src, dst))

    def infer(self, params: Mapping[str, np.ndarray], **hints: object) -> RNNSpec:
        prefixes = sorted(
            k[: -len("recurrent_kernel")] for k in params if tail_is(k, "recurrent_kernel")
        )
        if not prefixes:
            raise ValueError(f"{self.name}: no 'recurrent_kernel' among keys {sorted(params)[:12]}")
        first = prefixes[0]  # sorted: a layer-0 cell ("" < "bidirectional/" < "lstm/" < "lstm_1/")
        kernel, rec = need(params, self.name, first + "kernel", first + "recurrent_kernel")
        bidirectional = any("forward_" in p for p in prefixes)
        return RNNSpec(
            mode=mode_for(
                gates_of(rec.shape[1], rec.shape[0], self.name),
                self.name,
                str(hints.get("nonlinearity", "tanh")),
            ),
            input_size=kernel.shape[0],
            hidden_size=rec.shape[0],
            num_layers=len(prefixes) // (2 if bidirectional else 1),
            bidirectional=bidirectional,
            bias=(first + "bias") in params,
        )


class ResetBeforeError(ValueError):
    """A GRU conversion between reset-after (torch) and reset-before math that is not exact."""


def check_reset_before(w_n: np.ndarray, b_hn: np.ndarray | None, what: str) -> None:
    """Raise unless a reset-after GRU equals a reset-before one with these weights.

    torch computes ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; the reset-before GRU (Keras
    ``reset_after=False``, ONNX ``linear_before_reset=0``, Cho et al. 2014 v3) computes
    ``n = tanh(W_in x + b_in + W_hn (r * h))``. They agree for every input exactly when ``W_hn`` is
    diagonal (``r_i * sum_j W_ij h_j == sum_j W_ij r_j h_j`` for all ``r``) and ``b_hn = 0``.
    """
    off = w_n - np.diag(np.diag(w_n))
    problems = []
    if np.any(off != 0):
        problems.append(
            "its candidate recurrent matrix is not diagonal "
            f"(max |off-diagonal| {np.abs(off).max():.3g})"
        )
    if b_hn is not None and np.any(b_hn != 0):
        problems.append(
            f"its candidate recurrent bias b_hn is non-zero (max |b_hn| {np.abs(b_hn).max():.3g})"
        )
    if problems:
        raise ResetBeforeError(
            f"{what}: a reset-before GRU (Keras reset_after=False, ONNX linear_before_reset=0) "
            f"cannot compute the same function because {' and '.join(problems)}; the two "
            "agree only when that matrix is diagonal and b_hn = 0. Use reset_after=True (Keras' "
            "default since TF 2) / linear_before_reset=1, which matches torch exactly."
        )
