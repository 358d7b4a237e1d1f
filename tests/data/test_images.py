"""Captioning data: digit strips, caption files (COCO, Karpathy, Flickr8k), images, features."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.data.captions import read_captions, tokenize_caption
from rnnkit.data.images import (
    DIGIT_WORDS,
    CaptionSet,
    digit_pools,
    digit_strips,
    load_image,
    make_batch,
    read_features,
)


@pytest.fixture(scope="module")
def pools():
    return digit_pools(seed=0)


def test_digit_pools_partition_the_digits_by_class(pools):
    from sklearn.datasets import load_digits

    raw = (load_digits().images / 16.0).astype(np.float32)
    sizes = {k: len(v[0]) for k, v in pools.items()}
    assert sum(sizes.values()) == len(raw)
    assert sizes["train"] > sizes["test"] > sizes["valid"]
    # the pools together hold every sample exactly once (a partition: disjoint samples)
    pooled = sorted(img.tobytes() for imgs, _ in pools.values() for img in imgs)
    assert pooled == sorted(img.tobytes() for img in raw)
    for imgs, labels in pools.values():
        assert set(labels.tolist()) == set(range(10))  # stratified
        assert imgs.shape[1:] == (8, 8) and 0.0 <= imgs.min() and imgs.max() <= 1.0


def test_digit_strips_show_their_captions(pools):
    imgs, labels = pools["test"]
    strips, caps = digit_strips((imgs, labels), 40, 2, 4, max_gap=0, seed=3)
    assert strips.shape == (40, 1, 8, 32) and strips.dtype == np.float32
    assert {len(c) for c in caps} == {2, 3, 4}
    for strip, cap in zip(strips, caps):
        for k, word in enumerate(cap):
            slot = strip[0, :, 8 * k : 8 * k + 8]
            match = [i for i in range(len(imgs)) if np.array_equal(imgs[i], slot)]
            assert match and DIGIT_WORDS[labels[match[0]]] == word
        assert not strip[0, :, 8 * len(cap) :].any()  # blank after the last digit
    again, caps2 = digit_strips((imgs, labels), 40, 2, 4, max_gap=0, seed=3)
    assert np.array_equal(strips, again) and caps == caps2


def test_digit_strip_gaps_keep_digits_inside(pools):
    strips, caps = digit_strips(pools["train"], 50, 5, 5, max_gap=2, seed=0)
    assert strips.shape[-1] == 50
    ink = strips.sum(axis=(1, 2))  # (N, W)
    assert (ink[:, :8].sum(1) > 0).all()


def png(path, color, size=(12, 10)):
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def coco(tmp_path):
    png(tmp_path / "a.png", (255, 0, 0))
    png(tmp_path / "b.png", (0, 0, 255))
    data = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "annotations": [
            {"image_id": 1, "caption": "A red square."},
            {"image_id": 2, "caption": "A blue square!"},
            {"image_id": 1, "caption": "Something RED"},
        ],
    }
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path, data


def test_read_coco_captions(coco):
    path, _ = coco
    recs = read_captions(path)
    assert [r.key for r in recs] == ["a.png", "b.png"]
    assert recs[0].captions == [["a", "red", "square"], ["something", "red"]]
    assert recs[1].captions == [["a", "blue", "square"]]
    assert recs[0].image == str(path.parent / "a.png") and recs[0].split is None
    assert all(line.startswith(f"{path}:") for line in recs[0].lines)


def test_coco_errors_name_file_line_and_image(coco):
    path, data = coco
    (path.parent / "b.png").unlink()
    text = path.read_text()
    line = text[: text.index('"b.png"')].count("\n") + 1
    with pytest.raises(FileNotFoundError, match=rf"captions.json:{line}: image 'b.png' not found"):
        read_captions(path)
    png(path.parent / "b.png", (0, 0, 0))
    data["annotations"].append({"image_id": 7, "caption": "ghost"})
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"captions.json:\d+: annotations\[3\] refers to image_id 7"
    ):
        read_captions(path)
    path.write_text('{"images": [\n  {"id": 1,,}]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"captions.json:2: not valid JSON"):
        read_captions(path)


def test_read_karpathy_splits(tmp_path):
    (tmp_path / "val2014").mkdir()
    for name in ("x.png", "y.png", "z.png"):
        png(tmp_path / "val2014" / name, (9, 9, 9))
    images = [
        {"filepath": "val2014", "filename": "x.png", "split": "restval",
         "sentences": [{"tokens": ["A", "cat"], "raw": "A cat."}]},
        {"filepath": "val2014", "filename": "y.png", "split": "val",
         "sentences": [{"raw": "Two dogs, running."}]},
        {"filepath": "val2014", "filename": "z.png", "split": "test", "sentences": []},
    ]  # fmt: skip
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images}), encoding="utf-8")
    recs = read_captions(path)
    assert [(r.key, r.split) for r in recs] == [("x.png", "train"), ("y.png", "valid")]
    assert recs[0].captions == [["a", "cat"]] and recs[1].captions == [["two", "dogs", "running"]]


def test_read_flickr8k_tokens(tmp_path):
    png(tmp_path / "1.jpg", (1, 2, 3))
    png(tmp_path / "2.jpg", (3, 2, 1))
    path = tmp_path / "Flickr8k.token.txt"
    path.write_text(
        "1.jpg#0\tA dog runs .\n1.jpg#1\tThe dog is running\n\n2.jpg#0\tA man's hat\n",
        encoding="utf-8",
    )
    recs = read_captions(path)
    assert [r.key for r in recs] == ["1.jpg", "2.jpg"]
    assert recs[0].captions == [["a", "dog", "runs"], ["the", "dog", "is", "running"]]
    assert recs[1].captions == [["a", "man's", "hat"]] and recs[1].lines == [f"{path}:4"]
    path.write_text("1.jpg#0\tok\n3.jpg#0\tmissing image\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"Flickr8k.token.txt:2: image '3.jpg' not found"):
        read_captions(path)
    path.write_text("1.jpg#0\tok\n1.jpg#1 no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"Flickr8k.token.txt:2: expected 'IMAGE#N<TAB>caption'"):
        read_captions(path)


def test_tokenize_caption():
    assert tokenize_caption("A dog's  toy, on the mat.") == [
        "a",
        "dog's",
        "toy",
        "on",
        "the",
        "mat",
    ]


def test_load_image_and_unreadable_files(tmp_path):
    img = np.zeros((20, 30, 3), dtype=np.uint8)
    img[:, :, 0] = 255
    Image.fromarray(img).save(tmp_path / "red.png")
    arr = load_image(tmp_path / "red.png", 16)
    assert arr.shape == (3, 16, 16) and arr.dtype == np.float32
    assert np.allclose(arr[0], 1.0) and np.allclose(arr[1:], 0.0)
    grey = load_image(tmp_path / "red.png", (8, 12), channels=1)
    assert grey.shape == (1, 8, 12) and 0 < grey.max() < 1
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(
        ValueError, match=r"bad.png: cannot read image \(referred to at cap.txt:3\)"
    ):
        load_image(tmp_path / "bad.png", 8, where="cap.txt:3")


def test_read_features_formats(tmp_path):
    feats = np.arange(24, dtype=np.float64).reshape(4, 6)
    np.save(tmp_path / "f.npy", feats)
    got, ids = read_features(tmp_path / "f.npy")
    assert got.dtype == np.float32 and np.array_equal(got, feats) and ids is None
    np.savez(
        tmp_path / "f.npz", features=feats.reshape(4, 2, 3), ids=np.array(["a", "b", "c", "d"])
    )
    got, ids = read_features(tmp_path / "f.npz")
    assert got.shape == (4, 2, 3) and ids == ["a", "b", "c", "d"]
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["fc7"] = feats
        f["ids"] = np.array([b"w", b"x", b"y", b"z"])
    got, ids = read_features(tmp_path / "f.h5")
    assert np.array_equal(got, feats) and ids == ["w", "x", "y", "z"]


def test_read_features_errors(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"v.npy: features must be a numeric array \(N, D\)"):
        read_features(tmp_path / "v.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"two.npz: expected an array named 'features'"):
        read_features(tmp_path / "two.npz")
    np.savez(tmp_path / "ids.npz", features=np.zeros((3, 2)), ids=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"ids.npz: 2 ids for 3 feature rows"):
        read_features(tmp_path / "ids.npz")
    (tmp_path / "f.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"f.csv: features must be .npy, .npz, .h5"):
        read_features(tmp_path / "f.csv")
    with pytest.raises(FileNotFoundError, match="missing.npy: features file not found"):
        read_features(tmp_path / "missing.npy")


def test_make_batch_shifts_and_pads():
    batch = make_batch(torch.zeros(2, 1, 4, 4), [[1, 7, 8, 2], [1, 9, 2]])
    assert batch["inputs"].T.tolist() == [[1, 7, 8], [1, 9, 0]]
    assert batch["targets"].T.tolist() == [[7, 8, 2], [9, 2, 0]]
    assert batch["lengths"].tolist() == [3, 2]
    with pytest.raises(ValueError, match="2 images for 1 captions"):
        make_batch(torch.zeros(2, 1, 4, 4), [[1, 2]])


def test_caption_set_reads_files_on_demand(coco):
    path, _ = coco
    recs = read_captions(path)
    data = CaptionSet.from_files(recs, image_size=6)
    assert len(data) == 2 and data.item_shape == (3, 6, 6)
    x = data.inputs([1, 0])
    assert x.shape == (2, 3, 6, 6)
    assert torch.allclose(x[0, 2], torch.ones(6, 6)) and torch.allclose(x[1, 0], torch.ones(6, 6))
    (path.parent / "a.png").write_text("corrupted")
    with pytest.raises(
        ValueError, match=r"a.png: cannot read image \(referred to at .*captions.json"
    ):
        data.inputs([0])
