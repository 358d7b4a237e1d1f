"""Seq2seq settings (:class:`Seq2SeqConfig`) and named presets (:data:`PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import CellConfig, check_choices, check_positive


@dataclass
class Seq2SeqConfig(CellConfig):
    """Seq2seq settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None generates the built-in ``dataset`` (``dates`` or ``reverse``: ``num_*`` pairs,
    validation and test sources kept out of training); a ``source<TAB>target`` file is split by
    position (the first ``1 - valid_fraction - test_fraction`` train). ``level``: ``char`` or
    ``word`` tokens. Sources/targets longer than ``max_source_len``/``max_target_len`` tokens are
    an error naming the line. The cell (encoder's and decoder's), sizes, dropout, batch size and
    seed are :class:`rnnkit.tasks.config.CellConfig`'s.
    """

    CELLS = ("lstm", "gru", "mingru", "minlstm", "indrnn", "slstm")

    data: str | None = None
    dataset: str = "dates"
    level: str = "char"
    num_train: int = 50_000
    num_valid: int = 1_000
    num_test: int = 5_000
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    min_len: int = 3
    max_len: int = 12
    max_source_len: int = 64
    max_target_len: int = 32
    embed_size: int = 32
    bidirectional: bool = True
    handoff: str = "hc"
    attention: str = "luong"
    scheduled_sampling: float = 0.0
    beam_size: int = 1
    length_penalty: float = 1.0
    eval_batch_size: int = 500
    num_buckets: int = 4

    def __post_init__(self) -> None:
        check_choices(self, dataset=("dates", "reverse"), level=("char", "word"))
        super().__post_init__()
        check_choices(self, handoff=("h", "hc", "none"), attention=("none", "luong", "bahdanau"))
        check_positive(self, "embed_size", "eval_batch_size", "beam_size", "num_buckets",
                       "max_source_len", "max_target_len")  # fmt: skip
        if self.handoff == "none" and self.attention == "none":
            raise ValueError("handoff='none' with attention='none' leaves the decoder blind")
        if not 0.0 <= self.scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if not 0 <= self.valid_fraction + self.test_fraction < 1:
            raise ValueError("valid_fraction + test_fraction must be in [0, 1)")


_ADAM = dict(optimizer="adam", lr=3e-3, clip_norm=1.0, schedule="cosine", warmup_steps=100)
# name -> (Seq2SeqConfig overrides, TrainerConfig overrides)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The target: date normalisation, test exact match >= 99% in 10 CPU minutes.
    "dates": (dict(attention="luong", handoff="hc"), dict(_ADAM, epochs=4, eval_every=500)),
    # The Gluon note's comparison, without attention: pass h and c, or h only.
    "dates-hc": (dict(attention="none", handoff="hc"), dict(_ADAM, epochs=4, eval_every=500)),
    "dates-h": (dict(attention="none", handoff="h"), dict(_ADAM, epochs=4, eval_every=500)),
    "reverse": (
        dict(dataset="reverse", num_train=20_000, attention="luong"),
        dict(_ADAM, epochs=3, eval_every=300),
    ),
    "tiny": (
        dict(
            dataset="reverse",
            num_train=512,
            num_valid=64,
            num_test=64,
            min_len=2,
            max_len=5,
            embed_size=8,
            hidden_size=16,
            batch_size=32,
        ),
        dict(optimizer="adam", lr=1e-2, epochs=1),
    ),
}
