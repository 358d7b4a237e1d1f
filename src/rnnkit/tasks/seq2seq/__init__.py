"""Sequence-to-sequence learning with an encoder-decoder of rnnkit layers (Sutskever et al. 2014).

Encoder: embedding -> (bi)LSTM/GRU over the padded source (``lengths=``). Decoder: embedding ->
LSTM/GRU -> linear softmax, started from the encoder's final state according to ``handoff``
(``hc``, ``h`` or ``none``), with ``luong`` or ``bahdanau`` attention or none (:mod:`.model`).
Training uses teacher forcing; ``scheduled_sampling`` p feeds the model's own previous argmax
instead of the reference token with probability p per step and example (Bengio et al. 2015).
Decoding is greedy or beam search (:mod:`rnnkit.tasks.beam`). Data: :mod:`rnnkit.data.dates`
(date normalisation, digit reversal) or a ``source<TAB>target`` file.

Modules: :mod:`.config` (settings, presets), :mod:`.model`, :mod:`.data` (splits, vocabulary,
batches), :mod:`.plots`, :mod:`.task` (:class:`Seq2SeqTask`).
"""

from .config import PRESETS, Seq2SeqConfig
from .data import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, UNK, UNK_ID, PairSet
from .model import Seq2Seq
from .task import Seq2SeqTask

__all__ = [
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "PAD",
    "PAD_ID",
    "PRESETS",
    "SPECIALS",
    "UNK",
    "UNK_ID",
    "PairSet",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqTask",
]
