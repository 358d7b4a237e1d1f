"""Image captioning (Show and Tell; optional soft attention): the task.

Training: cross-entropy of the next word with teacher forcing, one example per (image, caption)
pair (:mod:`.data`). Evaluation: the loss and perplexity, then every image of the split is
captioned (beam search of ``beam_size``, greedy when 1, :mod:`rnnkit.tasks.beam`) and scored
against all its references with corpus BLEU-1..4 (:mod:`rnnkit.tasks.text_metrics`) and exact
match. The model: :mod:`.model`; figures: :mod:`.plots`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.images import DIGIT_WORDS, CaptionSet, digit_pools, load_image
from ...data.text import Vocab
from ...train.metrics import perplexity
from ..base import config_from_state, register
from ..batches import Batches
from ..beam import beam_search
from ..text_metrics import bleu, exact_match
from .config import PRESETS, CaptionConfig
from .data import END, PAD, START, build_vocab, caption_batches, digit_split, load_user_splits
from .model import CaptionModel
from .plots import plot_captions

log = logging.getLogger(__name__)


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
            self._sets = load_user_splits(cfg)
            train_caps = [c for refs in self._sets["train"].captions for c in refs]
        self.vocab = vocab if vocab is not None else build_vocab(train_caps, cfg.min_count)
        self.input_shape = self.split_set("valid" if cfg.data is None else "train").item_shape
        log.info("captioning: vocabulary %d words, inputs %s", len(self.vocab), self.input_shape)

    # ---- data
    def _strips(self, split: str, seed: list[int]) -> CaptionSet:
        return digit_split(self.cfg, self._pools[split], split, seed)

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

    def batches(self, split: str, epoch: int) -> Batches:
        """Every (image, caption) pair of ``split`` once, shuffled for ``epoch`` when training."""
        data = self.split_set(split, epoch)
        if split == "train":
            seed = [self.cfg.seed, epoch]
            return caption_batches(data, self.cfg.batch_size, self.encode_caption, seed)
        return caption_batches(data, self.cfg.eval_batch_size, self.encode_caption)

    def initial_state(self, batch: Any, device: torch.device) -> None:
        return None

    def shard(self, batch: dict[str, Tensor], rank: int, world_size: int) -> dict[str, Tensor]:
        """This rank's share under DDP: images ``(N, ...)`` along dim 0, the rest time-major."""
        from ...train.distributed import default_shard

        rest = default_shard({k: v for k, v in batch.items() if k != "images"}, rank, world_size)
        size = batch["images"].shape[0] // world_size
        return {"images": batch["images"].narrow(0, rank * size, size), **rest}

    def loss(self, model: nn.Module, batch: dict[str, Tensor], state: Any):
        logits = model(batch["images"], batch["inputs"], batch["lengths"])
        targets = batch["targets"]
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)
        return loss, None, int(batch["lengths"].sum())

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"ppl": perplexity(mean_loss)}

    def state_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.cfg), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **overrides: Any) -> CaptioningTask:
        return cls(config_from_state(CaptionConfig, state, overrides),
                   Vocab.from_dict(state["vocab"]))  # fmt: skip

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
