"""ONNX export checked with onnxruntime against rnnkit, on batch sizes and lengths other than the
example's, with and without sequence lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit

pytest.importorskip("onnx", reason="onnx not installed (pip install 'rnnkit[onnx]')")
ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime not installed (pip install 'rnnkit[onnx]')"
)

from rnnkit.interop.legacy import load_checkpoint  # noqa: E402
from rnnkit.interop.onnx import lm_to_onnx, to_onnx  # noqa: E402

D, H = 3, 5
LAYERS = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "RNN": rnnkit.RNN}


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def make(kind, seed=0, **kw):
    torch.manual_seed(seed)
    return LAYERS[kind](D, H, **kw).eval()


def compare(module, model, batch, steps, lengths=None, state=False):
    batch_first = module.batch_first
    x = torch.randn(batch, steps, D) if batch_first else torch.randn(steps, batch, D)
    feeds = {"input": x.numpy()}
    hx = None
    if lengths is not None:
        feeds["lengths"] = np.asarray(lengths, np.int64)
    if state:
        shape = (module.num_layers * (2 if module.bidirectional else 1), batch, H)
        h0, c0 = torch.randn(shape), torch.randn(shape)
        feeds["h0"] = h0.numpy()
        hx = h0
        if module.mode == "LSTM":
            feeds["c0"], hx = c0.numpy(), (h0, c0)
    with torch.no_grad():
        ref, ref_state = module(x, hx, lengths=None if lengths is None else torch.tensor(lengths))
    got = session(model).run(None, feeds)
    ref_states = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    np.testing.assert_allclose(got[0], ref.numpy(), rtol=0, atol=1e-5)
    for g, r in zip(got[1:], ref_states):
        np.testing.assert_allclose(g, r.numpy(), rtol=0, atol=1e-5)
    return got[0]


CONFIGS = [
    ("LSTM", {}),
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"batch_first": True, "num_layers": 2}),
    ("GRU", {"bidirectional": True}),
    ("GRU", {"num_layers": 3, "batch_first": True}),
    ("RNN", {"nonlinearity": "relu", "bidirectional": True}),
    ("RNN", {"num_layers": 2, "bias": False}),
]


@pytest.mark.parametrize(("kind", "kw"), CONFIGS)
def test_matches_module_on_other_shapes(kind, kw):
    module = make(kind, **kw)
    example = torch.randn(4, 2, D)
    compare(module, to_onnx(module, example), batch=3, steps=7)
    compare(module, to_onnx(module, example), batch=1, steps=2)


@pytest.mark.parametrize(("kind", "kw"), CONFIGS[:2] + CONFIGS[3:4] + CONFIGS[5:6])
def test_lengths_and_initial_state(kind, kw):
    module = make(kind, seed=1, **kw)
    model = to_onnx(module, torch.randn(4, 2, D), lengths=True, initial_state=True)
    y = compare(module, model, batch=4, steps=6, lengths=[6, 1, 3, 5], state=True)
    time_major = y if not module.batch_first else y.transpose(1, 0, 2)
    assert np.all(time_major[3:, 2] == 0) and np.all(time_major[1:, 1] == 0)  # padded steps
    compare(module, model, batch=2, steps=3, lengths=[3, 3], state=True)


def test_peepholes_use_onnx_p():
    module = make("LSTM", seed=2, peephole=True, bidirectional=True)
    model = to_onnx(module, torch.randn(3, 1, D), lengths=True)
    assert any(len(n.input) == 8 and n.input[7] for n in model.graph.node if n.op_type == "LSTM")
    compare(module, model, batch=3, steps=5, lengths=[5, 2, 4])


def test_saved_file_loads_back_as_checkpoint(tmp_path):
    module = make("GRU", seed=3, num_layers=2)
    to_onnx(module, None, tmp_path / "gru.onnx")
    params = load_checkpoint(tmp_path / "gru.onnx")
    other = make("GRU", seed=4, num_layers=2)
    from rnnkit.interop import load_gru_weights

    load_gru_weights(other, params, "onnx")
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), other.parameters()))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"proj_size": 2}, "proj_size=2"),
        ({"layer_norm": True}, "layer_norm_c_bias_l0"),
        ({"zoneout": 0.1}, "zoneout"),
    ],
)
def test_variants_without_an_onnx_operator(kw, match):
    with pytest.raises(NotImplementedError, match=match):
        to_onnx(make("LSTM", **kw), torch.randn(2, 1, D))


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM, rnnkit.IndRNN, rnnkit.SLSTM])
def test_cells_without_a_standard_operator_say_which_cells_export(cls):
    message = "has no standard ONNX operator: ONNX export serves GRU, LSTM, RNN layers"
    layer = cls(D, 4)
    with pytest.raises(NotImplementedError, match=f"{layer.spec.title} {message}"):
        to_onnx(layer, torch.randn(2, 1, D))
    with pytest.raises(NotImplementedError, match=message):
        lm_to_onnx(torch.nn.Embedding(5, D), layer, torch.nn.Linear(4, 5))


def test_example_input_is_checked():
    with pytest.raises(ValueError, match="example_input has 4 features, the module expects 3"):
        to_onnx(make("GRU"), torch.randn(2, 1, 4))


TEXT = "hello world "


class CharLM(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, 8)
        self.rnn = rnnkit.LSTM(8, 16)
        self.decoder = torch.nn.Linear(16, vocab)

    def forward(self, tokens, state=None):
        y, state = self.rnn(self.embedding(tokens), state)
        return self.decoder(y), state


def test_language_model_samples_text_with_onnxruntime_alone():
    """A tiny character model trained on a repeated phrase, exported, then run token by token by
    onnxruntime (states fed back) -- greedy decoding writes the phrase, as torch does."""
    vocab = sorted(set(TEXT))
    ids = torch.tensor([vocab.index(c) for c in TEXT * 2])
    torch.manual_seed(0)
    lm = CharLM(len(vocab))
    opt = torch.optim.Adam(lm.parameters(), lr=0.1)
    x, y = ids[:-1].unsqueeze(1), ids[1:].unsqueeze(1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 16-unit model: extra threads only add contention
    try:
        for _ in range(30):
            opt.zero_grad()
            logits, _ = lm(x)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, len(vocab)), y.view(-1))
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    lm.eval()
    sess = session(lm_to_onnx(lm.embedding, lm.rnn, lm.decoder))
    token, h, c = (
        vocab.index("h"),
        np.zeros((1, 1, 16), np.float32),
        np.zeros((1, 1, 16), np.float32),
    )
    text = "h"
    for _ in range(len(TEXT) * 2 - 1):
        logits, h, c = sess.run(None, {"tokens": np.array([[token]]), "h0": h, "c0": c})
        token = int(logits[0, 0].argmax())
        text += vocab[token]
    assert text == (TEXT * 2)[: len(text)]
    with torch.no_grad():
        ref, _ = lm(ids[:12].unsqueeze(1))
    batch_logits, _, _ = sess.run(
        None, {"tokens": ids[:12, None].numpy(), "h0": h[:, :1] * 0, "c0": c[:, :1] * 0}
    )
    np.testing.assert_allclose(batch_logits, ref.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "options",
    [dict(tie_weights=True, adaptive_div=1.0), dict(tie_weights=True), dict(adaptive_div=2.0)],
)
def test_language_model_with_an_adaptive_softmax_exports_its_log_probabilities(options):
    from rnnkit.tasks.lm import LMConfig, RNNLanguageModel

    cfg = LMConfig(embed_size=8, hidden_size=8, num_layers=2, softmax="adaptive",
                   adaptive_cutoffs=(5, 12), **options)  # fmt: skip
    torch.manual_seed(0)
    model = RNNLanguageModel(cfg, vocab_size=30).eval()
    tokens = torch.randint(0, 30, (6, 3))
    with torch.no_grad():
        want, _ = model(tokens)  # (6, 3, 30) log-probabilities
    sess = session(lm_to_onnx(model.embed, model.rnn, model.head))
    zeros = np.zeros((2, 3, 8), np.float32)
    got = sess.run(["logits"], {"tokens": tokens.numpy(), "h0": zeros, "c0": zeros})[0]
    assert got.shape == (6, 3, 30)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)
