"""The language model: step-wise decoding, tying, sampling."""

from __future__ import annotations

import pytest
import torch

from rnnkit.decode import LayerStepper, sample_logits
from rnnkit.tasks.lm import LMConfig, RNNLanguageModel


@pytest.mark.parametrize(
    "cell,kw",
    [
        ("lstm", {}),
        ("gru", dict(layer_norm=True)),
        ("rnn", dict(zoneout=0.1)),
        ("lstm", dict(layer_norm=True, peephole=True, zoneout=0.1, num_layers=2)),
    ],
)
def test_step_decoding_equals_the_full_forward(cell, kw):
    """Feeding tokens one by one through model.step gives the logits of one full forward pass."""
    cfg = LMConfig(cell=cell, embed_size=8, hidden_size=12, **kw)
    model = RNNLanguageModel(cfg, vocab_size=11).double().eval()
    tokens = torch.randint(0, 11, (6, 3))
    logits, _ = model(tokens)
    state = None
    with torch.no_grad():
        _, state = model(tokens[:1])
        for t in range(1, 6):
            step_logits, state = model.step(tokens[t], state)
            if t < 5:
                torch.testing.assert_close(step_logits, logits[t], atol=1e-10, rtol=0)


def test_tied_weights_share_storage_and_project_when_sizes_differ():
    model = RNNLanguageModel(LMConfig(embed_size=8, hidden_size=16, tie_weights=True), 20)
    assert model.head.weight is model.embed.weight
    assert model.rnn.proj_size == 8
    logits, _ = model(torch.randint(0, 20, (4, 2)))
    assert logits.shape == (4, 2, 20)
    with pytest.raises(ValueError, match="tie_weights needs embed_size == hidden_size"):
        RNNLanguageModel(LMConfig(cell="gru", embed_size=8, hidden_size=16, tie_weights=True), 20)


def test_layer_stepper_rejects_bidirectional():
    with pytest.raises(ValueError, match="unidirectional"):
        LayerStepper(torch.nn.LSTM(3, 4, bidirectional=True))


def test_sample_logits_modes():
    logits = torch.tensor([[0.0, 5.0, 1.0, -2.0]])
    assert sample_logits(logits, temperature=0).item() == 1
    gen = torch.Generator().manual_seed(0)
    draws = {sample_logits(logits, 1.0, top_k=2, generator=gen).item() for _ in range(200)}
    assert draws <= {1, 2} and draws == {1, 2}
    # top_p: p(1) = 0.97 > 0.9, so only token 1 survives
    draws = {sample_logits(logits, 1.0, top_p=0.9, generator=gen).item() for _ in range(50)}
    assert draws == {1}
    with pytest.raises(ValueError, match="top_p"):
        sample_logits(logits, 1.0, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, -1.0)


def test_adaptive_softmax_scores_the_same_distribution_it_samples_from():
    cfg = LMConfig(embed_size=8, hidden_size=8, softmax="adaptive", adaptive_cutoffs=(5, 12))
    model = RNNLanguageModel(cfg, vocab_size=30).double().eval()
    tokens, targets = torch.randint(0, 30, (6, 3)), torch.randint(0, 30, (6, 3))
    logits, _ = model(tokens)
    assert logits.shape == (6, 3, 30)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(6, 3, dtype=torch.double))
    scored, _ = model(tokens, targets=targets)
    torch.testing.assert_close(scored, logits.gather(-1, targets[..., None])[..., 0])
    _, state = model(tokens[:1])
    step_logits, _ = model.step(tokens[1], state)
    torch.testing.assert_close(step_logits, logits[1])


def test_full_softmax_targets_are_the_log_softmax_at_the_targets():
    model = RNNLanguageModel(LMConfig(embed_size=8, hidden_size=8, tie_weights=True), 20).double()
    model.eval()
    tokens, targets = torch.randint(0, 20, (5, 2)), torch.randint(0, 20, (5, 2))
    logits, _ = model(tokens)
    scored, _ = model(tokens, targets=targets)
    expected = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    torch.testing.assert_close(scored, expected, rtol=0, atol=1e-12)


def test_a_quantized_head_scores_targets_through_its_own_forward():
    from rnnkit.quantization import quantize_dynamic

    model = quantize_dynamic(RNNLanguageModel(LMConfig(embed_size=8, hidden_size=8), 20).eval())
    assert type(model.head) is not torch.nn.Linear
    tokens, targets = torch.randint(0, 20, (5, 2)), torch.randint(0, 20, (5, 2))
    logits, _ = model(tokens)
    scored, _ = model(tokens, targets=targets)
    expected = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    torch.testing.assert_close(scored, expected, rtol=0, atol=1e-5)


