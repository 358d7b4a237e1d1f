"""The encoder-decoder of rnnkit layers (Sutskever et al. 2014).

Encoder: embedding -> (bi)directional layers of the task's cell over the padded source
(``lengths=``). Decoder: embedding -> layers of the same cell -> linear softmax, started from the
encoder's final state according to ``handoff`` -- the question of the Gluon tutorial note on
passing ``h`` versus ``h`` and ``c``:

- ``hc``: the whole state (LSTM ``h_n`` and ``c_n``, sLSTM ``h, c, n, m``; for GRU, minGRU,
  minLSTM and IndRNN ``h`` is the whole state);
- ``h``: ``h_n`` only, the decoder's other states starting from zeros;
- ``none``: zeros (then only attention carries the source).

``attention``: ``luong`` (Luong et al. 2015, global attention with the "general" score
``h_t^T W_a m_s`` on the decoder output, ``tilde h_t = tanh(W_c [c_t; h_t])``) or ``bahdanau``
(Bahdanau et al. 2015, additive score ``v^T tanh(W_1 s_{t-1} + W_2 m_s)`` from the previous
decoder state, the context fed to the decoder with the next token), with padded source positions
masked. A bidirectional encoder's two directions are joined by a linear bridge (tanh for ``h``)
for the states a linear map keeps meaningful (``StateSpec.mixable``: ``h``, the LSTM's ``c``),
and by their mean for the others (the sLSTM's ``c, n, m``, which its stabiliser scales together).
``scheduled_sampling`` p feeds the model's own previous argmax instead of the reference token with
probability p per step and example (Bengio et al. 2015).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...decode import LayerStepper
from ...registry import StateSpec
from ..cells import recurrent_layer
from .config import Seq2SeqConfig
from .data import PAD_ID


class Seq2Seq(nn.Module):
    """Encoder-decoder. ``forward(src (S, N), src_len (N,), tgt_in (T, N)) -> logits (T, N, V)``
    with teacher forcing; :meth:`start` and :meth:`step` decode one token at a time.

    Decoder state: a dict of tensors whose batch dimension is 1 -- ``rnn`` (the layer's state,
    ``(L, N, H)`` or a tuple of them in the cell's state order) and, with Bahdanau attention,
    ``top`` ``(1, N, H)`` (the last decoder output).
    """

    def __init__(self, cfg: Seq2SeqConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        h, dirs = cfg.hidden_size, 2 if cfg.bidirectional else 1
        self.states = cfg.spec.states  # h first, then the cell's others (LSTM c; sLSTM c, n, m)
        self.embed = nn.Embedding(vocab_size, cfg.embed_size, padding_idx=PAD_ID)
        drop = cfg.dropout if cfg.num_layers > 1 else 0.0
        self.encoder = recurrent_layer(cfg.cell, cfg.embed_size, h, num_layers=cfg.num_layers,
                                       dropout=drop, bidirectional=cfg.bidirectional)  # fmt: skip
        self.mem_size = dirs * h
        extra = self.mem_size if cfg.attention == "bahdanau" else 0
        self.decoder = recurrent_layer(cfg.cell, cfg.embed_size + extra, h,
                                       num_layers=cfg.num_layers, dropout=drop)  # fmt: skip
        for s in self.states:  # bridge_h, and bridge_c for the LSTM
            bridged = cfg.bidirectional and s.mixable
            setattr(self, f"bridge_{s.name}", nn.Linear(dirs * h, h) if bridged else None)
        if cfg.attention == "luong":
            self.w_a = nn.Linear(h, self.mem_size, bias=False)
        elif cfg.attention == "bahdanau":
            self.w_1, self.w_2 = nn.Linear(h, h, bias=False), nn.Linear(self.mem_size, h)
            self.v = nn.Linear(h, 1, bias=False)
        self.combine = nn.Linear(self.mem_size + h, h) if cfg.attention != "none" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(h, vocab_size)
        self._stepper: LayerStepper | None = None

    def train(self, mode: bool = True) -> Seq2Seq:
        self._stepper = None  # weights may change while training
        return super().train(mode)

    # ---- encoder and handoff
    def encode(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """``(memory (S, N, D*H), mask (S, N) True at real tokens, initial decoder state)``."""
        memory, state = self.encoder(self.drop(self.embed(src)), lengths=src_len)
        mask = torch.arange(src.shape[0], device=src.device)[:, None] < src_len.to(src.device)
        state = state if isinstance(state, tuple) else (state,)
        joined = [self._join(t, s, torch.tanh if k == 0 else None)
                  for k, (t, s) in enumerate(zip(state, self.states))]  # fmt: skip
        if self.cfg.handoff == "none":
            joined[0] = torch.zeros_like(joined[0])
        if self.cfg.handoff != "hc":
            joined[1:] = [torch.zeros_like(t) for t in joined[1:]]
        dec: dict[str, Any] = {"rnn": tuple(joined) if len(joined) > 1 else joined[0]}
        if self.cfg.attention == "bahdanau":
            dec["top"] = joined[0][-1:]
        return memory, mask, dec

    def _join(self, t: Tensor, state: StateSpec, act) -> Tensor:
        """A bidirectional encoder's final ``t (2L, N, H)`` as the decoder's ``(L, N, H)``: its
        bridge over ``[forward | backward]``, or the directions' mean for a state without one."""
        if not self.cfg.bidirectional:
            return t
        layers, n = self.cfg.num_layers, t.shape[1]
        pair = t.view(layers, 2, n, -1)
        bridge = getattr(self, f"bridge_{state.name}")
        if bridge is None:
            return pair.mean(1)
        out = bridge(pair.permute(0, 2, 1, 3).reshape(layers, n, -1))  # fwd | bwd
        return act(out) if act is not None else out

    # ---- attention
    def attend(self, query: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``query (T, N, H)`` over ``memory (S, N, M)`` ->
        ``(context (T, N, M), weights (T, N, S))``."""
        if self.cfg.attention == "luong":
            keys = self.w_a(query)  # (T, N, M)
            scores = torch.einsum("tnm,snm->tns", keys, memory)
        else:
            proj = self.w_1(query).unsqueeze(2) + self.w_2(memory).permute(1, 0, 2).unsqueeze(0)
            scores = self.v(torch.tanh(proj)).squeeze(-1)  # (T, N, S)
        scores = scores.masked_fill(~mask.T.unsqueeze(0), float("-inf"))
        weights = scores.softmax(-1)
        return torch.einsum("tns,snm->tnm", weights, memory), weights

    def _logits(self, out: Tensor, context: Tensor | None) -> Tensor:
        if context is not None:
            out = torch.tanh(self.combine(torch.cat([context, out], -1)))
        return self.out(self.drop(out))

    # ---- teacher forcing
    def forward(
        self, src: Tensor, src_len: Tensor, tgt_in: Tensor, sampling: float = 0.0
    ) -> Tensor:
        memory, mask, state = self.encode(src, src_len)
        if self.cfg.attention != "bahdanau" and sampling == 0.0:  # the whole target at once
            out, _ = self.decoder(self.drop(self.embed(tgt_in)), state["rnn"])
            context = self.attend(out, memory, mask)[0] if self.cfg.attention == "luong" else None
            return self._logits(out, context)
        logits, token = [], tgt_in[0]
        for t in range(tgt_in.shape[0]):
            if t > 0:
                token = tgt_in[t]
                if sampling > 0.0:
                    own = logits[-1].argmax(-1).detach()
                    token = torch.where(
                        torch.rand_like(token, dtype=torch.float) < sampling, own, token
                    )
            step_logits, state, _ = self._step(token, state, memory, mask, stepper=None)
            logits.append(step_logits)
        return torch.stack(logits)

    # ---- one step
    def _step(
        self, token: Tensor, state: dict[str, Any], memory: Tensor, mask: Tensor,
        stepper: LayerStepper | None,
    ) -> tuple[Tensor, dict[str, Any], Tensor | None]:  # fmt: skip
        x = self.drop(self.embed(token))  # (N, E)
        if self.cfg.attention == "bahdanau":
            context, weights = self.attend(state["top"], memory, mask)
            x = torch.cat([x, context[0]], -1)
        if stepper is not None:
            out, rnn = stepper.step(x, state["rnn"])
        else:
            out, rnn = self.decoder(x.unsqueeze(0), state["rnn"])
            out = out[0]
        new: dict[str, Any] = {"rnn": rnn}
        if self.cfg.attention == "luong":
            context, weights = self.attend(out.unsqueeze(0), memory, mask)
        if self.cfg.attention == "bahdanau":
            new["top"] = out.unsqueeze(0)
        if self.cfg.attention == "none":
            return self._logits(out, None), new, None
        return self._logits(out, context[0]), new, weights[0]

    @torch.no_grad()
    def step(self, token: Tensor, state: dict[str, Any], memory: Tensor, mask: Tensor):
        """One decoding step (evaluation semantics): ``(logits (N, V), state, weights (N, S) or
        None)``."""
        if self._stepper is None:
            self._stepper = LayerStepper(self.decoder)
        return self._step(token, state, memory, mask, self._stepper)
