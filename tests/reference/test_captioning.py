"""rnnkit.reference.CaptioningRNN: parameters and init as CS231n, exact loss gradients, greedy
sampling consistent with the teacher-forced scores, and overfitting a small set."""

import numpy as np
import pytest

from rnnkit.reference import (
    CaptioningRNN,
    eval_numerical_gradient,
    lstm_forward,
    rel_error,
    rnn_forward,
)

STEPS, LR = 300, 1e-2  # full-batch Adam for the overfit check
PARAM_NAMES = {"W_proj", "b_proj", "W_embed", "Wx", "Wh", "b", "W_vocab", "b_vocab"}


def vocabulary(n_words: int) -> dict[str, int]:
    words = ["<NULL>", "<START>", "<END>", *(f"w{i}" for i in range(n_words))]
    return {w: i for i, w in enumerate(words)}


def random_captions(rng, word_to_idx, n: int, length: int) -> np.ndarray:
    """``<START> w ... w <END> <NULL> ...`` with 2..length-2 random words."""
    V = len(word_to_idx)
    captions = np.zeros((n, length), dtype=np.int64)
    for row in captions:
        k = rng.integers(2, length - 1)
        row[0] = word_to_idx["<START>"]
        row[1 : k + 1] = rng.integers(3, V, size=k)
        row[k + 1] = word_to_idx["<END>"]
    return captions


def scores_teacher_forced(model, features, captions_in):
    p = model.params
    h0 = features @ p["W_proj"] + p["b_proj"]
    x = p["W_embed"][captions_in]
    forward = rnn_forward if model.cell_type == "rnn" else lstm_forward
    h, _ = forward(x, h0, p["Wx"], p["Wh"], p["b"])
    return h @ p["W_vocab"] + p["b_vocab"]


@pytest.mark.parametrize("cell_type,k", [("rnn", 1), ("lstm", 4)])
def test_params_shapes_dtype_and_course_init(cell_type, k):
    w2i = vocabulary(7)
    np.random.seed(0)  # noqa: NPY002 (the course's global-state init)
    model = CaptioningRNN(w2i, input_dim=400, wordvec_dim=300, hidden_dim=200, cell_type=cell_type)
    p = model.params
    assert set(p) == PARAM_NAMES
    assert {v.dtype for v in p.values()} == {np.dtype(np.float32)}
    V = len(w2i)
    shapes = dict(W_proj=(400, 200), b_proj=(200,), W_embed=(V, 300), Wx=(300, k * 200),
                  Wh=(200, k * 200), b=(k * 200,), W_vocab=(200, V), b_vocab=(V,))  # fmt: skip
    assert {n: v.shape for n, v in p.items()} == shapes
    for bias in ("b_proj", "b", "b_vocab"):
        np.testing.assert_array_equal(p[bias], 0.0)
    # randn / sqrt(fan_in) and randn / 100 for the embedding (tolerances ~6 standard errors)
    assert p["W_proj"].std() == pytest.approx(1 / np.sqrt(400), rel=0.02)
    assert p["Wx"].std() == pytest.approx(1 / np.sqrt(300), rel=0.02)
    assert p["Wh"].std() == pytest.approx(1 / np.sqrt(200), rel=0.03)
    assert p["W_embed"].std() == pytest.approx(0.01, rel=0.1)
    assert (model._null, model._start, model._end) == (0, 1, 2)
    np.random.seed(0)  # noqa: NPY002 (the course's global-state init)
    again = CaptioningRNN(w2i, input_dim=400, wordvec_dim=300, hidden_dim=200, cell_type=cell_type)
    np.testing.assert_array_equal(again.params["Wh"], p["Wh"])  # np.random.seed reproduces


def test_float32_model_trains_in_float32():
    rng = np.random.default_rng(4)
    w2i = vocabulary(5)
    model = CaptioningRNN(w2i, 6, 5, 4, cell_type="lstm", rng=rng)
    features = rng.standard_normal((3, 6)).astype(np.float32)
    loss, grads = model.loss(features, random_captions(rng, w2i, 3, 6))
    assert np.isfinite(loss)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="cell_type: expected one of"):
        CaptioningRNN(vocabulary(3), cell_type="gru")
    with pytest.raises(ValueError, match="'<NULL>'"):
        CaptioningRNN({"a": 0})
    model = CaptioningRNN({"<NULL>": 0, "a": 1}, input_dim=4, wordvec_dim=3, hidden_dim=5)
    with pytest.raises(ValueError, match="'<START>'"):
        model.sample(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"captions: expected \(N, T\) with N = 2"):
        model.loss(np.zeros((2, 4)), np.zeros((3, 5), dtype=int))


