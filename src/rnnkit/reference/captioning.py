"""Image captioning RNN in NumPy, as CS231n assignment 3's ``CaptioningRNN``.

Karpathy & Fei-Fei 2015 ("Deep Visual-Semantic Alignments"), in the course's simplified form:
image features ``(N, D)`` are projected to the initial hidden state, and a word-level RNN or
LSTM (no c projection: ``c0 = 0``) predicts the next word at every step.
"""

from __future__ import annotations

import numpy as np

from .layers import (
    affine_backward,
    affine_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

__all__ = ["CaptioningRNN"]

_CELLS = ("rnn", "lstm")


class CaptioningRNN:
    """Caption generator: image features -> h0, word embeddings -> RNN/LSTM -> vocabulary scores.

    Parameters (``self.params``, CS231n names; V words, W = wordvec_dim, H = hidden_dim,
    k = 4 for LSTM else 1): ``W_proj (D, H)``, ``b_proj (H,)``, ``W_embed (V, W)``,
    ``Wx (W, kH)``, ``Wh (H, kH)``, ``b (kH,)``, ``W_vocab (H, V)``, ``b_vocab (V,)``.
    Initialised as the course: ``randn / sqrt(fan_in)``, ``W_embed = randn / 100``, zero biases,
    all cast to ``dtype``. ``rng`` (a ``np.random.Generator``) is optional; without it the
    global ``np.random`` state is used, so ``np.random.seed`` reproduces the course.
    """

    def __init__(
        self,
        word_to_idx: dict[str, int],
        input_dim: int = 512,
        wordvec_dim: int = 128,
        hidden_dim: int = 128,
        cell_type: str = "rnn",
        dtype=np.float32,
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        if cell_type not in _CELLS:
            raise ValueError(f"cell_type: expected one of {_CELLS}, got {cell_type!r}")
        if "<NULL>" not in word_to_idx:
            raise ValueError(
                f"word_to_idx: expected a '<NULL>' entry, got keys {sorted(word_to_idx)[:10]}"
            )
        self.cell_type = cell_type
        self.dtype = dtype
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>")
        self._end = word_to_idx.get("<END>")

        def randn(*shape: int) -> np.ndarray:
            if rng is None:  # the course's global state, so np.random.seed reproduces it
                return np.random.randn(*shape)  # noqa: NPY002
            return rng.standard_normal(shape)

        V = len(word_to_idx)
        k = 4 if cell_type == "lstm" else 1
        params = {
            "W_embed": randn(V, wordvec_dim) / 100,
            "W_proj": randn(input_dim, hidden_dim) / np.sqrt(input_dim),
            "b_proj": np.zeros(hidden_dim),
            "Wx": randn(wordvec_dim, k * hidden_dim) / np.sqrt(wordvec_dim),
            "Wh": randn(hidden_dim, k * hidden_dim) / np.sqrt(hidden_dim),
            "b": np.zeros(k * hidden_dim),
            "W_vocab": randn(hidden_dim, V) / np.sqrt(hidden_dim),
            "b_vocab": np.zeros(V),
        }
        self.params = {name: value.astype(dtype) for name, value in params.items()}

    def loss(self, features: np.ndarray, captions: np.ndarray) -> tuple[float, dict]:
        """Teacher-forced training loss and gradients of every parameter.

        Shapes: features ``(N, D)``, captions ``(N, T)`` integers in ``[0, V)``. The inputs are
        ``captions[:, :-1]``, the targets ``captions[:, 1:]``; targets equal to ``<NULL>`` are
        masked out; the loss is summed over steps and divided by N
        (:func:`~rnnkit.reference.layers.temporal_softmax_loss`). Returns ``(loss, grads)`` with
        ``grads`` keyed as ``self.params``.
        """
        if captions.ndim != 2 or captions.shape[0] != features.shape[0]:
            raise ValueError(
                f"captions: expected (N, T) with N = {features.shape[0]}, got {captions.shape}"
            )
        p = self.params
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null

        h0, cache_proj = affine_forward(features, p["W_proj"], p["b_proj"])
        x, cache_embed = word_embedding_forward(captions_in, p["W_embed"])
        if self.cell_type == "rnn":
            forward, backward = rnn_forward, rnn_backward
        else:
            forward, backward = lstm_forward, lstm_backward
        h, cache_rnn = forward(x, h0, p["Wx"], p["Wh"], p["b"])
        scores, cache_scores = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, cache_scores)
        dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, cache_rnn)
        grads["W_embed"] = word_embedding_backward(dx, cache_embed)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, cache_proj)
        return loss, grads

    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray:
        """Greedy decoding from ``<START>``: each step feeds back the argmax word.

        Shapes: features ``(N, D)`` -> captions ``(N, max_length)`` int32, the first column being
        the first sampled word (not ``<START>``). After a sequence emits ``<END>`` its remaining
        positions are ``<NULL>`` (CS231n's ``decode_captions`` skips them and stops at ``<END>``).
        """
        if self._start is None:
            raise ValueError("sample: expected a '<START>' entry in word_to_idx, found none")
        p = self.params
        N = features.shape[0]
        captions = np.full((N, max_length), self._null, dtype=np.int32)
        h, _ = affine_forward(features, p["W_proj"], p["b_proj"])
        c = np.zeros_like(h)
        word = np.full(N, self._start)
        done = np.zeros(N, dtype=bool)
        for t in range(max_length):
            x, _ = word_embedding_forward(word, p["W_embed"])
            if self.cell_type == "rnn":
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            else:
                h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            word = np.argmax(h @ p["W_vocab"] + p["b_vocab"], axis=1)
            captions[~done, t] = word[~done]
            if self._end is not None:
                done |= word == self._end
                if done.all():
                    break
        return captions
