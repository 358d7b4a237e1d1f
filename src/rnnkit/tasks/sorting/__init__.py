"""Sorting with a bidirectional LSTM (MXNet's ``example/bi-lstm-sort``).

Input: a sequence of integers; output at each position ``i``: the element that belongs at ``i`` in
sorted order, a classification over the vocabulary per position. The model is an embedding, a
bidirectional rnnkit LSTM/GRU over the whole sequence (variable lengths through ``lengths=``,
batches of similar lengths through :class:`rnnkit.data.BucketSampler`), and a linear layer per
position.

Encodings (:mod:`rnnkit.data.synthetic`): ``tokens`` (one token per number, the issue's vocabulary
100, lengths 5-10 setting) and ``chars`` (MXNet's notebook: five numbers in 0-998 written as one
string over digits and space, padded to 19 characters, sorted number-wise and predicted character
by character).

Evaluation: per-token accuracy and whole-sequence exact match; on the built-in test split also the
probe sets: longer sequences (``gen_*``, lengths ``gen_min_len``-``gen_max_len``) for tokens, and
for chars the two cases MXNet's model failed on (``one_digit_*``: five numbers below 10;
``six_numbers_*``: six numbers).

Modules: :mod:`.config` (settings, presets), :mod:`.model`, :mod:`.data` (encodings, splits,
batches), :mod:`.plots`, :mod:`.task` (:class:`SortingTask`).
"""

from .config import PRESETS, SortConfig
from .data import IGNORE, SortSet, sorted_targets
from .model import SortNet
from .plots import plot_accuracy_by_length
from .task import SortingTask

__all__ = [
    "IGNORE",
    "PRESETS",
    "SortConfig",
    "SortNet",
    "SortSet",
    "SortingTask",
    "plot_accuracy_by_length",
    "sorted_targets",
]
