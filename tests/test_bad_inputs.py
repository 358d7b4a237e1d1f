"""Misuse of the layers, cells and wrappers gets a clear error or the right result."""

from __future__ import annotations

import pytest
import torch

import rnnkit


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_variant_layers_with_an_empty_batch_give_empty_outputs_as_torch_does(cls):
    layer = cls(3, 4, num_layers=2, bidirectional=True, layer_norm=True, zoneout=0.1)
    out, hn = layer(torch.randn(5, 0, 3))
    ref_out, ref_hn = cls(3, 4, num_layers=2, bidirectional=True)(torch.randn(5, 0, 3))
    assert out.shape == ref_out.shape == (5, 0, 8)
    h, ref_h = (hn[0], ref_hn[0]) if isinstance(hn, tuple) else (hn, ref_hn)
    assert h.shape == ref_h.shape == (4, 0, 4)


def test_variant_layers_without_time_steps_say_so():
    with pytest.raises(ValueError, match=r"at least one time step, got input of shape \(0, 2, 3\)"):
        rnnkit.LSTM(3, 4, layer_norm=True)(torch.randn(0, 2, 3))
    with pytest.raises(ValueError, match="at least one time step"):
        rnnkit.GRU(3, 4, zoneout=0.1, batch_first=True)(torch.randn(2, 0, 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_dtype_other_than_the_parameters_names_both(dtype):
    with pytest.raises(TypeError, match=f"torch.float32 parameters, got {dtype} input"):
        rnnkit.LSTM(3, 4, layer_norm=True)(torch.randn(5, 2, 3, dtype=dtype))


@pytest.mark.parametrize("option", ["layer_norm", "peephole"])
@pytest.mark.parametrize("value", ["no", "False", 2, None])
def test_boolean_options_refuse_strings_and_other_values(option, value):
    with pytest.raises(TypeError, match=f"{option} must be True or False"):
        rnnkit.LSTM(3, 4, **{option: value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_forget_bias_must_be_finite(value):
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        rnnkit.LSTM(3, 4, forget_bias=value)


def test_stateful_after_an_unbatched_call_names_what_it_carries():
    stream = rnnkit.Stateful(rnnkit.GRU(3, 8))
    stream(torch.randn(5, 3))  # unbatched (T, C): the state is (L*D, H)
    with pytest.raises(
        ValueError, match="state for an unbatched input, got an input with batch size 2"
    ):
        stream(torch.randn(5, 2, 3))
    stream.reset_state()
    stream(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="state for batch size 2, got an unbatched input"):
        stream(torch.randn(5, 3))
    with pytest.raises(ValueError, match="state for batch size 2, got an input with batch size 4"):
        stream(torch.randn(5, 4, 3))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 0.0, 1e39])
def test_lm_init_range_is_validated(value):
    from rnnkit.tasks.lm import LMConfig

    with pytest.raises(ValueError, match="init_range must be a number in"):
        LMConfig(init_range=value)


def test_recurrent_cell_sizes_are_validated():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got -1"):
        rnnkit.RecurrentCell("gru", 4, -1)


def test_convert_into_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    from rnnkit.cli import main
    from rnnkit.interop import export_lstm_weights

    torch.save(export_lstm_weights(rnnkit.LSTM(3, 4), "torch"), tmp_path / "w.pt")
    code = main(["convert", str(tmp_path / "w.pt"), str(tmp_path / "no" / "o.pt"), "--to", "torch"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
