"""The settings every task shares: the cell from the registry, sizes, layer options, saved state."""

from __future__ import annotations

import dataclasses
import re

import pytest

import rnnkit
from rnnkit.tasks.base import config_from_state, import_tasks
from rnnkit.tasks.cells import projects, recurrent_layer
from rnnkit.tasks.config import CellConfig, ModelConfig, VariantConfig
from rnnkit.tasks.lm import LMConfig
from rnnkit.tasks.splits import split_by_position


def test_each_task_offers_its_cells_by_registry_name():
    configs = {name: cls.Config for name, cls in import_tasks().items()}
    offered = {name: getattr(cfg, "CELLS", ()) for name, cfg in configs.items()}
    new = ("mingru", "minlstm", "indrnn", "slstm")
    assert offered == {
        "lm": ("lstm", "gru", "rnn", *new),
        "sort": ("lstm", "gru", *new),
        "seq2seq": ("lstm", "gru", *new),
        "forecast": ("lstm", "gru", *new),
        "caption": (),  # captioning decodes with an LSTM only
    }
    for name, cells in offered.items():
        for cell in cells:
            assert configs[name](cell=cell).spec.name == cell
        if cells:
            message = re.escape(f"cell must be one of {cells}, got 'rnn_relu'")
            with pytest.raises(ValueError, match=message):
                configs[name](cell="rnn_relu")


def test_a_config_naming_an_unregistered_cell_fails_when_defined():
    with pytest.raises(ValueError, match=r"Bad.CELLS: \['lstmx'\] are not registered cells"):

        @dataclasses.dataclass
        class Bad(CellConfig):
            CELLS = ("lstm", "lstmx")


def test_offering_another_cell_is_adding_its_name():
    @dataclasses.dataclass
    class WithRelu(VariantConfig):
        CELLS = ("lstm", "rnn_relu")

    cfg = WithRelu(cell="rnn_relu", hidden_size=4, zoneout=0.1)
    layer = recurrent_layer(cfg.cell, 3, cfg.hidden_size, **cfg.layer_options())
    assert type(layer) is rnnkit.RNN and layer.nonlinearity == "relu"
    assert cfg.layer_options() == dict(
        layer_norm=False, recurrent_dropout=0.0, weight_drop=0.0, zoneout=0.1
    )


@pytest.mark.parametrize(
    "cell,layer,nonlinearity",
    [("lstm", rnnkit.LSTM, None), ("gru", rnnkit.GRU, None), ("rnn", rnnkit.RNN, "tanh")],
)
def test_the_layer_of_a_registered_cell(cell, layer, nonlinearity):
    rnn = recurrent_layer(cell, 3, 5, num_layers=2, bidirectional=True)
    assert type(rnn) is layer and (rnn.num_layers, rnn.bidirectional) == (2, True)
    assert getattr(rnn, "nonlinearity", None) == nonlinearity
    assert projects(cell) == (cell == "lstm")


def test_layer_options_follow_what_the_cell_accepts():
    lstm = VariantConfig(cell="lstm", peephole=True, forget_bias=1.0)
    assert lstm.layer_options()["peephole"] and lstm.layer_options()["forget_bias"] == 1.0
    assert set(VariantConfig(cell="gru", layer_norm=True).layer_options()) == {
        "layer_norm",
        "recurrent_dropout",
        "weight_drop",
        "zoneout",
    }
    with pytest.raises(ValueError, match="peephole and forget_bias are LSTM options, not gru"):
        VariantConfig(cell="gru", peephole=True)
    with pytest.raises(ValueError, match="peephole and forget_bias are LSTM options, not rnn"):
        LMConfig(cell="rnn", forget_bias=1.0)


@pytest.mark.parametrize("name", ["hidden_size", "num_layers", "batch_size"])
def test_shared_sizes_are_checked(name):
    with pytest.raises(ValueError, match=rf"{name} must be >= 1, got 0"):
        ModelConfig(**{name: 0})


def test_config_from_state_applies_the_given_overrides():
    state = {"config": {"cell": "gru", "hidden_size": 8}}
    cfg = config_from_state(CellConfig, state, {"hidden_size": None, "batch_size": 4})
    assert (cfg.cell, cfg.hidden_size, cfg.batch_size) == ("gru", 8, 4)
    with pytest.raises(ValueError, match=r"unknown CellConfig fields \['size'\]"):
        config_from_state(CellConfig, {"config": {"size": 3}}, {})


def test_split_by_position():
    parts = split_by_position(list(range(10)), 0.2, 0.1, "f.txt", "lines")
    assert parts == {"train": list(range(7)), "valid": [7, 8], "test": [9]}
    with pytest.raises(ValueError, match="f.txt: 2 lines leave none for training"):
        split_by_position([1, 2], 0.5, 0.5, "f.txt", "lines")


def test_a_config_saved_before_the_shared_base_loads():
    """``task.json`` of a run written when ``LMConfig`` declared every field itself."""
    saved = {
        "data": None,
        "level": "char",
        "default_corpus_chars": 20000,
        "valid_fraction": 0.1,
        "test_fraction": 0.0,
        "min_count": 1,
        "max_vocab": None,
        "cell": "lstm",
        "embed_size": 32,
        "hidden_size": 128,
        "num_layers": 1,
        "dropout": 0.0,
        "embed_dropout": 0.0,
        "tie_weights": False,
        "layer_norm": False,
        "recurrent_dropout": 0.0,
        "weight_drop": 0.0,
        "zoneout": 0.0,
        "peephole": False,
        "forget_bias": None,
        "init_range": None,
        "batch_size": 16,
        "bptt": 64,
        "variable_bptt": False,
        "eval_batch_size": 16,
        "seed": 0,
    }
    cfg = config_from_state(LMConfig, {"config": saved}, {})
    # the fields added since (the new cells' options, issue 11; the word recipe's, issue 12) take
    # their defaults, and every saved value is kept
    added = {k: v for k, v in dataclasses.asdict(LMConfig()).items() if k not in saved}
    assert {"scan_chunk", "softmax", "word_dropout"} <= set(added)
    assert dataclasses.asdict(cfg) == {**saved, **added}
