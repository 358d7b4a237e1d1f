"""Image captioning (MXNet Gluon's encoder-decoder example, the CS231n assignment, Show and Tell).

Data (:mod:`rnnkit.data.images`): the built-in digit strips (``data`` None; the training strips are
drawn afresh from the training digits each epoch), a COCO/Karpathy captions JSON or a Flickr8k token
file with an image folder (``images``), or precomputed features (``features``: ``.npy`` rows in the
order of the captions file's images, or ``.npz``/HDF5 with ``ids``). Karpathy's files carry their
split; other files are split by image with ``valid_fraction`` / ``test_fraction``.

Model: :mod:`.model`. Training: cross-entropy of the next word with teacher forcing, one example
per (image, caption) pair. Evaluation: the loss and perplexity, then every image of the split is
captioned (beam search of ``beam_size``, greedy when 1, :mod:`rnnkit.tasks.beam`) and scored
against all its references with corpus BLEU-1..4 (:mod:`rnnkit.tasks.text_metrics`) and exact
match.

Modules: :mod:`.config` (settings, presets), :mod:`.model` (encoders, decoder), :mod:`.data`
(splits, vocabulary, batches), :mod:`.plots`, :mod:`.task` (:class:`CaptioningTask`).
"""

from .config import PRESETS, RESNETS, CaptionConfig
from .data import END, PAD, SPECIALS, START, build_vocab
from .model import CaptionModel, Encoded, FeatureEncoder, ImageEncoder, SmallCNN, resnet_backbone
from .plots import plot_captions
from .task import CaptioningTask

__all__ = [
    "END",
    "PAD",
    "PRESETS",
    "RESNETS",
    "SPECIALS",
    "START",
    "CaptionConfig",
    "CaptionModel",
    "CaptioningTask",
    "Encoded",
    "FeatureEncoder",
    "ImageEncoder",
    "SmallCNN",
    "build_vocab",
    "plot_captions",
    "resnet_backbone",
]
