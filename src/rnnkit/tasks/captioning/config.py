"""Captioning settings (:class:`CaptionConfig`) and named presets (:data:`PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import ModelConfig, check_positive

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


@dataclass
class CaptionConfig(ModelConfig):
    """Captioning settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None uses the built-in digit strips (``num_*`` strips per split; the training strips
    are drawn afresh each epoch when ``resample_train``).
    ``init_state``: ``'hc'`` sets both LSTM states from the image, ``'h'`` only ``h`` (``c0 = 0``).
    ``max_caption_len``: most words in a caption (longer captions are an error naming their line);
    decoding stops after it. ``beam_size`` 1 decodes greedily. The decoder is an LSTM; its sizes,
    dropout, the batch size and seed are :class:`rnnkit.tasks.config.ModelConfig`'s.
    """

    data: str | None = None
    images: str | None = None
    features: str | None = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.1
    num_train: int = 8000
    resample_train: bool = True
    num_valid: int = 500
    num_test: int = 1000
    min_digits: int = 2
    max_digits: int = 5
    image_size: int = 64
    encoder: str = "cnn"
    pretrained: bool = False
    freeze: bool = False
    cnn_channels: int = 32
    feature_size: int = 256
    embed_size: int = 64
    hidden_size: int = 256
    init_state: str = "hc"
    attention: bool = False
    attention_size: int = 128
    min_count: int = 1
    max_caption_len: int = 20
    beam_size: int = 3
    length_penalty: float = 1.0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.encoder != "cnn" and self.encoder not in RESNETS:
            raise ValueError(f"encoder must be 'cnn' or one of {RESNETS}, got {self.encoder!r}")
        if self.init_state not in ("h", "hc"):
            raise ValueError(f"init_state must be 'h' or 'hc', got {self.init_state!r}")
        super().__post_init__()
        check_positive(self, "num_train", "image_size", "cnn_channels", "feature_size",
                       "embed_size", "attention_size", "min_count", "max_caption_len",
                       "beam_size", "eval_batch_size")  # fmt: skip
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(
                f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}"
            )
        if self.features is not None and self.data is None:
            raise ValueError("features needs the captions file too: give --data CAPTIONS")
        if (self.pretrained or self.freeze) and self.encoder == "cnn":
            raise ValueError("pretrained/freeze apply to a ResNet encoder, e.g. --encoder resnet50")


# fmt: off
# name -> (CaptionConfig overrides, TrainerConfig overrides)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The built-in digit strips (the target: test BLEU-4 >= 0.90 within 10 CPU minutes).
    "digits": (
        dict(cnn_channels=32, feature_size=256, embed_size=64, hidden_size=256, batch_size=64),
        dict(optimizer="adam", lr=2e-3, clip_norm=5.0, schedule="cosine", warmup_steps=100,
             epochs=30, eval_every=500),
    ),
    "digits-attention": (
        dict(attention=True, cnn_channels=32, feature_size=128, embed_size=64, hidden_size=256,
             batch_size=64),
        dict(optimizer="adam", lr=2e-3, clip_norm=5.0, schedule="cosine", warmup_steps=100,
             epochs=30, eval_every=500),
    ),
    # The CS231n assignment's sizes (word vectors 256, hidden 512) on precomputed features.
    "cs231n": (
        dict(embed_size=256, hidden_size=512, feature_size=512, init_state="h", min_count=5,
             max_caption_len=16),
        dict(optimizer="adam", lr=5e-3, epochs=50, clip_norm=5.0),
    ),
    # COCO / Flickr8k with a frozen ImageNet ResNet-50 (needs torchvision), as Gluon's example.
    "coco": (
        dict(encoder="resnet50", pretrained=True, freeze=True, image_size=224, embed_size=256,
             hidden_size=512, feature_size=512, min_count=5, max_caption_len=50, dropout=0.3,
             batch_size=64, eval_batch_size=64),
        dict(optimizer="adam", lr=1e-3, clip_norm=5.0, epochs=10),
    ),
    "tiny": (
        dict(num_train=64, num_valid=16, num_test=16, cnn_channels=8, feature_size=32,
             embed_size=16, hidden_size=32, batch_size=16, eval_batch_size=32, beam_size=2),
        dict(optimizer="adam", lr=1e-2, epochs=1),
    ),
}
# fmt: on
