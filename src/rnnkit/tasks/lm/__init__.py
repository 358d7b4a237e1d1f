"""Character- and word-level language models (char-rnn, Zaremba et al. 2014, AWD-LSTM).

Model: embedding -> locked dropout -> rnnkit LSTM/GRU/RNN (any option) -> locked dropout -> linear
softmax, optionally tied to the embedding (Press & Wolf 2017; Inan et al. 2017). Trained with
truncated BPTT over ``batch_size`` parallel columns of the token stream (``rnnkit.data``).

Modules: :mod:`.config` (settings, presets), :mod:`.model`, :mod:`.task` (:class:`LanguageModelTask`:
corpus, TBPTT batches, perplexity and bits per character, sampling); evaluation that adapts while it
reads: :mod:`.dynamic` (dynamic evaluation, Krause et al. 2018), :mod:`.cache` (the continuous
cache, Grave et al. 2017) and :mod:`.online_eval` (the pass over a split that uses them, mixed or
not with :mod:`.ngram`, the Kneser-Ney n-gram of the training split).
"""

from .cache import CacheConfig, NeuralCache
from .config import PRESETS, LMConfig
from .dynamic import DynamicEvalConfig, DynamicUpdater
from .model import RNNLanguageModel
from .online_eval import evaluate_online
from .task import LanguageModelTask

__all__ = [
    "PRESETS",
    "CacheConfig",
    "DynamicEvalConfig",
    "DynamicUpdater",
    "LMConfig",
    "LanguageModelTask",
    "NeuralCache",
    "RNNLanguageModel",
    "evaluate_online",
]
