"""The captioning model: decoder consistency, ResNet encoders."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from rnnkit.tasks.captioning import PRESETS, CaptionConfig, CaptioningTask, CaptionModel


def tiny_cfg(**kw) -> CaptionConfig:
    return CaptionConfig(**{**PRESETS["tiny"][0], **kw})


@pytest.fixture(scope="module")
def digits():
    return CaptioningTask(tiny_cfg())


@pytest.mark.parametrize(
    "kw",
    [dict(init_state="hc"), dict(init_state="h", num_layers=2), dict(attention=True)],
)
def test_step_decoding_equals_teacher_forcing(digits, kw):
    """Feeding the reference words one at a time through ``step`` gives the forward's logits."""
    torch.manual_seed(0)
    model = CaptionModel(tiny_cfg(**kw), len(digits.vocab), digits.input_shape).double().eval()
    batch = digits.batches("valid", 0)[0]
    images = batch["images"].double()
    logits = model(images, batch["inputs"], batch["lengths"])
    enc = model.encode(images)
    state = model.init_state(enc)
    if kw.get("init_state") == "h":
        assert not state[1].any() and state[0].shape[0] == 2
    else:
        assert state[1].abs().sum() > 0
    for t in range(batch["inputs"].shape[0]):
        step_logits, state = model.step(enc, batch["inputs"][t], state)
        valid = batch["lengths"] > t
        torch.testing.assert_close(step_logits[valid], logits[t][valid], atol=1e-10, rtol=0)


def fake_torchvision(monkeypatch):
    """A stand-in for torchvision.models.resnet18 (the real one is not installed here)."""

    def resnet18(weights=None):
        net = types.SimpleNamespace(
            conv1=nn.Conv2d(3, 4, 3, stride=2, padding=1), bn1=nn.BatchNorm2d(4), relu=nn.ReLU(),
            maxpool=nn.MaxPool2d(2), layer1=nn.Identity(), layer2=nn.Identity(),
            layer3=nn.Conv2d(4, 8, 1), layer4=nn.BatchNorm2d(8), fc=nn.Linear(8, 1000),
        )  # fmt: skip
        net.weights = weights
        return net

    module = types.ModuleType("torchvision")
    module.models = types.SimpleNamespace(resnet18=resnet18)
    monkeypatch.setitem(sys.modules, "torchvision", module)


def test_resnet_encoder_frozen_like_grad_req_null(monkeypatch):
    fake_torchvision(monkeypatch)
    task = CaptioningTask(tiny_cfg(encoder="resnet18", pretrained=True, freeze=True, num_train=8))
    model = task.build_model().train()
    backbone = model.encoder.backbone
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.module[1].training  # batch norm keeps its statistics
    batch = task.batches("train", 0)[0]
    loss, _, _ = task.loss(model, batch, None)
    loss.backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert model.encoder.to_vector.weight.grad is not None
    unfrozen = CaptioningTask(tiny_cfg(encoder="resnet18", num_train=8)).build_model()
    assert all(p.requires_grad for p in unfrozen.encoder.backbone.parameters())


def test_resnet_without_torchvision_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails
    task = CaptioningTask(tiny_cfg(encoder="resnet50", num_train=8))
    with pytest.raises(ImportError, match="needs torchvision.*pip install torchvision"):
        task.build_model()
