"""Step-wise decoding: a fast single-step runner over a trained layer, and token sampling.

``LayerStepper`` takes a (possibly multi-layer, unidirectional) rnnkit or torch.nn LSTM/GRU/RNN in
eval mode and runs one time step at a time with the step functions of :mod:`rnnkit.functional` (the
same math as the layer), without the per-call overhead of a full sequence layer: weights are gathered
once, each step is one GEMM for the input and one for the recurrence per layer.

``sample_logits`` draws tokens with temperature, top-k and top-p (nucleus, Holtzman et al. 2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import CellParams, gru_step, input_projection, lstm_step, rnn_step, zoneout


def layer_params(layer: nn.RNNBase, index: int) -> CellParams:
    """The forward-direction :class:`CellParams` of layer ``index`` of a torch.nn/rnnkit layer."""
    if hasattr(layer, "cell_params"):
        return layer.cell_params(index, 0)
    sfx = f"_l{index}"
    return CellParams(
        w_ih=getattr(layer, "weight_ih" + sfx),
        w_hh=getattr(layer, "weight_hh" + sfx),
        b_ih=getattr(layer, "bias_ih" + sfx, None) if layer.bias else None,
        b_hh=getattr(layer, "bias_hh" + sfx, None) if layer.bias else None,
        w_hr=getattr(layer, "weight_hr" + sfx, None) if getattr(layer, "proj_size", 0) else None,
    )


class LayerStepper:
    """Run a unidirectional recurrent layer one step at a time (evaluation semantics).

    ``step(x (N, C), state) -> (y (N, R), state)`` with ``state`` in torch.nn's layout
    (``(L, N, R)`` or a tuple with ``c (L, N, H)``), so it can continue from the layer's ``h_n``.
    Zoneout uses its expectation and dropout is off, as in ``layer.eval()``.
    """

    def __init__(self, layer: nn.RNNBase) -> None:
        if layer.bidirectional:
            raise ValueError(
                "step-wise decoding needs a unidirectional layer, got bidirectional=True"
            )
        self.layer = layer
        self.mode = "RNN" if layer.mode.startswith("RNN") else layer.mode
        self.nonlinearity = "relu" if layer.mode == "RNN_RELU" else "tanh"
        variants = getattr(layer, "variants", None)
        self.zoneout_h = variants.zoneout_h if variants else 0.0
        self.zoneout_c = variants.zoneout_c if variants else 0.0
        self.params = [layer_params(layer, k) for k in range(layer.num_layers)]

    @torch.no_grad()
    def step(self, x: Tensor, state: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, object]:
        hs = state[0] if self.mode == "LSTM" else state
        cs = state[1] if self.mode == "LSTM" else None
        new_h, new_c = [], []
        for k, p in enumerate(self.params):
            gx = input_projection(x, p)
            h = hs[k]
            if self.mode == "LSTM":
                h_new, c_new = lstm_step(gx, h, cs[k], p)
                if self.zoneout_c:
                    c_new = zoneout(cs[k], c_new, self.zoneout_c)
                new_c.append(c_new)
            elif self.mode == "GRU":
                h_new = gru_step(gx, h, p)
            else:
                h_new = rnn_step(gx, h, p, self.nonlinearity)
            if self.zoneout_h:
                h_new = zoneout(h, h_new, self.zoneout_h)
            new_h.append(h_new)
            x = h_new
        h_out = torch.stack(new_h)
        return x, ((h_out, torch.stack(new_c)) if self.mode == "LSTM" else h_out)


def sample_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token per row of ``logits (N, V)``; ``temperature == 0`` is greedy (argmax).

    ``top_k`` keeps the k most likely tokens; ``top_p`` the smallest set whose probability reaches p
    (nucleus sampling, Holtzman et al. 2020). Returns ``(N,)`` int64."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum - sorted_logits.softmax(dim=-1) >= top_p  # keep the token crossing p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
