"""The seq2seq model: handoff and attention variants, teacher forcing against the decoding paths."""

from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.seq2seq import BOS_ID, EOS_ID, PAD_ID, Seq2Seq, Seq2SeqConfig, Seq2SeqTask

TINY = dict(dataset="reverse", num_train=2000, num_valid=200, num_test=200, min_len=2, max_len=5,
            embed_size=16, hidden_size=32, batch_size=32)  # fmt: skip


def make(**kw) -> tuple[Seq2SeqTask, Seq2Seq]:
    task = Seq2SeqTask(Seq2SeqConfig(**{**TINY, "num_train": 64, **kw}))
    torch.manual_seed(0)
    return task, task.build_model().eval()


@pytest.mark.parametrize(
    "attention,cell",
    [(a, c) for a in ("none", "luong", "bahdanau") for c in ("lstm", "gru")]
    + [("luong", c) for c in ("mingru", "minlstm", "indrnn", "slstm")]
    + [("bahdanau", "slstm")],
)
def test_teacher_forcing_equals_stepping(attention, cell):
    task, model = make(attention=attention, cell=cell, num_layers=2)
    src, src_len, tgt_in, _ = task.batches("valid", 0)[0]
    with torch.no_grad():
        full = model(src, src_len, tgt_in)  # (T, N, V)
        memory, mask, state = model.encode(src, src_len)
        steps = []
        for t in range(tgt_in.shape[0]):
            logits, state, _ = model.step(tgt_in[t], state, memory, mask)
            steps.append(logits)
    torch.testing.assert_close(full, torch.stack(steps), atol=1e-5, rtol=1e-5)


def test_a_bidirectional_slstm_hands_on_h_bridged_and_c_n_m_as_the_directions_mean():
    src, src_len = torch.tensor([[5, 6], [7, 8], [9, PAD_ID]]), torch.tensor([3, 2])
    for handoff in ("hc", "h"):
        _, model = make(cell="slstm", handoff=handoff, num_layers=2)
        assert model.bridge_h is not None and model.bridge_c is None and model.bridge_n is None
        with torch.no_grad():
            _, final = model.encoder(model.embed(src), lengths=src_len)
            _, _, state = model.encode(src, src_len)
        h0, c0, n0, m0 = state["rnn"]
        assert h0.shape == (2, 2, 32)
        for got, enc in zip((c0, n0, m0), final[1:]):
            want = enc.view(2, 2, 2, 32).mean(1) if handoff == "hc" else torch.zeros_like(got)
            torch.testing.assert_close(got, want)
        if handoff == "hc":
            assert (n0 > 0).all()  # the normaliser stays positive


def test_handoff_passes_h_or_h_and_c():
    src = torch.tensor([[5, 6], [7, 8], [9, PAD_ID]])
    src_len = torch.tensor([3, 2])
    for handoff in ("h", "hc"):
        _, model = make(handoff=handoff, bidirectional=False)
        with torch.no_grad():
            _, (h, c) = model.encoder(model.embed(src), lengths=src_len)
            _, _, state = model.encode(src, src_len)
        h0, c0 = state["rnn"]
        torch.testing.assert_close(h0, h)
        torch.testing.assert_close(c0, c if handoff == "hc" else torch.zeros_like(c))
    _, model = make(handoff="none", attention="luong")
    _, _, state = model.encode(src, src_len)
    assert not state["rnn"][0].any() and not state["rnn"][1].any()
    with pytest.raises(ValueError, match="leaves the decoder blind"):
        Seq2SeqConfig(handoff="none", attention="none")


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_padding_does_not_change_a_short_source(attention):
    task, model = make(attention=attention)
    short, long = [4, 5], [6, 7, 8, 9, 10]
    tgt_in = torch.tensor([[BOS_ID], [6], [7]])
    with torch.no_grad():
        alone = model(torch.tensor(short).view(-1, 1), torch.tensor([2]), tgt_in)
        src = torch.tensor([short + [PAD_ID] * 3, long]).T
        batch = model(src, torch.tensor([2, 5]), tgt_in.repeat(1, 2))
    torch.testing.assert_close(batch[:, 0], alone[:, 0], atol=1e-5, rtol=1e-5)


def test_scheduled_sampling_one_feeds_back_the_greedy_tokens():
    task, model = make(attention="luong")
    src, src_len, tgt_in, _ = task.batches("valid", 0)[0]
    sources = [task.sets["valid"].pairs[i][0] for i in task.batches("valid", 0).index_batches[0]]
    with torch.no_grad():
        own = model(src, src_len, tgt_in, sampling=1.0).argmax(-1).T  # (N, T)
    greedy = task.translate(model, sources)
    for row, text in zip(own.tolist(), greedy):
        ids = task.vocab.encode(list(text))
        assert row[: len(ids)] == ids  # the same tokens up to the greedy output's end
        if len(ids) < len(row):
            assert row[len(ids)] == EOS_ID


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_beam_search_decodes_each_example_as_if_alone(attention):
    task, model = make(attention=attention)
    sources = [s for s, _ in task.sets["valid"].pairs[:6]]
    batched = task.translate(model, sources, beam_size=3)
    assert batched == [task.translate(model, [s], beam_size=3)[0] for s in sources]
