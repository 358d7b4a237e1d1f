"""The captioning model: an image encoder, an initial LSTM state from the image, an LSTM decoder.

Encoders (``(N, C, H, W)`` images, or precomputed features, to :class:`Encoded`):

- :class:`SmallCNN`: conv-BN-ReLU x 2 + max-pool blocks; the flattened map (which keeps where each
  digit of a strip is) gives the image vector, its cells the attention regions.
- :func:`resnet_backbone`: torchvision's ResNet without its classifier (``pretrained``: ImageNet
  weights; ``freeze``: no gradients and batch-norm statistics kept, Gluon's ``grad_req='null'``);
  the image vector is the mean over the final ``7x7`` map.
- :class:`FeatureEncoder`: precomputed features ``(N, D)`` (CS231n's fc7/PCA) or ``(N, S, D)``.

Decoder (Vinyals et al. 2015, "Show and Tell"; the CS231n assignment): ``h0 = tanh(W_h v)`` and,
with ``init_state='hc'``, ``c0 = tanh(W_c v)`` (``'h'``: ``c0 = 0``), then an rnnkit LSTM over the
word embeddings with teacher forcing and a linear softmax. With ``attention`` (Xu et al. 2015,
"Show, Attend and Tell", soft attention): at each step ``e_i = w^T tanh(W_a a_i + U_a h_{t-1})``,
``alpha = softmax(e)``, ``z_t = sum_i alpha_i a_i``; the LSTM cell reads ``[E y_{t-1}; z_t]`` and
the output layer ``[h_t; z_t]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...cells import LSTMCell
from ...decode import LayerStepper
from ...layers import LSTM
from .config import RESNETS, CaptionConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Encoded:
    """An encoded batch: ``vector (N, F)``; with attention ``regions (N, S, F)`` and their
    projections ``keys (N, S, A)`` (``W_a a_i``, computed once per image)."""

    vector: Tensor
    regions: Tensor | None = None
    keys: Tensor | None = None

    def repeat(self, k: int) -> Encoded:
        """Each row repeated ``k`` times (for ``k`` beams per image)."""

        def rep(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.repeat_interleave(k, dim=0)

        return Encoded(rep(self.vector), rep(self.regions), rep(self.keys))


class SmallCNN(nn.Module):
    """``(N, C, H, W) -> (N, C', H', W')``: blocks of two 3x3 conv-BN-ReLU and a 2x2 max-pool.

    Block ``b`` has ``channels * 2**b`` channels; the number of blocks halves the smaller side
    down to 2-3 pixels (at most 4 blocks): two for 8-pixel digit strips."""

    def __init__(self, in_channels: int, channels: int, image_hw: tuple[int, int]) -> None:
        super().__init__()
        side = min(image_hw)
        if side < 4:
            raise ValueError(f"images must be at least 4x4 for the CNN, got {image_hw}")
        blocks = min(4, max(1, int(math.log2(side / 2))))
        layers: list[nn.Module] = []
        c_in = in_channels
        for b in range(blocks):
            c = channels * 2**b
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]  # fmt: skip
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in
        self.out_hw = (image_hw[0] >> blocks, image_hw[1] >> blocks)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


class _FrozenBackbone(nn.Module):
    """A module whose parameters are fixed and which stays in eval mode (BN statistics kept)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> _FrozenBackbone:
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.module(x)


def resnet_backbone(name: str, pretrained: bool, freeze: bool) -> tuple[nn.Module, int]:
    """torchvision's ResNet ``name`` up to its last block: ``(module, output channels)``."""
    if name not in RESNETS:
        raise ValueError(f"encoder must be 'cnn' or one of {RESNETS}, got {name!r}")
    try:
        import torchvision
    except ImportError:
        raise ImportError(
            f"encoder {name!r} needs torchvision, which is not installed: "
            f"pip install torchvision (the release built for torch {torch.__version__}), "
            "or use --encoder cnn or --features FILE"
        ) from None
    try:
        net = getattr(torchvision.models, name)(weights="DEFAULT" if pretrained else None)
    except Exception as e:  # weights are downloaded on first use; offline this fails
        raise RuntimeError(
            f"could not build {name} (pretrained={pretrained}); torchvision downloads ImageNet "
            f"weights to ~/.cache/torch/hub on first use: {e}"
        ) from e
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         net.layer1, net.layer2, net.layer3, net.layer4)  # fmt: skip
    channels = net.fc.in_features
    return (_FrozenBackbone(body) if freeze else body), channels


class ImageEncoder(nn.Module):
    """Images to :class:`Encoded`, through the small CNN or a ResNet.

    ``channels``: the images' channels (a ResNet gets grey images repeated to RGB, and ImageNet
    normalisation)."""

    def __init__(self, cfg: CaptionConfig, channels: int, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.resnet = cfg.encoder != "cnn"
        f = cfg.feature_size
        if self.resnet:
            self.backbone, c = resnet_backbone(cfg.encoder, cfg.pretrained, cfg.freeze)
            self.to_vector = nn.Linear(c, f)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        else:
            self.backbone = SmallCNN(channels, cfg.cnn_channels, image_hw)
            c = self.backbone.out_channels
            h, w = self.backbone.out_hw
            self.to_vector = nn.Linear(c * h * w, f)
        self.to_regions = nn.Linear(c, f) if cfg.attention else None
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.resnet:
            if images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1)
            images = (images - self.mean) / self.std
        fmap = self.backbone(images)  # (N, C, h, w)
        cells = fmap.flatten(2).transpose(1, 2)  # (N, S, C)
        flat = cells.mean(1) if self.resnet else fmap.flatten(1)
        vector = self.drop(torch.relu(self.to_vector(flat)))
        regions = torch.relu(self.to_regions(cells)) if self.to_regions is not None else None
        return vector, regions


