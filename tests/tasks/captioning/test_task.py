"""Captioning: decoding, CS231n's overfit check, user data, features, predict, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.tasks.beam import greedy_search
from rnnkit.tasks.captioning import PRESETS, CaptionConfig, CaptioningTask
from rnnkit.train import Trainer, TrainerConfig


def tiny_cfg(**kw) -> CaptionConfig:
    return CaptionConfig(**{**PRESETS["tiny"][0], **kw})


@pytest.fixture(scope="module")
def digits():
    return CaptioningTask(tiny_cfg())


def trainer_cfg(**kw) -> TrainerConfig:
    base = dict(optimizer="adam", lr=1e-2, progress=False, device="cpu", log_every=1000)
    return TrainerConfig(**{**base, **kw})


def test_beam_of_one_is_greedy_and_captions_are_words(digits):
    torch.manual_seed(1)
    model = digits.build_model().eval()
    images = digits.split_set("test").inputs(list(range(8)))
    caps = digits.caption_images(model, images, beam_size=1)
    enc = model.encode(images)
    start, end = digits.vocab.stoi["<start>"], digits.vocab.stoi["<end>"]
    max_len = digits.cfg.max_caption_len
    greedy = greedy_search(digits.step_fn(model, enc), model.init_state(enc), start, end,
                           max_len + 1, state_batch_dim=1)  # fmt: skip
    assert caps == [[digits.vocab.tokens[t] for t in h.tokens[:max_len]] for h in greedy]
    wide = digits.caption_images(model, images, beam_size=3)
    assert len(wide) == 8 and all(len(c) <= max_len for c in wide)
    assert not {"<pad>", "<start>", "<end>"} & {w for c in caps + wide for w in c}


def test_cs231n_overfit_50_examples():
    """CS231n's sanity check: the model memorises 50 training captions (loss < 0.1)."""
    small = dict(num_train=50, resample_train=False, num_valid=10, num_test=10, batch_size=25,
                 cnn_channels=16, feature_size=128, hidden_size=128)  # fmt: skip
    task = CaptioningTask(tiny_cfg(**small))
    trainer = Trainer(task, trainer_cfg(epochs=100, lr=3e-3, log_every=10))
    result = trainer.fit()
    assert result["train"]["loss"] < 0.1, result["train"]  # the last 10 steps
    data = task.split_set("train")
    generated = task.caption_images(trainer.model, data.inputs(range(50)))
    assert sum(g in refs for g, refs in zip(generated, data.captions)) >= 45


def test_end_to_end_on_digits_with_evaluate_and_predict(tmp_path):
    task = CaptioningTask(tiny_cfg(attention=True))
    trainer = Trainer(task, trainer_cfg(epochs=2, out_dir=str(tmp_path / "run")))
    result = trainer.fit()
    valid = result["valid"]
    assert {"loss", "ppl", "bleu1", "bleu2", "bleu3", "bleu4", "exact_match"} <= set(valid)
    assert 0 <= valid["bleu4"] <= valid["bleu1"] <= 1
    model = trainer.model
    lines = task.predict(model, [], out_dir=tmp_path)
    assert len(lines) == 17 and lines[-1].endswith("captions.png")
    assert (tmp_path / "captions.png").stat().st_size > 1000
    # an image file gives the caption of the same strip held in memory
    strip = task.split_set("test").inputs([3])[0, 0].numpy()
    Image.fromarray(np.round(strip * 255).astype(np.uint8)).save(tmp_path / "strip.png")
    by_file = task.predict(model, [str(tmp_path / "strip.png"), "test-3"])
    assert by_file[0].split("\t")[1] == by_file[1].split("\t")[1] == lines[3].split("\t")[1]
    with pytest.raises(FileNotFoundError, match="no-such.png: no such image file"):
        task.predict(model, ["no-such.png"])


def write_coco(tmp_path, n=12, extra_caption=None):
    colors = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
    images, anns = [], []
    for i in range(n):
        name = list(colors)[i % 3]
        Image.new("RGB", (20, 16), colors[name]).save(tmp_path / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png"})
        anns.append({"image_id": i, "caption": f"A {name} picture."})
        anns.append({"image_id": i, "caption": f"It is {name}"})
    if extra_caption:
        anns.append({"image_id": 0, "caption": extra_caption})
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}, indent=1))
    return path


