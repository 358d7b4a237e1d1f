"""Export recurrent layers to the standard ONNX ``LSTM``/``GRU``/``RNN`` operators.

The graph is built directly with ``onnx.helper`` from the weights (no tracing): one operator node
per layer (W, R, B in ONNX's gate order, see :class:`~rnnkit.interop.layouts_stacked.Onnx`), the
layer's ``Y (T, D, N, H)`` turned into the next layer's ``(T, N, D*H)`` input by ``Transpose`` +
``Reshape``, the final states concatenated into torch's ``(L*D, N, H)``. Batch and sequence axes
are symbolic, so the model runs on any batch size and length; ``lengths`` adds an ``int64 (N,)``
input fed to every node's ``sequence_lens`` (outputs at padded steps are zero, as rnnkit's
``lengths=`` gives).

What the standard operators can express: peepholes (ONNX ``P``, gates i, o, f); GRU as torch
computes
it (``linear_before_reset=1``); tanh/relu RNNs. What they cannot, and so raises NotImplementedError:
LSTM projection (``proj_size``: ONNX's recurrence takes ``h`` of size ``hidden_size``), layer norm,
zoneout (its eval step mixes the previous state in). Cells without a standard operator (minGRU,
minLSTM, IndRNN, sLSTM: :attr:`rnnkit.registry.CellSpec.onnx_op` empty) raise
NotImplementedError naming the cells that export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..registry import cell_names, cell_of, get_cell
from .layouts import export_weights
from .weights import changed_eval_math, extra_parameters, spec_of

OPSET = 17
IR_VERSION = 8


def _onnx():  # noqa: ANN202 - the optional dependency, imported on first use
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - onnx is in the 'onnx' extra
        raise ImportError("ONNX export needs the onnx package: pip install 'rnnkit[onnx]'") from e
    return onnx


@dataclass
class Graph:
    """Nodes and initializers of a sub-graph, and the names of its outputs."""

    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    output: str = ""
    h_n: str = ""
    c_n: str | None = None

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(_onnx().numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: object) -> None:
        self.nodes.append(_onnx().helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))


def exportable_cells() -> tuple[str, ...]:
    """The titles of the registered cells a standard ONNX operator computes."""
    return tuple(dict.fromkeys(get_cell(n).title for n in cell_names() if get_cell(n).onnx_op))


def check_exportable(module: object) -> None:
    """NotImplementedError naming what the standard ONNX operators cannot compute."""
    cell = cell_of(module)
    if not cell.onnx_op:
        raise NotImplementedError(
            f"{cell.title} has no standard ONNX operator: ONNX export serves "
            f"{', '.join(exportable_cells())} layers (ONNX's LSTM/GRU/RNN operators)"
        )
    spec = spec_of(module)
    problems = []
    if spec.proj_size:
        problems.append(
            f"proj_size={spec.proj_size} (ONNX LSTM has no projection: h feeds R at full "
            "hidden_size, so a MatMul after the node cannot reproduce it)"
        )
    extras = extra_parameters(module, spec)
    if extras:
        problems.append(f"parameters {extras} (layer norm has no place in the ONNX operators)")
    problems += [
        f"{c} (its eval step mixes the previous state in)" for c in changed_eval_math(module)
    ]
    op = cell.onnx_op
    if problems:
        raise NotImplementedError(
            f"{type(module).__name__} cannot be exported to the standard ONNX {op} "
            f"operator: {'; '.join(problems)}"
        )


def rnn_nodes(
    module: object,
    x: str,
    *,
    name: str = "rnn",
    lengths: str | None = None,
    h0: str | None = None,
    c0: str | None = None,
) -> Graph:
    """The nodes computing ``module`` on the time-major ``(T, N, C)`` float tensor named ``x``.

    ``lengths`` names an ``int32 (N,)`` tensor; ``h0``/``c0`` name ``(L*D, N, H)`` initial states.
    The returned :class:`Graph` gives ``output (T, N, D*H)``, ``h_n`` and (LSTM) ``c_n`` names, to
    be composed into a larger model.
    """
    check_exportable(module)
    spec = spec_of(module)
    params = {k: v.astype(np.float32) for k, v in export_weights(module, "onnx").items()}
    g, nd, h = Graph(), spec.directions, spec.hidden_size
    cell = cell_of(module)
    op = cell.onnx_op
    attrs: dict[str, object] = {
        "hidden_size": h,
        "direction": "bidirectional" if spec.bidirectional else "forward",
    }
    for key, value in cell.onnx_attributes:
        if key == "activation":
            attrs["activations"] = [value] * nd
        else:
            attrs[key] = value
    axes = g.const(f"{name}.axes0", np.array([0], np.int64))
    flat = g.const(f"{name}.flat", np.array([0, 0, -1], np.int64))
    ys_h, ys_c = [], []
    for k in range(spec.num_layers):
        p, q = ("" if spec.num_layers == 1 else f"l{k}/"), f"{name}.l{k}"
        inputs = [x, g.const(f"{q}.W", params[p + "W"]), g.const(f"{q}.R", params[p + "R"])]
        inputs.append(g.const(f"{q}.B", params[p + "B"]) if spec.bias else "")
        inputs.append(lengths or "")
        starts = g.const(f"{q}.start", np.array([k * nd], np.int64))
        ends = g.const(f"{q}.end", np.array([(k + 1) * nd], np.int64))
        for state in (h0, c0 if len(cell.states) > 1 else None):
            if state is None:
                inputs.append("")
            else:
                g.node("Slice", [state, starts, ends, axes], [f"{q}.{state}"])
                inputs.append(f"{q}.{state}")
        if spec.peephole:
            inputs.append(g.const(f"{q}.P", params[p + "P"]))
        while inputs and not inputs[-1]:
            inputs.pop()
        outs = [f"{q}.Y", f"{q}.Y_h"] + ([f"{q}.Y_c"] if len(cell.states) > 1 else [])
        g.node(op, inputs, outs, **attrs)
        g.node("Transpose", [f"{q}.Y"], [f"{q}.Y_tnd"], perm=[0, 2, 1, 3])
        g.node("Reshape", [f"{q}.Y_tnd", flat], [f"{q}.out"])
        x = f"{q}.out"
        ys_h.append(f"{q}.Y_h")
        ys_c += outs[2:]
    g.output = x
    g.h_n = _concat(g, ys_h, f"{name}.h_n")
    g.c_n = _concat(g, ys_c, f"{name}.c_n") if ys_c else None
    return g


def _concat(g: Graph, names: list[str], out: str) -> str:
    if len(names) == 1:
        g.node("Identity", names, [out])
    else:
        g.node("Concat", names, [out], axis=0)
    return out


def to_onnx(
    module: object,
    example_input: object = None,
    path: str | os.PathLike | None = None,
    *,
    lengths: bool = False,
    initial_state: bool = False,
    opset: int = OPSET,
):  # noqa: ANN201 - returns onnx.ModelProto (optional dependency)
    """Export a plain LSTM/GRU/RNN layer to an ONNX model (saved to ``path`` when given).

    Graph inputs: ``input`` ``(T, N, C)`` (``(N, T, C)`` with ``batch_first``), float32, ``T`` and
    ``N`` symbolic; with ``lengths=True`` also ``lengths`` ``int64 (N,)``; with
    ``initial_state=True`` ``h0`` (and ``c0``) ``(L*D, N, H)``. Outputs: ``output`` ``(T, N, D*H)``
    (or batch-first), ``h_n`` and, for an LSTM, ``c_n``, as the module returns them.
    ``example_input`` (optional) is checked against the module's input size.
    """
    onnx = _onnx()
    helper, tp = onnx.helper, onnx.TensorProto
    check_exportable(module)
    spec = spec_of(module)
    if example_input is not None and tuple(example_input.shape)[-1] != spec.input_size:
        raise ValueError(
            f"example_input has {tuple(example_input.shape)[-1]} features, the module expects "
            f"{spec.input_size}"
        )
    batch_first = bool(getattr(module, "batch_first", False))
    states = spec.num_layers * spec.directions
    g = Graph()
    x_dims = ["batch", "seq", spec.input_size] if batch_first else ["seq", "batch", spec.input_size]
    inputs = [helper.make_tensor_value_info("input", tp.FLOAT, x_dims)]
    x = "input"
    if batch_first:
        g.node("Transpose", ["input"], ["input_tnc"], perm=[1, 0, 2])
        x = "input_tnc"
    seq = None
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", tp.INT64, ["batch"]))
        g.node("Cast", ["lengths"], ["lengths_i32"], to=tp.INT32)
        seq = "lengths_i32"
    h0 = c0 = None
    if initial_state:
        h0 = "h0"
        inputs.append(
            helper.make_tensor_value_info("h0", tp.FLOAT, [states, "batch", spec.hidden_size])
        )
        if len(cell_of(module).states) > 1:
            c0 = "c0"
            inputs.append(
                helper.make_tensor_value_info("c0", tp.FLOAT, [states, "batch", spec.hidden_size])
            )
    rnn = rnn_nodes(module, x, lengths=seq, h0=h0, c0=c0)
    g.nodes += rnn.nodes
    g.initializers += rnn.initializers
    width = spec.directions * spec.hidden_size
    if batch_first:
        g.node("Transpose", [rnn.output], ["output"], perm=[1, 0, 2])
        out_dims = ["batch", "seq", width]
    else:
        g.node("Identity", [rnn.output], ["output"])
        out_dims = ["seq", "batch", width]
    g.node("Identity", [rnn.h_n], ["h_n"])
    outputs = [
        helper.make_tensor_value_info("output", tp.FLOAT, out_dims),
        helper.make_tensor_value_info("h_n", tp.FLOAT, [states, "batch", spec.hidden_size]),
    ]
    if rnn.c_n:
        g.node("Identity", [rnn.c_n], ["c_n"])
        outputs.append(
            helper.make_tensor_value_info("c_n", tp.FLOAT, [states, "batch", spec.hidden_size])
        )
    return _finish(g, inputs, outputs, path, opset, type(module).__name__)


def lm_to_onnx(
    embedding: object,
    rnn: object,
    decoder: object,
    path: str | os.PathLike | None = None,
    *,
    opset: int = OPSET,
):  # noqa: ANN201 - returns onnx.ModelProto
    """Export an ``Embedding -> LSTM/GRU/RNN -> Linear`` language model, time-major, with state;
    the decoder may also be an ``AdaptiveLogSoftmaxWithLoss`` (tied or not), whose "logits" are
    then its log-probabilities over the whole vocabulary (the same distribution).

    Inputs ``tokens int64 (T, N)``, ``h0`` (and ``c0``) ``(L*D, N, H)``; outputs ``logits (T, N,
    V)``, ``h_n`` (and ``c_n``): feed the states back to sample one token at a time with
    onnxruntime alone.
    """
    onnx = _onnx()
    helper, tp = onnx.helper, onnx.TensorProto
    check_exportable(rnn)
    spec = spec_of(rnn)
    if getattr(rnn, "batch_first", False):
        raise ValueError("lm_to_onnx expects a time-major rnn (batch_first=False)")
    states, h = spec.num_layers * spec.directions, spec.hidden_size
    g = Graph()
    table = embedding.weight.detach().cpu().numpy().astype(np.float32)
    g.node("Gather", [g.const("embedding.weight", table), "tokens"], ["embedded"], axis=0)
    two_states = len(cell_of(rnn).states) > 1
    rnn_g = rnn_nodes(rnn, "embedded", h0="h0", c0="c0" if two_states else None)
    g.nodes += rnn_g.nodes
    g.initializers += rnn_g.initializers
    if hasattr(decoder, "shortlist_size"):  # an adaptive softmax, torch's or rnnkit's tied one
        vocab = _adaptive_nodes(g, decoder, rnn_g.output, "logits")
    else:
        vocab = _linear_nodes(g, decoder, rnn_g.output, "logits", "decoder")
    g.node("Identity", [rnn_g.h_n], ["h_n"])
    inputs = [
        helper.make_tensor_value_info("tokens", tp.INT64, ["seq", "batch"]),
        helper.make_tensor_value_info("h0", tp.FLOAT, [states, "batch", h]),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", tp.FLOAT, ["seq", "batch", vocab]),
        helper.make_tensor_value_info("h_n", tp.FLOAT, [states, "batch", h]),
    ]
    if rnn_g.c_n:
        inputs.append(helper.make_tensor_value_info("c0", tp.FLOAT, [states, "batch", h]))
        g.node("Identity", [rnn_g.c_n], ["c_n"])
        outputs.append(helper.make_tensor_value_info("c_n", tp.FLOAT, [states, "batch", h]))
    return _finish(g, inputs, outputs, path, opset, "language model")


def _linear_nodes(g: Graph, linear: object, x: str, out: str, name: str) -> int:
    """``out = x W^T (+ b)`` for a linear layer (or anything with ``weight`` ``(O, I)`` and an
    optional ``bias``); its number of outputs."""
    weight = linear.weight.detach().cpu().numpy().astype(np.float32).T  # (I, O)
    bias = getattr(linear, "bias", None)
    if bias is None:
        g.node("MatMul", [x, g.const(f"{name}.weight_t", weight)], [out])
    else:
        g.node("MatMul", [x, g.const(f"{name}.weight_t", weight)], [f"{out}_nobias"])
        b = bias.detach().cpu().numpy().astype(np.float32)
        g.node("Add", [f"{out}_nobias", g.const(f"{name}.bias", b)], [out])
    return weight.shape[1]


def _adaptive_nodes(g: Graph, softmax: object, x: str, out: str) -> int:
    """``out``: the log-probabilities of an adaptive softmax over its whole vocabulary
    (``AdaptiveLogSoftmaxWithLoss.log_prob``: a word's head log-probability, or its cluster's
    plus its own within the cluster); its vocabulary size. rnnkit's tied heads (the embedding's
    first rows, or every cluster's) are read as the linear layers they compute."""
    shortlist = softmax.shortlist_size
    if hasattr(softmax, "weights"):  # every cluster tied to the embedding (rnnkit's LM head)
        head_w, rows = softmax.weights()
        head = SimpleNamespace(weight=head_w, bias=softmax.bias)
        tails = [[SimpleNamespace(weight=r, bias=None)] for r in rows]
    else:  # a linear head, or one tied to the embedding's first rows (its weight property)
        head = softmax.head
        tails = [list(tail) for tail in softmax.tail]  # Sequential(projection, scores)
    _linear_nodes(g, head, x, "head_logits", "adaptive.head")
    g.node("LogSoftmax", ["head_logits"], ["head_lp"], axis=-1)
    parts = ["head_words_lp"]
    axes = g.const("adaptive.last_axis", np.array([-1], dtype=np.int64))
    g.node("Slice", ["head_lp", g.const("adaptive.zero", np.array([0], dtype=np.int64)),
                     g.const("adaptive.shortlist", np.array([shortlist], dtype=np.int64)), axes],
           ["head_words_lp"])  # fmt: skip
    for i, modules in enumerate(tails):
        x_i = x
        for j, module in enumerate(modules):
            _linear_nodes(g, module, x_i, f"tail{i}_{j}", f"adaptive.tail{i}.{j}")
            x_i = f"tail{i}_{j}"
        g.node("LogSoftmax", [x_i], [f"tail{i}_within"], axis=-1)
        k = shortlist + i
        g.node("Slice", ["head_lp", g.const(f"adaptive.cluster{i}", np.array([k], np.int64)),
                         g.const(f"adaptive.cluster{i}_end", np.array([k + 1], np.int64)), axes],
               [f"tail{i}_head_lp"])  # fmt: skip
        g.node("Add", [f"tail{i}_within", f"tail{i}_head_lp"], [f"tail{i}_lp"])
        parts.append(f"tail{i}_lp")
    g.node("Concat", parts, [out], axis=-1)
    return softmax.n_classes


def _finish(g: Graph, inputs: list, outputs: list, path: object, opset: int, what: str):  # noqa: ANN202
    onnx = _onnx()
    graph = onnx.helper.make_graph(g.nodes, f"rnnkit {what}", inputs, outputs, g.initializers)
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="rnnkit"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
