"""Data for recurrent models: vocabularies, corpora, truncated-BPTT batching, padding, bucketing.

This sub-package imports only torch, numpy and the standard library (nothing else of rnnkit).

- :mod:`.text`: :class:`Vocab`, :func:`tokenize`, :func:`build_char_vocab`,
  :func:`build_word_vocab`.
- :mod:`.corpus`: :class:`Corpus`, :func:`load_corpus` (the train/valid/test split rule),
  :func:`default_corpus` (Python standard-library sources, no download).
- :mod:`.batching`: :func:`batchify`, :func:`bptt_windows`, :func:`get_window`,
  :class:`TBPTTStream`, :func:`shard_columns`.
- :mod:`.sequences`: :func:`pad_sequences`, :class:`BucketSampler`.
- :mod:`.wordtext`: :func:`detokenize` (WikiText/PTB tokens to readable text), :func:`retokenize`.
"""

from .batching import TBPTTStream, batchify, bptt_windows, get_window, shard_columns
from .corpus import Corpus, corpus_from_text, default_corpus, load_corpus, read_text, split_text
from .sequences import BucketSampler, pad_sequences
from .text import EOS, UNK, Vocab, build_char_vocab, build_word_vocab, check_level, tokenize
from .wordtext import detokenize, retokenize

__all__ = [
    "EOS",
    "UNK",
    "BucketSampler",
    "Corpus",
    "TBPTTStream",
    "Vocab",
    "batchify",
    "bptt_windows",
    "build_char_vocab",
    "build_word_vocab",
    "check_level",
    "corpus_from_text",
    "default_corpus",
    "detokenize",
    "get_window",
    "load_corpus",
    "pad_sequences",
    "read_text",
    "retokenize",
    "shard_columns",
    "split_text",
    "tokenize",
]
