"""Step-wise decoding: a fast single-step runner over a trained layer, and token sampling.

``LayerStepper`` takes a (possibly multi-layer, unidirectional) rnnkit or torch.nn LSTM/GRU/RNN, or
an ``rnnkit.Recurrent`` layer of any registered cell (``rnnkit.MinGRU``, ``rnnkit.SLSTM``, ...), in
eval mode and runs one time step at a time with the cell's step function (:mod:`rnnkit.registry`,
the same math as the layer), without the per-call overhead of a full sequence layer: weights are
gathered once, each step is one GEMM for the input and one for the recurrence per layer.

``sample_logits`` draws tokens with temperature, top-k and top-p (nucleus, Holtzman et al. 2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import CellParams, input_projection, zoneout
from .registry import cell_of


def layer_params(layer: nn.RNNBase, index: int) -> CellParams:
    """The forward-direction :class:`CellParams` of layer ``index`` of a torch.nn/rnnkit layer."""
    return CellParams.of(layer, f"_l{index}")


class LayerStepper:
    """Run a unidirectional recurrent layer one step at a time (evaluation semantics).

    ``step(x (N, C), state) -> (y (N, R), state)`` with ``state`` in torch.nn's layout
    (``(L, N, R)`` or a tuple with ``c (L, N, H)``), so it can continue from the layer's ``h_n``.
    Zoneout uses its expectation and dropout is off, as in ``layer.eval()``. Any registered cell
    (:mod:`rnnkit.registry`) steps with its own step function.
    """

    def __init__(self, layer: nn.RNNBase) -> None:
        if layer.bidirectional:
            raise ValueError(
                "step-wise decoding needs a unidirectional layer, got bidirectional=True"
            )
        self.layer = layer
        self.spec = cell_of(layer)
        variants = getattr(layer, "variants", None)
        rates = {"h": variants.zoneout_h, "c": variants.zoneout_c} if variants else {}
        self.zoneouts = tuple(rates.get(s.zoneout, 0.0) for s in self.spec.states)
        self.params = [layer_params(layer, k) for k in range(layer.num_layers)]

    @torch.no_grad()
    def step(self, x: Tensor, state: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, object]:
        states = state if isinstance(state, tuple) else (state,)
        new_states: list[list[Tensor]] = [[] for _ in states]
        for k, p in enumerate(self.params):
            old = tuple(s[k] for s in states)
            new = self.spec.step(input_projection(x, p), old, p)
            for i, (prev, nxt, rate) in enumerate(zip(old, new, self.zoneouts)):
                new_states[i].append(zoneout(prev, nxt, rate) if rate else nxt)
            x = new_states[0][-1]
        out = tuple(torch.stack(s) for s in new_states)
        return x, (out if len(out) > 1 else out[0])


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
