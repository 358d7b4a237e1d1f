"""Sorting-task settings (:class:`SortConfig`) and named presets (:data:`PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...data.synthetic import CHAR_VOCAB
from ..config import CellConfig, check_positive


@dataclass
class SortConfig(CellConfig):
    """Sorting-task settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None generates sequences (``num_*`` of them; the training set is drawn afresh each
    epoch when ``resample_train``); a text file of one sequence per line is split by position:
    the first ``1 - valid_fraction - test_fraction`` train, then validation, then test.
    Numbers lie in ``[0, vocab_size)``; ``chars`` writes them as characters (MXNet: ``999``).
    The cell, sizes, dropout, batch size and seed are :class:`rnnkit.tasks.config.CellConfig`'s.
    """

    CELLS = ("lstm", "gru", "mingru", "minlstm", "indrnn", "slstm")

    data: str | None = None
    encoding: str = "tokens"
    vocab_size: int = 100
    min_len: int = 5
    max_len: int = 10
    gen_min_len: int = 11
    gen_max_len: int = 20
    char_pad: int = 0
    num_train: int = 50_000
    num_valid: int = 2_000
    num_test: int = 5_000
    num_probe: int = 2_000
    resample_train: bool = True
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    embed_size: int = 64
    num_layers: int = 2
    batch_size: int = 128
    eval_batch_size: int = 512
    num_buckets: int = 8

    def __post_init__(self) -> None:
        if self.encoding not in ("tokens", "chars"):
            raise ValueError(f"encoding must be 'tokens' or 'chars', got {self.encoding!r}")
        super().__post_init__()
        check_positive(self, "vocab_size", "min_len", "embed_size", "eval_batch_size",
                       "num_buckets", "num_train")  # fmt: skip
        if self.min_len > self.max_len or self.gen_min_len > self.gen_max_len:
            raise ValueError(
                f"need min_len <= max_len and gen_min_len <= gen_max_len, got "
                f"{self.min_len}-{self.max_len} and {self.gen_min_len}-{self.gen_max_len}"
            )
        if not 0 <= self.valid_fraction + self.test_fraction < 1:
            raise ValueError(
                f"valid_fraction + test_fraction must be in [0, 1), got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )

    @property
    def num_inputs(self) -> int:
        """Input ids: the numbers or characters, plus one padding id."""
        return self.num_classes + 1

    @property
    def num_classes(self) -> int:
        return len(CHAR_VOCAB) if self.encoding == "chars" else self.vocab_size


# fmt: off
# name -> (SortConfig overrides, TrainerConfig overrides)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The setting: vocabulary 100, lengths 5-10 (generalisation probed on 11-20).
    "default": (
        dict(hidden_size=128, num_layers=2, batch_size=128),
        dict(optimizer="adam", lr=3e-3, clip_norm=1.0, schedule="cosine", warmup_steps=200,
             epochs=20, eval_every=1000),
    ),
    # MXNet's notebook: 5 numbers in 0-999 as characters padded to 19, bi-LSTM 2 x 128, Adam 0.01
    # (its schedule: x0.75 every 10 epochs of 94 batches of 512; cosine here), batch 512.
    "mxnet": (
        dict(encoding="chars", vocab_size=1000, min_len=5, max_len=5, char_pad=19,
             num_train=48_000, num_valid=2_000, num_test=12_000, resample_train=False,
             hidden_size=128, num_layers=2, batch_size=512, num_buckets=1),
        dict(optimizer="adam", lr=1e-2, clip_norm=1.0, schedule="cosine", epochs=100,
             eval_every=940),
    ),
    "tiny": (
        dict(num_train=512, num_valid=64, num_test=64, num_probe=64, hidden_size=16,
             embed_size=8, num_layers=1, batch_size=32, eval_batch_size=64),
        dict(optimizer="adam", lr=1e-2, epochs=1),
    ),
}
# fmt: on