def test_tied_adaptive_softmax_shares_the_frequent_words_embedding_rows():
    cfg = LMConfig(embed_size=8, hidden_size=8, softmax="adaptive", adaptive_cutoffs=(5, 12),
                   tie_weights=True)  # fmt: skip
    model = RNNLanguageModel(cfg, vocab_size=30).double().eval()
    assert model.head.head.embedding is model.embed.weight
    features = torch.randn(4, 8, dtype=torch.double)
    head = model.head.head(features)  # (4, 5 words + 2 clusters)
    expected = features @ model.embed.weight[:5].T + model.head.head.bias[:5]
    torch.testing.assert_close(head[:, :5], expected)
    torch.testing.assert_close(model.log_probs(features).exp().sum(-1), torch.ones(4).double())
    tokens, targets = torch.randint(0, 30, (6, 3)), torch.randint(0, 30, (6, 3))
    scored, _ = model(tokens, targets=targets)
    scored.sum().backward()
    assert model.embed.weight.grad[:5].abs().sum() > 0  # the output side reaches the embedding
    names = dict(model.named_parameters())
    assert "head.head.embedding" not in names  # one parameter, listed once


def test_adaptive_softmax_with_div_1_ties_every_cluster_to_the_embedding():
    cfg = LMConfig(embed_size=8, hidden_size=8, softmax="adaptive", adaptive_cutoffs=(5, 12),
                   adaptive_div=1.0, tie_weights=True)  # fmt: skip
    model = RNNLanguageModel(cfg, vocab_size=30).double().eval()
    own = {n for n, _ in model.head.named_parameters()}
    assert own == {"embedding", "cluster_weight", "bias"}  # no tail weights
    assert model.head.embedding is model.embed.weight
    features = torch.randn(4, 8, dtype=torch.double)
    log_p = model.log_probs(features)  # (4, 30)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(4).double())
    head_w = torch.cat([model.embed.weight[:5], model.head.cluster_weight])
    head = torch.log_softmax(features @ head_w.T + model.head.bias, -1)  # 5 words + 2 clusters
    for i, (lo, hi) in enumerate([(5, 12), (12, 30)]):  # p(w) = p(cluster) p(w | cluster)
        within = torch.log_softmax(features @ model.embed.weight[lo:hi].T, -1)
        torch.testing.assert_close(log_p[:, lo:hi], head[:, 5 + i, None] + within)
    tokens = torch.randint(0, 5, (6, 3))  # frequent words in, so the input side stays at 0..4
    targets = torch.full((6, 3), 20)  # a word of the second cluster
    scored, _ = model(tokens, targets=targets)
    scored.sum().backward()
    grad = model.embed.weight.grad
    assert grad[12:30].abs().sum() > 0 and grad[5:12].abs().sum() == 0  # its cluster's rows
    targets = torch.tensor([0, 4, 5, 11, 12, 29, 3])  # both ends of every cluster
    x = torch.randn(7, 8, dtype=torch.double)
    scored = model.head(x, targets).output
    torch.testing.assert_close(scored, model.log_probs(x).gather(1, targets[:, None])[:, 0])
    params = {k: v.detach().clone().requires_grad_() for k, v in model.head.named_parameters()}

    def scores(v, embedding, cluster_weight, bias):
        weights = {"embedding": embedding, "cluster_weight": cluster_weight, "bias": bias}
        return torch.func.functional_call(model.head, weights, (v, targets)).output

    inputs = (x.clone().requires_grad_(), *params.values())
    assert torch.autograd.gradcheck(scores, inputs)  # against numeric gradients, float64
    with pytest.raises(ValueError, match=r"targets must be word ids in \[0, 30\), got \[0, 30\]"):
        model.head(x[:2], torch.tensor([0, 30]))


def test_tied_adaptive_softmax_pads_its_cluster_gemms_without_changing_a_number(monkeypatch):
    from rnnkit.tasks.lm import softmax

    cfg = LMConfig(embed_size=8, hidden_size=8, softmax="adaptive", adaptive_cutoffs=(5, 12),
                   adaptive_div=1.0, tie_weights=True)  # fmt: skip
    head = RNNLanguageModel(cfg, vocab_size=30).double().head
    x = torch.randn(40, 8, dtype=torch.double)
    x[7] = float("nan")  # NaN stays in its own row, as in torch.nn
    targets = torch.randint(0, 30, (40,))
    targets[7], targets[0] = 20, 3  # the NaN row in the second cluster, row 0 in the shortlist
    rows = []
    linear = softmax.F.linear
    monkeypatch.setattr(softmax.F, "linear", lambda a, w, b=None: rows.append(a.shape[0]) or
                        linear(a, w, b))  # fmt: skip

    def scored(bucket):
        monkeypatch.setattr(softmax, "ROW_BUCKET", bucket)
        rows.clear()
        params = [p.detach().clone().requires_grad_() for p in head.parameters()]
        v = x.clone().requires_grad_()
        out = torch.func.functional_call(head, dict(zip(dict(head.named_parameters()), params)),
                                         (v, targets)).output  # fmt: skip
        out[torch.arange(40) != 7].sum().backward()
        return out, [v.grad, *(p.grad for p in params)], list(rows)

    out, grads, padded_rows = scored(16)
    out1, grads1, rows1 = scored(1)
    assert rows1[1:] == [
        int((targets >= 5).sum() - (targets >= 12).sum()),
        int((targets >= 12).sum()),
    ]
    assert padded_rows[0] == 40 and all(
        r % 16 == 0 and r >= m for r, m in zip(padded_rows[1:], rows1[1:])
    )
    torch.testing.assert_close(out, out1, rtol=0, atol=1e-12, equal_nan=True)
    assert out.isnan().tolist() == [i == 7 for i in range(40)]
    for g, g1 in zip(grads, grads1):
        torch.testing.assert_close(g, g1, rtol=0, atol=1e-12, equal_nan=True)
    assert grads[0][torch.arange(40) != 7].isfinite().all()  # the other rows' gradients stay finite