def test_uniform_scores_give_log_v_per_unmasked_target():
    rng = np.random.default_rng(0)
    w2i = vocabulary(9)
    model = CaptioningRNN(w2i, input_dim=6, wordvec_dim=5, hidden_dim=4, dtype=np.float64, rng=rng)
    model.params["W_vocab"][:] = 0.0
    captions = random_captions(rng, w2i, 5, 8)
    loss, grads = model.loss(rng.standard_normal((5, 6)), captions)
    n_targets = np.count_nonzero(captions[:, 1:] != model._null)
    assert loss == pytest.approx(np.log(len(w2i)) * n_targets / 5, rel=1e-12)
    # only W_vocab and b_vocab can move away from uniform scores; nothing flows further back
    np.testing.assert_array_equal(grads["Wx"], 0.0)
    assert np.abs(grads["W_vocab"]).max() > 1e-3


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_loss_gradients_match_numeric(cell_type):
    rng = np.random.default_rng(1)
    w2i = vocabulary(4)
    N, D, W, H, T = 3, 4, 5, 6, 5
    model = CaptioningRNN(w2i, D, W, H, cell_type=cell_type, dtype=np.float64, rng=rng)
    for v in model.params.values():  # non-zero biases and a wider embedding, to exercise them
        v += 0.3 * rng.standard_normal(v.shape)
    features = rng.standard_normal((N, D))
    captions = random_captions(rng, w2i, N, T)
    loss, grads = model.loss(features, captions)
    assert set(grads) == PARAM_NAMES
    params64 = model.params
    model.params = {k: v.astype(np.longdouble) for k, v in params64.items()}  # see test_layers
    for name in sorted(PARAM_NAMES):
        numeric = eval_numerical_gradient(
            lambda _: model.loss(features, captions)[0], model.params[name], verbose=False, h=1e-6
        )
        assert rel_error(numeric.astype(np.float64), grads[name]) < 1e-7, name
    unused = sorted(set(range(len(w2i))) - set(captions[:, :-1].ravel()))
    np.testing.assert_array_equal(grads["W_embed"][unused], 0.0)  # words never fed in


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_sample_is_greedy_over_the_teacher_forced_scores(cell_type):
    rng = np.random.default_rng(2)
    w2i = vocabulary(6)
    model = CaptioningRNN(w2i, 4, 5, 8, cell_type=cell_type, dtype=np.float64, rng=rng)
    for v in model.params.values():
        v += rng.standard_normal(v.shape)
    model.params["W_vocab"] *= 2.0  # sharper scores and a likelier <END>: it comes at varied steps
    model.params["b_vocab"][model._end] += 1.5
    features = rng.standard_normal((20, 4))
    L = 12
    sampled = model.sample(features, max_length=L)
    assert sampled.shape == (20, L) and sampled.dtype == np.int32
    inputs = np.concatenate([np.full((20, 1), model._start), sampled[:, :-1]], axis=1)
    best = scores_teacher_forced(model, features, inputs).argmax(axis=2)
    stops = set()
    for row, greedy in zip(sampled, best):
        ends = np.flatnonzero(row == model._end)
        stop = ends[0] + 1 if ends.size else L
        np.testing.assert_array_equal(row[:stop], greedy[:stop])
        np.testing.assert_array_equal(row[stop:], model._null)  # <NULL> after <END>
        stops.add(stop)
    assert len(stops) >= 3  # the check covered rows ending at different steps


def adam_fit(model, features, captions, steps: int, lr: float) -> float:
    """Full-batch Adam (Kingma & Ba 2015, default betas); returns the last loss."""
    m = {k: np.zeros_like(v) for k, v in model.params.items()}
    v = {k: np.zeros_like(w) for k, w in model.params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        loss, grads = model.loss(features, captions)
        for k, g in grads.items():
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g**2
            m_hat, v_hat = m[k] / (1 - beta1**t), v[k] / (1 - beta2**t)
            model.params[k] -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return model.loss(features, captions)[0]


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_overfits_50_captions_and_samples_them_back(cell_type):
    rng = np.random.default_rng(3)
    w2i = vocabulary(20)
    features = rng.standard_normal((50, 16))
    captions = random_captions(rng, w2i, 50, 10)
    model = CaptioningRNN(w2i, 16, 16, 48, cell_type=cell_type, dtype=np.float64, rng=rng)
    initial = model.loss(features, captions)[0]
    final = adam_fit(model, features, captions, steps=STEPS, lr=LR)
    assert initial > 10 and final < 0.1
    sampled = model.sample(features, max_length=9)
    np.testing.assert_array_equal(sampled, captions[:, 1:])  # every word, <END> and padding
