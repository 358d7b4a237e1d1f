"""Captions files as :class:`CaptionRecord` s: COCO's ``captions_*.json`` (``images`` +
``annotations``), Karpathy's ``dataset_*.json`` (``images`` with ``sentences`` and ``split``), or
Flickr8k's ``Flickr8k.token.txt`` (``name.jpg#k<TAB>caption``); :func:`tokenize_caption`.

Errors name the file and, where there is one, the line. The images and features they refer to are
read by :mod:`rnnkit.data.images`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CaptionRecord", "read_captions", "tokenize_caption"]

log = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass
class CaptionRecord:
    """One image and its captions.

    Attributes:
        image: the image's path (``image_dir / file name``) as a string.
        key: the name the image goes by in the captions file (file name, or COCO id as a string).
        captions: tokenised captions.
        lines: for each caption, ``"file:line"`` where it was read (for error messages).
        split: 'train', 'valid' or 'test' when the file says (Karpathy's format), else None.
        where: ``"file:line"`` where the image is named.
    """

    image: str
    key: str
    captions: list[list[str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    split: str | None = None
    where: str = ""


def tokenize_caption(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (``"A dog's toy."`` -> ``["a", "dog's", "toy"]``)."""
    return _WORD.findall(text.lower())


def read_captions(
    path: str | Path, image_dir: str | Path | None = None, check_images: bool = True
) -> list[CaptionRecord]:
    """Read a captions file (COCO or Karpathy JSON by a ``.json`` suffix, else Flickr8k tokens).

    ``image_dir`` defaults to the captions file's folder. Images are listed in file order. With
    ``check_images`` every referenced image must exist: a missing one is a FileNotFoundError naming
    the captions file, the line and the image path (off for precomputed features).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: captions file not found")
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    if check_images and not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: image folder not found (for {path})")
    if path.suffix.lower() == ".json":
        records = _read_json(path, image_dir)
    else:
        records = _read_flickr(path, image_dir)
    empty = [r for r in records if not r.captions]
    if empty:
        log.info("%s: %d images without captions left out", path, len(empty))
        records = [r for r in records if r.captions]
    if not records:
        raise ValueError(f"{path}: no captioned images found")
    for r in records:
        if check_images and not Path(r.image).is_file():
            raise FileNotFoundError(f"{r.where or path}: image {r.key!r} not found at {r.image}")
    log.info("%s: %d images, %d captions", path, len(records),
             sum(len(r.captions) for r in records))  # fmt: skip
    return records


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of ``needle`` in ``text`` (1 when absent)."""
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def _read_json(path: Path, image_dir: Path) -> list[CaptionRecord]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(
            f"{path}: expected a JSON object with an 'images' list (COCO or Karpathy format)"
        )
    if "annotations" in data:
        return _read_coco(path, text, data, image_dir)
    return _read_karpathy(path, text, data, image_dir)


def _read_coco(path: Path, text: str, data: dict, image_dir: Path) -> list[CaptionRecord]:
    by_id: dict[object, CaptionRecord] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise ValueError(f"{path}: images[{i}] needs 'id' and 'file_name', got {img!r}")
        line = _line_of(text, json.dumps(img["file_name"]))
        rec = CaptionRecord(str(image_dir / img["file_name"]), str(img["file_name"]))
        rec.where = f"{path}:{line}"
        by_id[img["id"]] = rec
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            raise ValueError(
                f"{path}: annotations[{i}] needs 'image_id' and 'caption', got {ann!r}"
            )
        rec = by_id.get(ann["image_id"])
        line = _line_of(text, json.dumps(ann["caption"]))
        if rec is None:
            raise ValueError(
                f"{path}:{line}: annotations[{i}] refers to image_id {ann['image_id']!r}, which is "
                "not in 'images'"
            )
        rec.captions.append(tokenize_caption(ann["caption"]))
        rec.lines.append(f"{path}:{line}")
    return list(by_id.values())


_KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "valid", "test": "test"}


def _read_karpathy(path: Path, text: str, data: dict, image_dir: Path) -> list[CaptionRecord]:
    records = []
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "filename" not in img or "sentences" not in img:
            raise ValueError(
                f"{path}: images[{i}] needs 'filename' and 'sentences' (Karpathy format), "
                f"got keys {sorted(img) if isinstance(img, dict) else img!r}"
            )
        line = f"{path}:{_line_of(text, json.dumps(img['filename']))}"
        sub = image_dir / img.get("filepath", "") / img["filename"]
        split = _KARPATHY_SPLITS.get(img.get("split", ""), None)
        rec = CaptionRecord(str(sub), str(img["filename"]), split=split, where=line)
        for s in img["sentences"]:
            tokens = s.get("tokens") if isinstance(s, dict) else None
            tokens = [t.lower() for t in tokens] if tokens else tokenize_caption(s.get("raw", ""))
            rec.captions.append(tokens)
            rec.lines.append(line)
        records.append(rec)
    return records


def _read_flickr(path: Path, image_dir: Path) -> list[CaptionRecord]:
    by_name: dict[str, CaptionRecord] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            name, sep, caption = line.rstrip("\n").partition("\t")
            if not sep:
                raise ValueError(
                    f"{path}:{lineno}: expected 'IMAGE#N<TAB>caption' (Flickr8k token format), "
                    f"got {line.strip()[:60]!r}"
                )
            name = name.split("#")[0].strip()
            rec = by_name.get(name)
            if rec is None:
                rec = CaptionRecord(str(image_dir / name), name, where=f"{path}:{lineno}")
                by_name[name] = rec
            rec.captions.append(tokenize_caption(caption))
            rec.lines.append(f"{path}:{lineno}")
    return list(by_name.values())
