"""Images with captions: built-in digit strips, image files, features files, caption sets and batches.

- :func:`digit_pools` and :func:`digit_strips`: strips of 2-5 handwritten digits from
  scikit-learn's shipped ``load_digits`` (1797 8x8 images, no download) with captions such as
  ``"seven three one"``; the train/valid/test strips draw on disjoint sets of digit samples.
- the captions files themselves (COCO, Karpathy, Flickr8k): :mod:`rnnkit.data.captions`.
- :func:`load_image`: one image file as a float array ``(C, H, W)`` in ``[0, 1]`` (Pillow).
- :func:`read_features`: precomputed features (CS231n's fc7/PCA features) from ``.npy``, ``.npz`` or
  HDF5, ``(N, D)`` or spatial ``(N, S, D)``, optionally with the image ids/names of the rows.
- :class:`CaptionSet` (images or features with their references) and :func:`make_batch` (padded
  teacher-forcing batches).

Errors name the file and, where there is one, the line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .captions import CaptionRecord

__all__ = [
    "DIGIT_WORDS",
    "CaptionSet",
    "digit_pools",
    "digit_strips",
    "load_image",
    "make_batch",
    "read_features",
]

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_SIZE = 8  # scikit-learn's digits are 8x8, ink 0..16


# ----------------------------------------------------------------------------- digit strips


def digit_pools(
    fractions: Sequence[float] = (0.6, 0.15, 0.25), seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits split into disjoint train/valid/test pools.

    Returns ``{split: (images (M, 8, 8) float32 in [0, 1], labels (M,) int64)}``; each class is
    split by ``fractions`` (stratified), with a permutation fixed by ``seed``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "the built-in digit strips come from scikit-learn's shipped digits: "
            "pip install scikit-learn (or pip install rnnkit[data])"
        ) from None
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be 3 positive numbers summing to 1, got {fractions}")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = int(round(len(idx) * fractions[0]))
        b = a + int(round(len(idx) * fractions[1]))
        for name, part in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            parts[name].append(part)
    out = {}
    for name, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks))
        out[name] = (images[idx], labels[idx])
    return out


def digit_strips(
    pool: tuple[np.ndarray, np.ndarray],
    n: int,
    min_digits: int = 2,
    max_digits: int = 5,
    max_gap: int = 2,
    seed: int | Sequence[int] = 0,
) -> tuple[np.ndarray, list[list[str]]]:
    """``n`` strips of ``min_digits``-``max_digits`` digits drawn from ``pool``, left to right.

    Each digit is preceded by a random gap of ``0..max_gap`` blank columns. Returns ``(strips
    (n, 1, 8, W) float32, captions)`` with ``W = max_digits * (8 + max_gap)`` and captions such as
    ``["seven", "three", "one"]``.
    """
    images, labels = pool
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if len(images) == 0:
        raise ValueError("the digit pool is empty")
    rng = np.random.default_rng(seed)
    width = max_digits * (DIGIT_SIZE + max_gap)
    strips = np.zeros((n, 1, DIGIT_SIZE, width), dtype=np.float32)
    captions = []
    counts = rng.integers(min_digits, max_digits + 1, size=n)
    for i, k in enumerate(counts):
        picks = rng.integers(0, len(images), size=k)
        gaps = rng.integers(0, max_gap + 1, size=k)
        x = 0
        for p, g in zip(picks, gaps):
            x += int(g)
            strips[i, 0, :, x : x + DIGIT_SIZE] = images[p]
            x += DIGIT_SIZE
        captions.append([DIGIT_WORDS[labels[p]] for p in picks])
    return strips, captions


# ----------------------------------------------------------------------------- caption files


# ----------------------------------------------------------------------------- images, features


def load_image(
    path: str | Path, size: int | tuple[int, int], channels: int = 3, where: str | None = None
) -> np.ndarray:
    """An image file as ``(channels, H, W)`` float32 in ``[0, 1]``.

    ``size`` is ``H = W`` or ``(H, W)``: the image is scaled to cover it and centre-cropped
    (``PIL.ImageOps.fit``). ``channels`` 3 converts to RGB, 1 to grey levels. An unreadable file is
    a ValueError naming it (and ``where``, e.g. the caption line that refers to it).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    h, w = (size, size) if isinstance(size, int) else size
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            img = ImageOps.fit(img, (w, h))
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        ref = f" (referred to at {where})" if where else ""
        raise ValueError(f"{path}: cannot read image{ref}: {e}") from None
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def read_features(path: str | Path) -> tuple[np.ndarray, list[str] | None]:
    """Precomputed image features and, when the file has them, the image id/name of each row.

    ``.npy``: one array. ``.npz``: ``features`` (or the only array) and optionally ``ids``.
    ``.h5``/``.hdf5``: datasets ``features`` (or the only dataset) and optionally ``ids``. The array
    is ``(N, D)`` (a vector per image) or ``(N, S, D)`` (``S`` regions, for attention).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: features file not found")
    suffix = path.suffix.lower()
    ids = None
    try:
        if suffix == ".npy":
            feats = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                feats, ids = _pick(path, {k: z[k] for k in z.files})
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            feats, ids = _pick(path, arrays)
        else:
            raise ValueError(f"{path}: features must be .npy, .npz, .h5 or .hdf5, got {suffix!r}")
    except (OSError, ValueError) as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path}: cannot read features: {e}") from None
    if feats.ndim not in (2, 3) or not np.issubdtype(feats.dtype, np.number):
        raise ValueError(
            f"{path}: features must be a numeric array (N, D) or (N, S, D), got shape "
            f"{feats.shape} of {feats.dtype}"
        )
    if ids is not None and len(ids) != len(feats):
        raise ValueError(f"{path}: {len(ids)} ids for {len(feats)} feature rows")
    return feats.astype(np.float32), ids


def _pick(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str] | None]:
    if "features" in arrays:
        feats = arrays["features"]
    else:
        others = [k for k in arrays if k != "ids"]
        if len(others) != 1:
            raise ValueError(
                f"{path}: expected an array named 'features' (and optionally 'ids'), got {others}"
            )
        feats = arrays[others[0]]
    ids = arrays.get("ids")
    if ids is not None:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in ids.tolist()]
    return feats, ids


# ----------------------------------------------------------------------------- datasets


class CaptionSet:
    """Images (or feature rows) with their reference captions.

    ``inputs(indices) -> Tensor (n, *item_shape)`` gives the images as float32: from an array in
    memory (digit strips, features), or read from files on demand (:func:`load_image`).
    """

    def __init__(
        self,
        captions: list[list[list[str]]],
        keys: list[str],
        array: np.ndarray | None = None,
        files: list[str] | None = None,
        file_lines: list[str] | None = None,
        image_size: int = 64,
        channels: int = 3,
    ) -> None:
        self.captions, self.keys = captions, keys
        self.array, self.files, self.file_lines = array, files, file_lines
        self.image_size, self.channels = image_size, channels

    @classmethod
    def from_arrays(
        cls, array: np.ndarray, captions: list[list[list[str]]], keys: list[str]
    ) -> CaptionSet:
        if len(array) != len(captions) or len(keys) != len(captions):
            raise ValueError(
                f"need one row and one key per captioned image, got {len(array)} rows, "
                f"{len(keys)} keys, {len(captions)} caption lists"
            )
        return cls(captions, keys, array=np.ascontiguousarray(array, dtype=np.float32))

    @classmethod
    def from_files(
        cls, records: list[CaptionRecord], image_size: int, channels: int = 3
    ) -> CaptionSet:
        return cls(
            [r.captions for r in records],
            [r.key for r in records],
            files=[r.image for r in records],
            file_lines=[r.where for r in records],
            image_size=image_size,
            channels=channels,
        )

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one input: ``(C, H, W)`` for images, ``(D,)``/``(S, D)`` for features."""
        if self.array is not None:
            return tuple(self.array.shape[1:])
        return (self.channels, self.image_size, self.image_size)

    def inputs(self, indices: Sequence[int]) -> Tensor:
        if self.array is not None:
            return torch.from_numpy(self.array[np.asarray(indices, dtype=np.int64)])
        loaded = [
            load_image(self.files[i], self.image_size, self.channels, where=self.file_lines[i])
            for i in indices
        ]
        return torch.from_numpy(np.stack(loaded))


def make_batch(images: Tensor, captions: list[list[int]]) -> dict[str, Tensor]:
    """A teacher-forcing batch from id sequences ``<start> w1 .. wn <end>``.

    Returns ``{"images": images, "inputs": (T, N), "targets": (T, N), "lengths": (N,)}`` with
    ``T = max n + 1``; inputs drop the last id and targets the first, padding is id 0.
    """
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images for {len(captions)} captions")
    lengths = torch.tensor([len(c) - 1 for c in captions], dtype=torch.long)
    if int(lengths.min()) < 1:
        raise ValueError("each caption needs at least the start and end ids")
    steps = int(lengths.max())
    inputs = torch.zeros(steps, len(captions), dtype=torch.long)
    targets = torch.zeros(steps, len(captions), dtype=torch.long)
    for j, c in enumerate(captions):
        ids = torch.as_tensor(c, dtype=torch.long)
        inputs[: len(c) - 1, j] = ids[:-1]
        targets[: len(c) - 1, j] = ids[1:]
    return {"images": images, "inputs": inputs, "targets": targets, "lengths": lengths}
