"""Language-model settings (:class:`LMConfig`) and named presets (:data:`PRESETS`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config import VariantConfig, check_choices, check_positive
from .ngram import MAX_NGRAM_ORDER

SOFTMAXES = ("full", "adaptive")


@dataclass
class LMConfig(VariantConfig):
    """Language-model settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None trains on the embedded default corpus (Python standard-library sources,
    ``default_corpus_chars`` characters; see :func:`rnnkit.data.default_corpus`). A file is split by
    position: the first ``1 - valid_fraction - test_fraction`` train, then validation, then test.
    The cell, its layer options (layer norm, recurrent dropout, DropConnect, zoneout, peepholes,
    forget-gate bias), sizes, dropout, batch size and seed are
    :class:`rnnkit.tasks.config.VariantConfig`'s.

    Regularisation (AWD-LSTM's names in brackets, Merity et al. 2017): ``embed_dropout`` locked
    dropout on the embedded words (``dropouti``); ``word_dropout`` drops whole words of the
    vocabulary (``dropoute``); ``dropout`` between the recurrent layers (``dropouth``) and, unless
    ``output_dropout`` is given, locked dropout on the last layer's output (``dropout``);
    ``weight_drop`` DropConnect on the recurrent matrices (``wdrop``). ``variable_bptt`` draws the
    window lengths as AWD-LSTM does and scales the learning rate by ``length / bptt``
    (:meth:`rnnkit.tasks.lm.LanguageModelTask.lr_scale`).

    Output layer (:mod:`.softmax`): ``softmax="full"`` a linear layer over the vocabulary;
    ``"adaptive"`` ``torch.nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017, "Efficient softmax
    approximation for GPUs") with clusters cut at ``adaptive_cutoffs`` (word ids are by decreasing
    frequency; cutoffs at or past the vocabulary's size are dropped) and each tail cluster
    ``adaptive_div`` times narrower than the one before. ``tie_weights`` shares the embedding with
    the full softmax's weight, or with the adaptive head's rows of the frequent words; with
    ``adaptive_div`` 1 every cluster is the embedding's rows at full width
    (:class:`.softmax.TiedAdaptiveSoftmax`).

    ``ngram_order`` > 0 mixes the trained network with an interpolated modified Kneser-Ney
    n-gram of that order counted from the training split (:mod:`.ngram`) when the run is
    evaluated: ``p = (1 - w) p_rnn + w p_ngram``, ``w`` chosen on the validation split.
    """

    CELLS = ("lstm", "gru", "rnn", "mingru", "minlstm", "indrnn", "slstm")

    data: str | None = None
    level: str = "char"
    default_corpus_chars: int = 1_000_000
    valid_fraction: float = 0.1
    test_fraction: float = 0.0
    min_count: int = 1
    max_vocab: int | None = None
    embed_size: int = 64
    hidden_size: int = 512
    embed_dropout: float = 0.0
    word_dropout: float = 0.0
    output_dropout: float | None = None
    tie_weights: bool = False
    softmax: str = "full"
    adaptive_cutoffs: tuple[int, ...] = (2000, 6000)
    adaptive_div: float = 4.0
    init_range: float | None = None
    ngram_order: int = 0
    batch_size: int = 32
    bptt: int = 100
    variable_bptt: bool = False
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        super().__post_init__()
        check_positive(self, "embed_size", "bptt")
        check_choices(self, softmax=SOFTMAXES)
        for name in ("dropout", "embed_dropout", "word_dropout", "output_dropout"):
            p = getattr(self, name)
            if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float))
                                  or not 0.0 <= p < 1.0):  # fmt: skip
                raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
        self.adaptive_cutoffs = tuple(self.adaptive_cutoffs)  # lists come back from JSON
        cuts = self.adaptive_cutoffs
        if not cuts or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in cuts) \
                or list(cuts) != sorted(set(cuts)):  # fmt: skip
            raise ValueError(
                f"adaptive_cutoffs must be increasing integers >= 1 (word ids where the clusters "
                f"of the adaptive softmax start), got {cuts!r}"
            )
        d = self.adaptive_div
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 1.0 <= d <= 64.0:
            raise ValueError(f"adaptive_div must be a number in [1, 64], got {d!r}")
        k = self.ngram_order
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_NGRAM_ORDER:
            raise ValueError(
                f"ngram_order must be 0 (no n-gram) or an integer in 1..{MAX_NGRAM_ORDER}, got {k!r}"
            )
        r = self.init_range
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float))
                              or not math.isfinite(r) or not 0 < r <= 10):  # fmt: skip
            raise ValueError(f"init_range must be a number in (0, 10] or None, got {r!r}")


# name -> (LMConfig overrides, TrainerConfig overrides)
# fmt: off
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # Character level (Karpathy's char-rnn sizes, tuned for a 2-core CPU and a few minutes).
    "char-tiny": (
        dict(embed_size=32, hidden_size=128, num_layers=1, batch_size=16, bptt=64),
        dict(optimizer="adam", lr=3e-3, clip_norm=1.0, eval_every=200, eval_max_batches=20),
    ),
    "char": (
        dict(embed_size=64, hidden_size=512, num_layers=1, batch_size=32, bptt=100,
             eval_batch_size=64),
        dict(optimizer="adam", lr=3e-3, clip_norm=1.0, schedule="cosine", warmup_steps=50,
             eval_every=100, eval_max_batches=10),
    ),
    "char-large": (
        dict(embed_size=64, hidden_size=512, num_layers=2, dropout=0.2, batch_size=32, bptt=100,
             eval_batch_size=64),
        dict(optimizer="adam", lr=2e-3, clip_norm=1.0, schedule="cosine", warmup_steps=100,
             eval_every=250, eval_max_batches=10),
    ),
    # Word level on a small real corpus in minutes, the default at word level. Measured on the
    # validation split (docs/lm.md has the runs and the ablation): SGD at lr 20 with the gradient
    # clipped at 0.25 and a cosine decay over the budget; embeddings tied to the output layer
    # (Press & Wolf 2017; Inan et al. 2017), which needs the small uniform init (+-0.1: an N(0, 1)
    # embedding as output weights ruins it); an adaptive softmax (Grave et al. 2017) whose
    # clusters keep the embedding's full width, tied too, which makes the step 3.2x cheaper than
    # a full softmax (batch 20, 2 threads, paired) at about the same loss per step; dropout
    # 0.25 between the layers and 0.4 on the output, locked dropout 0.2 on the embedded words
    # and 0.1 of the vocabulary's words dropped whole (AWD-LSTM's dropouth, dropout, dropouti,
    # dropoute); weight decay 2e-5 (AWD-LSTM's 1.2e-6 over-fits in this budget; 1e-5 and 4e-5
    # scored worse);
    # bfloat16 training steps where the CPU computes them natively. Evaluation mixes in a
    # Kneser-Ney 4-gram of the training split, its weight chosen on the validation split
    # (Mikolov et al. 2011). DropConnect, a larger model, three layers, dropout 0.5, lr 10, 15
    # and 30, batches of 10 and 40, variable BPTT, AdamW, AR/TAR and a forget-gate bias of 1
    # each measured worse in the budget.
    "word": (
        dict(level="word", embed_size=200, hidden_size=200, num_layers=2, dropout=0.25,
             output_dropout=0.4, embed_dropout=0.2, word_dropout=0.1, softmax="adaptive",
             adaptive_cutoffs=(2000, 6000), adaptive_div=1.0, tie_weights=True, init_range=0.1,
             ngram_order=4, batch_size=20, bptt=35, variable_bptt=False, eval_batch_size=10),
        dict(optimizer="sgd", lr=20.0, weight_decay=2e-5, clip_norm=0.25, schedule="cosine",
             warmup_steps=50, epochs=40, eval_every=350, eval_max_batches=60, precision="auto"),
    ),
    # Word level: Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization" (PTB).
    "small": (
        dict(level="word", embed_size=200, hidden_size=200, num_layers=2, batch_size=20, bptt=20,
             init_range=0.1),
        dict(optimizer="sgd", lr=1.0, clip_norm=5.0, epochs=13, schedule="plateau",
             decay_factor=2.0),
    ),
    "medium": (
        dict(level="word", embed_size=650, hidden_size=650, num_layers=2, dropout=0.5,
             embed_dropout=0.5, batch_size=20, bptt=35, init_range=0.05),
        dict(optimizer="sgd", lr=1.0, clip_norm=5.0, epochs=39, schedule="plateau",
             decay_factor=1.2),
    ),
    "large": (
        dict(level="word", embed_size=1500, hidden_size=1500, num_layers=2, dropout=0.65,
             embed_dropout=0.65, batch_size=20, bptt=35, init_range=0.04),
        dict(optimizer="sgd", lr=1.0, clip_norm=10.0, epochs=55, schedule="plateau",
             decay_factor=1.15),
    ),
}
# fmt: on
