"""Image captioning (MXNet Gluon's encoder-decoder example, the CS231n assignment, Show and Tell).

Data (:mod:`rnnkit.data.images`): the built-in digit strips (``data`` None; the training strips are
drawn afresh from the training digits each epoch), a COCO/Karpathy captions JSON or a Flickr8k token
file with an image folder (``images``), or precomputed features (``features``: ``.npy`` rows in the
order of the captions file's images, or ``.npz``/HDF5 with ``ids``). Karpathy's files carry their
split; other files are split by image with ``valid_fraction`` / ``test_fraction``.

Model: :mod:`rnnkit.tasks.caption_model`. Training: cross-entropy of the next word with teacher
forcing, one example per (image, caption) pair. Evaluation: the loss and perplexity, then every
image of the split is captioned (beam search of ``beam_size``, greedy when 1, :mod:`.beam`) and
scored against all its references with corpus BLEU-1..4 (:mod:`.text_metrics`) and exact match.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.images import (
    DIGIT_WORDS,
    CaptionSet,
    digit_pools,
    digit_strips,
    load_image,
    make_batch,
    read_captions,
    read_features,
)
from ..data.text import UNK, Vocab
from .base import config_from_dict, register
from .beam import beam_search
from .caption_model import RESNETS, CaptionModel
from .text_metrics import bleu, exact_match

log = logging.getLogger(__name__)

PAD, START, END = "<pad>", "<start>", "<end>"
SPECIALS = [PAD, START, END, UNK]


@dataclass
class CaptionConfig:
    """Captioning settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None uses the built-in digit strips (``num_*`` strips per split; the training strips
    are drawn afresh each epoch when ``resample_train``).
    ``init_state``: ``'hc'`` sets both LSTM states from the image, ``'h'`` only ``h`` (``c0 = 0``).
    ``max_caption_len``: most words in a caption (longer captions are an error naming their line);
    decoding stops after it. ``beam_size`` 1 decodes greedily.
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
    num_layers: int = 1
    dropout: float = 0.0
    init_state: str = "hc"
    attention: bool = False
    attention_size: int = 128
    min_count: int = 1
    max_caption_len: int = 20
    beam_size: int = 3
    length_penalty: float = 1.0
    batch_size: int = 64
    eval_batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.encoder != "cnn" and self.encoder not in RESNETS:
            raise ValueError(f"encoder must be 'cnn' or one of {RESNETS}, got {self.encoder!r}")
        if self.init_state not in ("h", "hc"):
            raise ValueError(f"init_state must be 'h' or 'hc', got {self.init_state!r}")
        for name in ("num_train", "image_size", "cnn_channels", "feature_size", "embed_size",
                     "hidden_size", "num_layers", "attention_size", "min_count",
                     "max_caption_len", "beam_size", "batch_size", "eval_batch_size"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
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


def build_vocab(captions: list[list[str]], min_count: int) -> Vocab:
    """``<pad> <start> <end> <unk>``, then words seen ``>= min_count`` times by count, ties A-Z."""
    counts = Counter(w for c in captions for w in c)
    for s in SPECIALS:
        counts.pop(s, None)
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return Vocab(SPECIALS + words, level="word")


@register("caption")
class CaptioningTask:
    """Caption images with a CNN encoder and an LSTM decoder (Show and Tell; optional attention)."""

    Config = CaptionConfig
    PRESETS = PRESETS

    def __init__(self, cfg: CaptionConfig, vocab: Vocab | None = None) -> None:
        self.cfg = cfg
        self._sets: dict[str, CaptionSet] = {}
        self._train_epoch: tuple[int, CaptionSet] | None = None
        if cfg.data is None:
            self._pools = digit_pools(seed=cfg.seed)
            for split in ("valid", "test"):
                self._sets[split] = self._strips(split, [cfg.seed, 1 + (split == "test")])
            train_caps = [list(DIGIT_WORDS)]
        else:
            self._sets = self._load_user_data(cfg)
            train_caps = [c for refs in self._sets["train"].captions for c in refs]
        self.vocab = vocab if vocab is not None else build_vocab(train_caps, cfg.min_count)
        self.input_shape = self.split_set("valid" if cfg.data is None else "train").item_shape
        log.info("captioning: vocabulary %d words, inputs %s", len(self.vocab), self.input_shape)

    # ---- data
    def _strips(self, split: str, seed: list[int]) -> CaptionSet:
        cfg = self.cfg
        n = {"train": cfg.num_train, "valid": cfg.num_valid, "test": cfg.num_test}[split]
        strips, caps = digit_strips(self._pools[split], n, cfg.min_digits, cfg.max_digits,
                                    seed=seed)  # fmt: skip
        keys = [f"{split}-{i}" for i in range(n)]
        return CaptionSet.from_arrays(strips, [[c] for c in caps], keys)

    def _load_user_data(self, cfg: CaptionConfig) -> dict[str, CaptionSet]:
        records = read_captions(cfg.data, cfg.images, check_images=cfg.features is None)
        for r in records:
            for cap, where in zip(r.captions, r.lines):
                if len(cap) > cfg.max_caption_len:
                    raise ValueError(
                        f"{where}: caption of {len(cap)} words is longer than max_caption_len="
                        f"{cfg.max_caption_len} (raise --max-caption-len)"
                    )
        feats = None
        if cfg.features is not None:
            feats = _align_features(cfg.features, records)
        if any(r.split for r in records):
            splits = [r.split or "train" for r in records]
        else:
            rng = np.random.default_rng(cfg.seed)
            order = rng.permutation(len(records))
            n_valid = int(round(len(records) * cfg.valid_fraction))
            n_test = int(round(len(records) * cfg.test_fraction))
            splits = ["train"] * len(records)
            for j, i in enumerate(order):
                splits[i] = "valid" if j < n_valid else "test" if j < n_valid + n_test else "train"
        out = {}
        for split in ("train", "valid", "test"):
            idx = [i for i, s in enumerate(splits) if s == split]
            recs = [records[i] for i in idx]
            if feats is not None:
                out[split] = CaptionSet.from_arrays(
                    feats[idx], [r.captions for r in recs], [r.key for r in recs]
                )
            else:
                out[split] = CaptionSet.from_files(recs, cfg.image_size, channels=3)
        if len(out["train"]) == 0:
            raise ValueError(f"{cfg.data}: no training images after the split")
        log.info("%s: %d/%d/%d train/valid/test images", cfg.data,
                 *(len(out[s]) for s in ("train", "valid", "test")))  # fmt: skip
        return out

    def split_set(self, split: str, epoch: int = 0) -> CaptionSet:
        """The images and references of a split (built-in training strips: drawn for ``epoch``)."""
        if self.cfg.data is None and split == "train":
            epoch = epoch if self.cfg.resample_train else 0
            if self._train_epoch is None or self._train_epoch[0] != epoch:
                self._train_epoch = (epoch, self._strips("train", [self.cfg.seed, 0, epoch]))
            return self._train_epoch[1]
        if split not in self._sets:
            raise ValueError(f"unknown split {split!r}; expected train, valid or test")
        return self._sets[split]

    def encode_caption(self, words: list[str]) -> list[int]:
        """``<start> w1 .. wn <end>`` as ids."""
        return self.vocab.encode([START, *words, END])

    # ---- TrainableTask protocol
    def build_model(self) -> CaptionModel:
        return CaptionModel(self.cfg, len(self.vocab), self.input_shape)

    def batches(self, split: str, epoch: int) -> _PairBatches:
        data = self.split_set(split, epoch)
        train = split == "train"
        pairs = [(i, j) for i, refs in enumerate(data.captions) for j in range(len(refs))]
        if train:
            rng = np.random.default_rng([self.cfg.seed, epoch])
            pairs = [pairs[k] for k in rng.permutation(len(pairs))]
        size = self.cfg.batch_size if train else self.cfg.eval_batch_size
        chunks = [pairs[k : k + size] for k in range(0, len(pairs), size)]
        return _PairBatches(self, data, chunks)

    def initial_state(self, batch: Any, device: torch.device) -> None:
        return None

    def shard(self, batch: dict[str, Tensor], rank: int, world_size: int) -> dict[str, Tensor]:
        """This rank's share under DDP: images ``(N, ...)`` along dim 0, the rest time-major."""
        from ..train.distributed import default_shard

        rest = default_shard({k: v for k, v in batch.items() if k != "images"}, rank, world_size)
        size = batch["images"].shape[0] // world_size
        return {"images": batch["images"].narrow(0, rank * size, size), **rest}

    def loss(self, model: nn.Module, batch: dict[str, Tensor], state: Any):
        logits = model(batch["images"], batch["inputs"], batch["lengths"])
        targets = batch["targets"]
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)
        return loss, None, int(batch["lengths"].sum())

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"ppl": float(np.exp(min(mean_loss, 700.0)))}

    def state_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.cfg), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **overrides: Any) -> CaptioningTask:
        data = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(config_from_dict(CaptionConfig, data), Vocab.from_dict(state["vocab"]))

    # ---- decoding, evaluation, prediction
    def step_fn(self, model: CaptionModel, enc: Any):
        """``(tokens, state) -> (logits, state)`` for :mod:`.beam`, with ``<pad>`` and ``<start>``
        never generated; ``enc`` holds one row per decoded row."""
        banned = [self.vocab.stoi[PAD], self.vocab.stoi[START]]

        def step(tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
            logits, state = model.step(enc, tokens, state)
            logits[:, banned] = float("-inf")
            return logits, state

        return step

    @torch.no_grad()
    def caption_images(
        self, model: CaptionModel, images: Tensor, beam_size: int | None = None
    ) -> list[list[str]]:
        """Captions (word lists) of a batch of images/features, by beam search (greedy for 1)."""
        beam = self.cfg.beam_size if beam_size is None else beam_size
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            enc = model.encode(images.to(device))
            hyps = beam_search(
                self.step_fn(model, enc.repeat(beam)),
                model.init_state(enc),
                self.vocab.stoi[START],
                self.vocab.stoi[END],
                beam_size=beam,
                max_len=self.cfg.max_caption_len + 1,
                length_penalty=self.cfg.length_penalty,
                state_batch_dim=1,
            )
        finally:
            model.train(was_training)
        limit = self.cfg.max_caption_len
        return [[self.vocab.tokens[t] for t in h[0].tokens[:limit]] for h in hyps]

    def caption_split(self, model: CaptionModel, split: str, limit: int | None = None):
        """``(generated, references, set)`` for the first ``limit`` images of a split."""
        data = self.split_set(split)
        n = len(data) if limit is None else min(limit, len(data))
        size = self.cfg.eval_batch_size
        out: list[list[str]] = []
        for k in range(0, n, size):
            out += self.caption_images(model, data.inputs(list(range(k, min(n, k + size)))))
        return out, data.captions[:n], data

    @torch.no_grad()
    def evaluate(self, model: CaptionModel, split: str) -> dict[str, float]:
        """Teacher-forced loss and perplexity, BLEU-1..4 and exact match of decoded captions."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total = count = 0.0
        try:
            batches = self.batches(split, 0)
            for i in range(len(batches)):
                batch = {k: v.to(device) for k, v in batches[i].items()}
                loss, _, n = self.loss(model, batch, None)
                total, count = total + float(loss) * n, count + n
        finally:
            model.train(was_training)
        mean = total / count if count else float("nan")
        out: dict[str, Any] = {"loss": mean, "tokens": int(count), **self.metrics(mean)}
        generated, refs, _ = self.caption_split(model, split)
        if generated:
            out.update(bleu(generated, refs))
            out["exact_match"] = exact_match(generated, refs)
        return out

    def predict(self, model: CaptionModel, inputs: list[str], out_dir: Path | None = None):
        """Caption images: file paths, or names of images in the run's data; with no inputs, the
        first 16 test images. Returns ``name<TAB>caption`` lines; writes ``captions.png`` into
        ``out_dir`` (images with generated and, when known, reference captions)."""
        if not inputs:
            gen, refs, data = self.caption_split(model, "test", limit=16)
            keys, arrays = data.keys[: len(gen)], data.inputs(list(range(len(gen))))
        else:
            arrays, refs, keys = self._inputs_for(inputs)
            gen = []
            for k in range(0, len(keys), self.cfg.eval_batch_size):
                gen += self.caption_images(model, arrays[k : k + self.cfg.eval_batch_size])
        lines = [f"{k}\t{' '.join(g)}" for k, g in zip(keys, gen)]
        if out_dir is not None and arrays.dim() == 4:
            path = Path(out_dir) / "captions.png"
            plot_captions(arrays.numpy(), gen, refs, path, titles=keys)
            lines.append(f"wrote {path}")
        return lines

    def _inputs_for(self, inputs: list[str]) -> tuple[Tensor, list[list[list[str]]], list[str]]:
        arrays, refs = [], []
        index = {}
        for split in ("train", "valid", "test"):
            if self.cfg.data is None and split == "train":
                continue
            data = self.split_set(split)
            index.update({k: (data, i) for i, k in enumerate(data.keys)})
        for name in inputs:
            if name in index:
                data, i = index[name]
                arrays.append(data.inputs([i])[0])
                refs.append(data.captions[i])
                continue
            if self.cfg.features is not None:
                raise ValueError(
                    f"{name!r} is not an image of {self.cfg.features}; a features-based run "
                    "captions only the images its features file holds"
                )
            if not Path(name).is_file():
                raise FileNotFoundError(f"{name}: no such image file or image name in the data")
            c, h, w = self.input_shape
            arrays.append(torch.from_numpy(load_image(name, (h, w), channels=c)))
            refs.append([])
        return torch.stack(arrays), refs, list(inputs)


class _PairBatches:
    """Batches of (image, caption) pairs: dicts with ``images``, ``inputs``/``targets (T, N)``
    (``<start> w..`` / ``w.. <end>``, padded with 0) and ``lengths (N,)``."""

    def __init__(self, task: CaptioningTask, data: CaptionSet, chunks: list) -> None:
        self.task, self.data, self.chunks = task, data, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        chunk = self.chunks[i]
        ids = [self.task.encode_caption(self.data.captions[a][b]) for a, b in chunk]
        images = self.data.inputs([a for a, _ in chunk])
        return make_batch(images, ids)


def _align_features(path: str, records: list) -> np.ndarray:
    """The feature rows of ``records``' images, matched by id/name or, without ids, by order."""
    feats, ids = read_features(path)
    if ids is None:
        if len(feats) != len(records):
            raise ValueError(
                f"{path}: {len(feats)} feature rows for {len(records)} images; without 'ids' the "
                "rows must follow the images of the captions file one to one"
            )
        return feats
    row = {k: i for i, k in enumerate(ids)}
    missing = [r for r in records if r.key not in row]
    if missing:
        where = missing[0].where or "the captions file"
        raise ValueError(
            f"{path}: no features for {len(missing)} images of the captions file, e.g. "
            f"{missing[0].key!r} (referred to at {where})"
        )
    return feats[[row[r.key] for r in records]]


def plot_captions(
    images: np.ndarray,
    generated: list[list[str]],
    references: list[list[list[str]]],
    path: str | Path,
    titles: list[str] | None = None,
    columns: int = 4,
) -> Path:
    """A PNG grid of ``images (N, C, H, W)`` in ``[0, 1]`` with generated (and reference) captions;
    a generated caption matching no reference is drawn in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(generated)
    rows = max(1, -(-n // columns))
    aspect = images.shape[3] / images.shape[2]  # W / H
    width = 3.0 if aspect > 1.5 else 2.4
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * width, rows * (width / aspect + 0.8)), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        refs = references[k] if k < len(references) else []
        gen = " ".join(generated[k])
        ok = not refs or gen in {" ".join(r) for r in refs}
        text = f"gen: {gen}"
        if refs:
            text += f"\nref: {' '.join(refs[0])}"
        if titles:
            text = f"{titles[k]}\n{text}"
        ax.set_title(text, fontsize=7, color="black" if ok else "red")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