def test_adaptive_cutoffs_past_the_vocabulary_are_dropped_and_a_tiny_vocabulary_is_full():
    cfg = LMConfig(embed_size=8, hidden_size=8, softmax="adaptive", adaptive_cutoffs=(5, 2000))
    assert RNNLanguageModel(cfg, vocab_size=30).head.cutoffs == [5, 30]
    small = RNNLanguageModel(LMConfig(softmax="adaptive", adaptive_cutoffs=(2000,)), vocab_size=30)
    assert small.softmax == "full" and isinstance(small.head, torch.nn.Linear)  # too few words
    from rnnkit.tasks.lm.softmax import adaptive_softmax

    with pytest.raises(ValueError, match="leave no cluster in a vocabulary of 30 words"):
        adaptive_softmax(8, 30, (2000,), 4.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(softmax="sampled"), "softmax must be one of"),
        (dict(adaptive_cutoffs=(50, 20)), "adaptive_cutoffs must be increasing integers"),
        (dict(word_dropout=1.0), r"word_dropout must be a probability in \[0, 1\)"),
        (dict(output_dropout=-0.1), r"output_dropout must be a probability in \[0, 1\)"),
        (dict(adaptive_div=0.5), r"adaptive_div must be a number in \[1, 64\]"),
    ],
)
def test_bad_output_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LMConfig(**kwargs)


def test_word_dropout_drops_every_occurrence_of_a_word_alike():
    from rnnkit.regularization import embedding_dropout

    torch.manual_seed(0)
    weight = torch.randn(50, 4)
    tokens = torch.arange(50).repeat(8, 1)  # (8, 50): each word 8 times
    out = embedding_dropout(weight, tokens, 0.5)
    kept = (out != 0).all(-1)  # (8, 50)
    assert (kept == kept[:1]).all()  # the same words kept in every row
    assert 10 < int(kept[0].sum()) < 40
    torch.testing.assert_close(out[0, kept[0]], weight[kept[0]] * 2.0)
    assert torch.equal(embedding_dropout(weight, tokens, 0.5, training=False), weight[tokens])


def test_output_dropout_defaults_to_dropout():
    model = RNNLanguageModel(LMConfig(num_layers=2, dropout=0.3), 10)
    assert model.out_drop.p == 0.3
    model = RNNLanguageModel(LMConfig(num_layers=2, dropout=0.3, output_dropout=0.1), 10)
    assert model.out_drop.p == 0.1 and model.rnn.dropout == 0.3


def test_init_range_draws_the_weights_and_leaves_the_layer_options_their_own_init():
    """``init_range`` is uniform on every weight, but the forget-gate bias, layer-norm gains and
    shifts keep what the options set (they used to be drawn in +-init_range as well)."""
    cfg = LMConfig(embed_size=8, hidden_size=8, num_layers=2, init_range=0.05, forget_bias=1.0,
                   layer_norm=True)  # fmt: skip
    rnn = RNNLanguageModel(cfg, vocab_size=30).rnn
    for k in range(2):
        assert getattr(rnn, f"bias_ih_l{k}")[8:16].tolist() == [1.0] * 8
        assert getattr(rnn, f"bias_hh_l{k}")[8:16].tolist() == [0.0] * 8
        weight = getattr(rnn, f"weight_hh_l{k}")
        assert weight.abs().max() <= 0.05 and weight.std() > 0.02  # drawn in +-0.05
    gains = {n: p for n, p in rnn.named_parameters() if n.startswith("layer_norm")}
    assert gains and all(
        (p == (0.0 if n.startswith("layer_norm_c_bias") else 1.0)).all() for n, p in gains.items()
    ), {n: p.flatten()[:2].tolist() for n, p in gains.items()}