def test_coco_images_end_to_end(tmp_path):
    path = write_coco(tmp_path)
    task = CaptioningTask(tiny_cfg(data=str(path), image_size=8, valid_fraction=0.25,
                                   test_fraction=0.25))  # fmt: skip
    assert [len(task.split_set(s)) for s in ("train", "valid", "test")] == [6, 3, 3]
    assert task.input_shape == (3, 8, 8)
    assert {"a", "picture", "it", "is"} <= set(task.vocab.tokens)
    trainer = Trainer(task, trainer_cfg(epochs=3))
    result = trainer.fit()
    assert "bleu4" in result["valid"]
    key = task.split_set("test").keys[0]
    line = task.predict(trainer.model, [key])[0]
    assert line.startswith(f"{key}\t")
    again = CaptioningTask.from_state(task.state_dict())
    assert again.vocab == task.vocab and again.cfg == task.cfg


def test_caption_longer_than_the_maximum_names_its_line(tmp_path):
    path = write_coco(tmp_path, n=3, extra_caption="one two three four five six")
    text = path.read_text()
    line = text[: text.index("one two three")].count("\n") + 1
    with pytest.raises(ValueError, match=rf"captions.json:{line}: caption of 6 words is longer "
                                         "than max_caption_len=5"):  # fmt: skip
        CaptioningTask(tiny_cfg(data=str(path), max_caption_len=5))


@pytest.mark.parametrize("spatial", [False, True])
def test_precomputed_features(tmp_path, spatial):
    path = write_coco(tmp_path, n=9)
    rng = np.random.default_rng(0)
    shape = (9, 4, 6) if spatial else (9, 6)
    ids = np.array([f"{i}.png" for i in range(9)])[::-1]  # rows in another order, matched by id
    feats = rng.normal(size=shape).astype(np.float32)
    np.savez(tmp_path / "feats.npz", features=feats, ids=ids)
    for i in range(9):  # features stand in for the images, which need not exist
        (tmp_path / f"{i}.png").unlink()
    cfg = tiny_cfg(data=str(path), features=str(tmp_path / "feats.npz"), attention=spatial,
                   valid_fraction=0.2, test_fraction=0.2)  # fmt: skip
    task = CaptioningTask(cfg)
    assert task.input_shape == shape[1:]
    data = task.split_set("train")
    row = list(ids).index(data.keys[0])
    np.testing.assert_array_equal(data.inputs([0])[0].numpy(), feats[row])
    result = Trainer(task, trainer_cfg(epochs=2)).fit()
    assert np.isfinite(result["valid"]["loss"])
    np.save(tmp_path / "short.npy", feats[:5])
    with pytest.raises(ValueError, match=r"short.npy: 5 feature rows for 9 images"):
        CaptioningTask(tiny_cfg(data=str(path), features=str(tmp_path / "short.npy")))


def test_attention_needs_spatial_features(tmp_path):
    path = write_coco(tmp_path, n=3)
    np.save(tmp_path / "f.npy", np.zeros((3, 5), dtype=np.float32))
    task = CaptioningTask(tiny_cfg(data=str(path), features=str(tmp_path / "f.npy"),
                                   attention=True))  # fmt: skip
    with pytest.raises(ValueError, match=r"attention needs spatial features \(N, S, D\)"):
        task.build_model()


def test_config_errors():
    with pytest.raises(ValueError, match="init_state must be 'h' or 'hc'"):
        CaptionConfig(init_state="c")
    with pytest.raises(ValueError, match="encoder must be 'cnn' or one of"):
        CaptionConfig(encoder="vgg16")
    with pytest.raises(ValueError, match="features needs the captions file too"):
        CaptionConfig(features="f.npy")
    with pytest.raises(ValueError, match="pretrained/freeze apply to a ResNet encoder"):
        CaptionConfig(freeze=True)
    with pytest.raises(ValueError, match="attention uses one LSTM layer"):
        CaptioningTask(tiny_cfg(attention=True, num_layers=2)).build_model()


def test_shard_splits_images_by_row_and_captions_by_column(digits):
    batch = digits.batches("valid", 0)[0]
    n = batch["images"].shape[0] // 2 * 2
    batch = {k: (v[:n] if k in ("images", "lengths") else v[:, :n]) for k, v in batch.items()}
    part = digits.shard(batch, 1, 2)
    torch.testing.assert_close(part["images"], batch["images"][n // 2 :])
    torch.testing.assert_close(part["inputs"], batch["inputs"][:, n // 2 :])
    torch.testing.assert_close(part["lengths"], batch["lengths"][n // 2 :])
