"""Character- and word-level language models (char-rnn, Zaremba et al. 2014, AWD-LSTM).

Model: embedding -> locked dropout -> rnnkit LSTM/GRU/RNN (any option) -> locked dropout -> linear
softmax, optionally tied to the embedding (Press & Wolf 2017; Inan et al. 2017). Trained with
truncated BPTT over ``batch_size`` parallel columns of the token stream (``rnnkit.data``).

Modules: :mod:`.config` (settings, presets), :mod:`.model`, :mod:`.task` (:class:`LanguageModelTask`:
corpus, TBPTT batches, perplexity and bits per character, sampling).
"""

from .config import PRESETS, LMConfig
from .model import RNNLanguageModel
from .task import LanguageModelTask

__all__ = ["PRESETS", "LMConfig", "LanguageModelTask", "RNNLanguageModel"]