class FeatureEncoder(nn.Module):
    """Precomputed features ``(N, D)`` or ``(N, S, D)`` to :class:`Encoded`'s vector/regions."""

    def __init__(self, cfg: CaptionConfig, feature_shape: tuple[int, ...]) -> None:
        super().__init__()
        d = feature_shape[-1]
        if cfg.attention and len(feature_shape) != 2:
            raise ValueError(
                f"attention needs spatial features (N, S, D), got per-image shape {feature_shape}"
            )
        self.to_vector = nn.Linear(d, cfg.feature_size)
        self.to_regions = nn.Linear(d, cfg.feature_size) if cfg.attention else None
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, feats: Tensor) -> tuple[Tensor, Tensor | None]:
        flat = feats.mean(1) if feats.dim() == 3 else feats
        vector = self.drop(torch.relu(self.to_vector(flat)))
        regions = torch.relu(self.to_regions(feats)) if self.to_regions is not None else None
        return vector, regions


class CaptionModel(nn.Module):
    """Encoder -> initial state -> LSTM decoder (optionally with soft attention).

    ``forward(images, inputs (T, N), lengths (N,)) -> logits (T, N, V)`` (teacher forcing);
    ``encode`` + ``init_state`` + ``step`` decode one token at a time (state ``(h, c)``, each
    ``(L, N, H)``, batch dimension 1)."""

    def __init__(self, cfg: CaptionConfig, vocab_size: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if cfg.attention and cfg.num_layers != 1:
            raise ValueError(f"attention uses one LSTM layer, got num_layers={cfg.num_layers}")
        self.attention = cfg.attention
        self.hc = cfg.init_state == "hc"
        self.num_layers, self.hidden_size = cfg.num_layers, cfg.hidden_size
        if len(input_shape) == 3 and cfg.features is None:
            self.encoder: nn.Module = ImageEncoder(cfg, input_shape[0], input_shape[1:])
        else:
            self.encoder = FeatureEncoder(cfg, input_shape)
        f, e, h, layers = cfg.feature_size, cfg.embed_size, cfg.hidden_size, cfg.num_layers
        self.init_h = nn.Linear(f, layers * h)
        self.init_c = nn.Linear(f, layers * h) if self.hc else None
        self.embed = nn.Embedding(vocab_size, e)
        self.drop = nn.Dropout(cfg.dropout)
        if self.attention:
            self.att_keys = nn.Linear(f, cfg.attention_size)
            self.att_query = nn.Linear(h, cfg.attention_size, bias=False)
            self.att_score = nn.Linear(cfg.attention_size, 1)
            self.cell = LSTMCell(e + f, h)
            self.head = nn.Linear(h + f, vocab_size)
        else:
            self.rnn = LSTM(e, h, num_layers=layers,
                            dropout=cfg.dropout if layers > 1 else 0.0)  # fmt: skip
            self.head = nn.Linear(h, vocab_size)
        self._stepper: LayerStepper | None = None

    # ---- pieces
    def encode(self, images: Tensor) -> Encoded:
        vector, regions = self.encoder(images)
        keys = self.att_keys(regions) if self.attention else None
        return Encoded(vector, regions if self.attention else None, keys)

    def init_state(self, enc: Encoded) -> tuple[Tensor, Tensor]:
        n = enc.vector.shape[0]
        h0 = torch.tanh(self.init_h(enc.vector)).view(n, self.num_layers, -1).transpose(0, 1)
        if self.init_c is None:
            return h0.contiguous(), torch.zeros_like(h0).contiguous()
        c0 = torch.tanh(self.init_c(enc.vector)).view(n, self.num_layers, -1).transpose(0, 1)
        return h0.contiguous(), c0.contiguous()

    def attend(self, enc: Encoded, h: Tensor) -> tuple[Tensor, Tensor]:
        """``z (N, F)`` and weights ``alpha (N, S)`` for the query ``h (N, H)``."""
        scores = self.att_score(torch.tanh(enc.keys + self.att_query(h).unsqueeze(1))).squeeze(-1)
        alpha = torch.softmax(scores, dim=-1)
        return torch.bmm(alpha.unsqueeze(1), enc.regions).squeeze(1), alpha

    def _attention_step(
        self, enc: Encoded, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state[0][0], state[1][0]
        z, _ = self.attend(enc, h)
        h, c = self.cell(torch.cat([x, z], dim=-1), (h, c))
        logits = self.head(self.drop(torch.cat([h, z], dim=-1)))
        return logits, (h.unsqueeze(0), c.unsqueeze(0))

    # ---- teacher forcing
    def forward(self, images: Tensor, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        enc = self.encode(images)
        state = self.init_state(enc)
        x = self.drop(self.embed(inputs))  # (T, N, E)
        if not self.attention:
            out, _ = self.rnn(x, state, lengths=lengths)  # (T, N, H)
            return self.head(self.drop(out))  # (T, N, V)
        logits = []
        for t in range(x.shape[0]):
            step_logits, state = self._attention_step(enc, x[t], state)
            logits.append(step_logits)
        return torch.stack(logits)

    # ---- decoding
    @torch.no_grad()
    def step(
        self, enc: Encoded, tokens: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One decoding step (evaluation semantics): ``tokens (B,)`` -> ``logits (B, V)``."""
        x = self.embed(tokens)
        if self.attention:
            return self._attention_step(enc, x, state)
        if self._stepper is None or self.training:
            self._stepper = LayerStepper(self.rnn)
        out, state = self._stepper.step(x, state)
        return self.head(out), state

    def train(self, mode: bool = True) -> CaptionModel:
        self._stepper = None  # weights may change while training
        return super().train(mode)
