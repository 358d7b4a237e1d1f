"""The C-kernel sequences as registered torch ops: ``torch.ops.rnnkit.lstm_sequence``,
``gru_sequence`` and their ``*_backward``.

Each op runs one direction of one layer (:func:`.lstm.lstm_kernel_forward`,
:func:`.gru.gru_kernel_forward`) and has a fake implementation (shapes only), a registered autograd
formula and a vmap rule, so that ``torch.compile`` (inductor included), ``torch.export``,
``torch.func`` and ``vmap`` see one opaque op where they used to meet ctypes calls they cannot trace.

Arguments beside the tensors of :class:`.lstm.LSTMInputs` / :class:`.gru.GRUInputs`: the recurrent
dropout ``mask (N, R)``; zoneout as masks ``(T, N, C)`` (training) or rates (evaluation); ``lengths
(N,)``; ``reverse``; ``save`` (keep what backward needs). Outputs: the layer output ``(T, N, H)``,
the final state, then the saved buffers (empty tensors where there is nothing to keep), which the
autograd formula hands to the backward op.

Second-order gradients: when the backward itself is differentiated (``create_graph=True``), the
formula recomputes the direction with the reference backend's torch ops
(:func:`rnnkit.backends.reference.scan`) and differentiates that, so gradient penalties get the
reference's exact second derivatives instead of a silent zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ...functional import CellParams, StepOptions
from ...registry import get_cell
from .. import reference
from ..sequence import direction_aux
from .gru import _SAVED as GRU_SAVED
from .gru import ACTS, GRUInputs, gates_recomputed, gru_kernel_backward, gru_kernel_forward
from .library import BernoulliDraws, Dropped, drop_connected
from .lstm import _SAVED as LSTM_SAVED
from .lstm import LSTMInputs, lstm_kernel_backward, lstm_kernel_forward

Opt = Tensor | None


def _none_if_empty(t: Tensor) -> Tensor | None:
    return None if t.dim() == 1 and t.shape[0] == 0 else t


def _zoneout(mask: Opt, rate: float, seed: int = -1, shape: tuple[int, ...] = ()):
    """A zoneout argument pair as :class:`.sequence.Aux` takes it: the mask, draws the kernels
    make (``seed`` >= 0: Bernoulli(``rate``) of ``shape``) or the evaluation rate."""
    if seed >= 0:
        return BernoulliDraws(shape, rate, seed)
    return rate if mask is None else mask


def _seeds(seeds: Sequence[int] | None, count: int) -> list[int]:
    """The seeds of an op call: one per zoneout state, then DropConnect's (-1: that zoneout is a
    mask or a rate, no DropConnect)."""
    if seeds is None or len(seeds) == 0:
        return [-1] * count
    if len(seeds) != count:
        raise ValueError(f"seeds: expected {count} (the zoneout states', then DropConnect's), "
                         f"got {list(seeds)}")  # fmt: skip
    return [int(k) for k in seeds]


def _lengths_aux(x: Tensor, lengths: Opt, reverse: bool, mask: Opt, zh, zc,
                 nonlinearity: str = "tanh"):  # fmt: skip
    return direction_aux(x, lengths=lengths, reverse=reverse, mask=mask, zoneout_h=zh,
                         zoneout_c=zc, nonlinearity=nonlinearity)  # fmt: skip


def _gru_zoneout(x: Tensor, h0: Tensor, zh: Opt, rh: float, seeds):
    """The zoneout argument of a GRU / RNN op call."""
    return _zoneout(zh, rh, _seeds(seeds, 2)[0], (*x.shape[:2], h0.shape[-1]))


def _drop_seed(seeds, count: int) -> int:
    """The seed of the DropConnect the op applies itself (the last of ``seeds``; -1: none)."""
    return _seeds(seeds, count)[-1]


def _drop(rate: float, seed: int) -> Dropped | None:
    """The DropConnect the kernels apply to ``w`` themselves (None for ``seed`` -1)."""
    return None if seed < 0 else Dropped(rate, seed)


def _drop_mask_tensor(w: Tensor, rate: float, seed: int) -> Tensor:
    """The DropConnect mask of ``seed`` as a tensor (the double backward's torch ops)."""
    from ...regularization import dropout_mask  # rnnkit.regularization imports this package

    return dropout_mask(tuple(w.shape), rate, w, seed)


def _as_tensor(z, like: Tensor):
    """A zoneout argument with the kernels' draws made into a tensor (for torch ops)."""
    return z.tensor(like) if isinstance(z, BernoulliDraws) else z


def _lstm_zoneout(x: Tensor, h0: Tensor, zh: Opt, rh: float, zc: Opt, rc: float, seeds):
    """The two zoneout arguments (of ``h`` and of ``c``) of an LSTM op call."""
    sh, sc, _ = _seeds(seeds, 3)
    shape = (*x.shape[:2], h0.shape[-1])
    return _zoneout(zh, rh, sh, shape), _zoneout(zc, rc, sc, shape)


# ----------------------------------------------------------------------------------------- LSTM
def lstm_sequence(
    x: Tensor,
    w_ih: Opt,
    h0: Tensor,
    c0: Tensor,
    w: Tensor,
    bias: Opt,
    ln_ih: Opt,
    ln_hh: Opt,
    ln_cw: Opt,
    ln_cb: Opt,
    peep: Opt,
    mask: Opt,
    zoneout_h: Opt,
    rate_h: float,
    zoneout_c: Opt,
    rate_c: float,
    lengths: Opt,
    reverse: bool,
    save: bool,
    seeds: Sequence[int] | None = None,
    weight_drop: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(out (T, N, H), h_n, c_n (N, H), hs, cs, cn, acts, xhat, stats, gx)``: one LSTM direction
    on the C kernels (``x (T, N, D)`` with ``w_ih``, or the projections ``(T, N, 4H)``).
    ``seeds`` ``[h, c, w]``: a zoneout seed >= 0 makes that state's zoneout Bernoulli(rate) draws
    the kernels make from it (:class:`.library.BernoulliDraws`), its mask argument then None; a
    DropConnect seed >= 0 runs ``w`` DropConnected at ``weight_drop`` with that seed's mask
    (:func:`rnnkit.regularization.drop_connect`), drawn again in backward rather than kept."""  # fmt: skip
    zh, zc = _lstm_zoneout(x, h0, zoneout_h, rate_h, zoneout_c, rate_c, seeds)
    aux = _lengths_aux(x, lengths, reverse, mask, zh, zc)
    inputs = LSTMInputs(x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep)
    drop = _drop(weight_drop, _drop_seed(seeds, 3))
    hs, c_n, saved = lstm_kernel_forward(aux, inputs, save=save, drop=drop)
    out, h_n = aux.seq.outputs(hs), aux.seq.last(hs)
    if not save:
        return out, h_n, c_n, *_empties(x, 7)
    saved["hs"] = hs if lengths is not None else None  # else it is out itself
    if w_ih is None:
        saved["gx"] = None  # the input itself: backward reads x
    return out, h_n, c_n, *_or_empty(x, (saved[k] for k in LSTM_SAVED))


def _fake_lstm_sequence(x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, mask, zoneout_h, rate_h,
      zoneout_c, rate_c, lengths, reverse, save, seeds=None, weight_drop=0.0):  # fmt: skip
    steps, n = x.shape[:2]
    hid = h0.shape[-1]
    main = (x.new_empty(steps, n, hid), x.new_empty(n, hid), x.new_empty(n, hid))
    if not save:
        return *main, *_empties(x, 7)
    blend_c = (
        zoneout_c is not None or rate_c != 0 or lengths is not None or _seeds(seeds, 3)[1] >= 0
    )
    any_ln = any(t is not None for t in (ln_ih, ln_hh, ln_cw, ln_cb))

    def seq(width: int, keep: bool = True) -> Tensor:
        return x.new_empty(steps, n, width) if keep else x.new_empty(0)

    return (*main, seq(hid, lengths is not None), seq(hid), seq(hid, blend_c), seq(4 * hid),
            seq(4 * hid, ln_hh is not None), seq(6, any_ln),
            seq(4 * hid, ln_ih is not None and w_ih is not None))  # fmt: skip


_LSTM_TENSORS = 11  # the LSTMInputs at the head of the op's arguments


def _setup_lstm(ctx, inputs, output) -> None:
    (x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, mask, zh, rh, zc, rc, lengths,
     reverse, save, seeds, weight_drop) = inputs  # fmt: skip
    ctx.rates, ctx.reverse, ctx.save, ctx.seeds = (rh, rc), reverse, save, seeds
    ctx.weight_drop = weight_drop
    ctx.set_materialize_grads(False)  # no zeros for the saved buffers' gradients (MBs per call)
    ctx.save_for_backward(x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, mask, zh, zc,
                          lengths, output[0], *output[3:])  # fmt: skip


def _backward_lstm(ctx, d_out, d_hn, d_cn, *_):
    return _lstm_grads(ctx, d_out, d_hn, d_cn, torch.ops.rnnkit.lstm_sequence_backward)


def _lstm_grads(ctx, d_out, d_hn, d_cn, backward_op):
    """The autograd formula of ``lstm_sequence``, first-order gradients from ``backward_op`` (the
    registered op, or its kernel in plain eager code: :class:`EagerLSTMSequence`)."""
    _check_saved(ctx, "lstm_sequence")
    (x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, mask, zh, zc, lengths, out,
     *saved) = ctx.saved_tensors  # fmt: skip
    rh, rc = ctx.rates
    tensors = (x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep)
    need = list(ctx.needs_input_grad[:_LSTM_TENSORS])
    d_out, d_hn, d_cn = _materialize((d_out, d_hn, d_cn), (out, h0, c0))
    if torch.is_grad_enabled():  # the backward is itself differentiated (create_graph=True)
        state = (h0, c0)
        seed = _drop_seed(ctx.seeds, 3)
        w_run = w if seed < 0 else w * _drop_mask_tensor(w, ctx.weight_drop, seed)
        p = CellParams(w_ih, w_run, None, bias, None, ln_ih, ln_hh, ln_cw, ln_cb, peep)
        zones = _lstm_zoneout(x, h0, zh, rh, zc, rc, ctx.seeds)
        opts = StepOptions(mask, None, *(_as_tensor(z, x) for z in zones))
        grads = _reference_grads(get_cell("lstm"), x, state, p, opts, lengths, ctx.reverse,
                                 tensors, need, (d_out, d_hn, d_cn))  # fmt: skip
    else:
        grads = backward_op(
            d_out,
            d_hn,
            d_cn,
            *tensors,
            mask,
            zh,
            rh,
            zc,
            rc,
            lengths,
            ctx.reverse,
            out,
            *saved,
            need,
            ctx.seeds,
            ctx.weight_drop,
        )
        grads = [g if n else None for g, n in zip(grads, need)]
    return (*grads, *([None] * 10))


def lstm_sequence_backward(
    d_out: Tensor,
    d_hn: Tensor,
    d_cn: Tensor,
    x: Tensor,
    w_ih: Opt,
    h0: Tensor,
    c0: Tensor,
    w: Tensor,
    bias: Opt,
    ln_ih: Opt,
    ln_hh: Opt,
    ln_cw: Opt,
    ln_cb: Opt,
    peep: Opt,
    mask: Opt,
    zoneout_h: Opt,
    rate_h: float,
    zoneout_c: Opt,
    rate_c: float,
    lengths: Opt,
    reverse: bool,
    out: Tensor,
    hs: Tensor,
    cs: Tensor,
    cn: Tensor,
    acts: Tensor,
    xhat: Tensor,
    stats: Tensor,
    gx: Tensor,
    need: Sequence[bool],
    seeds: Sequence[int] | None = None,
    weight_drop: float = 0.0,
) -> list[Tensor]:
    """The gradients of :func:`lstm_sequence`'s eleven tensor inputs (an empty tensor where
    ``need`` is False) from those of its outputs and its saved buffers."""  # fmt: skip
    zh, zc = _lstm_zoneout(x, h0, zoneout_h, rate_h, zoneout_c, rate_c, seeds)
    aux = _lengths_aux(x, lengths, reverse, mask, zh, zc)
    drop = _drop(weight_drop, _drop_seed(seeds, 3))
    saved = dict(zip(LSTM_SAVED, map(_none_if_empty, (hs, cs, cn, acts, xhat, stats, gx))))
    if saved["hs"] is None:
        saved["hs"] = out
    if saved["gx"] is None and ln_ih is not None and w_ih is None:
        saved["gx"] = x.contiguous()  # the input was the projections themselves
    inputs = LSTMInputs(x if w_ih is not None else None, w_ih, h0, c0, w, bias, ln_ih, ln_hh,
                        ln_cw, ln_cb, peep)  # fmt: skip
    grads = lstm_kernel_backward(aux, inputs, saved, LSTMInputs(*need), d_out, d_hn, d_cn, drop)
    if drop is not None and grads.w is not None:  # through w * mask: masked in place
        drop_connected(grads.w, drop, out=grads.w)
    return _filled(grads, (x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep), need)


def _fake_lstm_sequence_backward(d_out, d_hn, d_cn, x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw,
                                 ln_cb, peep, mask, zoneout_h, rate_h, zoneout_c, rate_c, lengths,
                                 reverse, out, hs, cs, cn, acts, xhat, stats, gx, need,
                                 seeds=None, weight_drop=0.0):  # fmt: skip
    return _fake_grads((x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep), need, x)


# ------------------------------------------------------------------------------------ GRU, RNN
def gru_sequence(
    x: Tensor,
    w_ih: Opt,
    h0: Tensor,
    w: Tensor,
    b_ih: Opt,
    b_hh: Opt,
    ln_ih: Opt,
    ln_hh: Opt,
    mask: Opt,
    zoneout_h: Opt,
    rate_h: float,
    lengths: Opt,
    reverse: bool,
    cell: str,
    save: bool,
    seeds: Sequence[int] | None = None,
    weight_drop: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(out (T, N, H), h_n (N, H), hs, acts, stats)``: one direction of registered cell ``cell``
    (``"gru"``, ``"rnn"``, ``"rnn_relu"``) on the C kernels; ``seeds`` ``[h, w]`` and
    ``weight_drop`` as for :func:`lstm_sequence`."""  # fmt: skip
    spec = get_cell(cell)
    zh = _gru_zoneout(x, h0, zoneout_h, rate_h, seeds)
    aux = _lengths_aux(x, lengths, reverse, mask, zh, None, spec.nonlinearity)
    inputs = GRUInputs(x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh)
    drop = _drop(weight_drop, _drop_seed(seeds, 2))
    hs, saved = gru_kernel_forward(spec.kernel.upper(), aux, inputs, save=save, drop=drop)
    out, h_n = aux.seq.outputs(hs), aux.seq.last(hs)
    if not save:
        return out, h_n, *_empties(x, 3)
    saved["hs"] = hs if lengths is not None else None
    return out, h_n, *_or_empty(x, (saved[k] for k in GRU_SAVED))


def _fake_gru_sequence(x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh, mask, zoneout_h, rate_h, lengths,
                       reverse, cell, save, seeds=None, weight_drop=0.0):  # fmt: skip
    steps, n = x.shape[:2]
    hid = h0.shape[-1]
    main = (x.new_empty(steps, n, hid), x.new_empty(n, hid))
    if not save:
        return *main, *_empties(x, 3)
    mode = get_cell(cell).kernel.upper()
    width = ACTS[mode] * hid
    hs = x.new_empty(steps, n, hid) if lengths is not None else x.new_empty(0)
    any_ln = ln_ih is not None or ln_hh is not None
    stats = x.new_empty(steps, n, 6) if any_ln else x.new_empty(0)
    acts = x.new_empty(0) if gates_recomputed(mode, ln_ih, ln_hh) else x.new_empty(steps, n, width)
    return *main, hs, acts, stats


_GRU_TENSORS = 8


def _setup_gru(ctx, inputs, output) -> None:
    (x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh, mask, zh, rh, lengths, reverse, cell, save, seeds,
     weight_drop) = inputs  # fmt: skip
    ctx.rate, ctx.reverse, ctx.cell, ctx.save, ctx.seeds = rh, reverse, cell, save, seeds
    ctx.weight_drop = weight_drop
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh, mask, zh, lengths, output[0],
                          *output[2:])  # fmt: skip


def _backward_gru(ctx, d_out, d_hn, *_):
    return _gru_grads(ctx, d_out, d_hn, torch.ops.rnnkit.gru_sequence_backward)


def _gru_grads(ctx, d_out, d_hn, backward_op):
    """The autograd formula of ``gru_sequence`` (``backward_op`` as for :func:`_lstm_grads`)."""
    _check_saved(ctx, "gru_sequence")
    x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh, mask, zh, lengths, out, *saved = ctx.saved_tensors
    tensors = (x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh)
    need = list(ctx.needs_input_grad[:_GRU_TENSORS])
    d_out, d_hn = _materialize((d_out, d_hn), (out, h0))
    if torch.is_grad_enabled():  # the backward is itself differentiated (create_graph=True)
        p = CellParams(w_ih, w, b_ih, b_hh, None, ln_ih, ln_hh)
        zone = _as_tensor(_gru_zoneout(x, h0, zh, ctx.rate, ctx.seeds), x)
        seed = _drop_seed(ctx.seeds, 2)
        w_run = None if seed < 0 else w * _drop_mask_tensor(w, ctx.weight_drop, seed)
        opts = StepOptions(mask, w_run, zone)
        grads = _reference_grads(get_cell(ctx.cell), x, (h0,), p, opts, lengths, ctx.reverse,
                                 tensors, need, (d_out, d_hn))  # fmt: skip
    else:
        grads = backward_op(
            d_out,
            d_hn,
            *tensors,
            mask,
            zh,
            ctx.rate,
            lengths,
            ctx.reverse,
            ctx.cell,
            out,
            *saved,
            need,
            ctx.seeds,
            ctx.weight_drop,
        )
        grads = [g if n else None for g, n in zip(grads, need)]
    return (*grads, *([None] * 9))


def gru_sequence_backward(
    d_out: Tensor,
    d_hn: Tensor,
    x: Tensor,
    w_ih: Opt,
    h0: Tensor,
    w: Tensor,
    b_ih: Opt,
    b_hh: Opt,
    ln_ih: Opt,
    ln_hh: Opt,
    mask: Opt,
    zoneout_h: Opt,
    rate_h: float,
    lengths: Opt,
    reverse: bool,
    cell: str,
    out: Tensor,
    hs: Tensor,
    acts: Tensor,
    stats: Tensor,
    need: Sequence[bool],
    seeds: Sequence[int] | None = None,
    weight_drop: float = 0.0,
) -> list[Tensor]:
    """The gradients of :func:`gru_sequence`'s eight tensor inputs (empty where ``need`` is
    False)."""  # fmt: skip
    spec = get_cell(cell)
    zh = _gru_zoneout(x, h0, zoneout_h, rate_h, seeds)
    aux = _lengths_aux(x, lengths, reverse, mask, zh, None, spec.nonlinearity)
    saved = dict(zip(GRU_SAVED, map(_none_if_empty, (hs, acts, stats))))
    if saved["hs"] is None:
        saved["hs"] = out
    drop = _drop(weight_drop, _drop_seed(seeds, 2))
    inputs = GRUInputs(x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh)
    grads = gru_kernel_backward(spec.kernel.upper(), aux, inputs, saved, GRUInputs(*need), d_out,
                                d_hn, drop)  # fmt: skip
    if drop is not None and grads.w is not None:  # through w * mask: masked in place
        drop_connected(grads.w, drop, out=grads.w)
    return _filled(grads, inputs, need)


def _fake_gru_sequence_backward(d_out, d_hn, x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh, mask,
                                zoneout_h, rate_h, lengths, reverse, cell, out, hs, acts, stats,
                                need, seeds=None, weight_drop=0.0):  # fmt: skip
    return _fake_grads((x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh), need, x)


# ------------------------------------------------------------------------------------- shared
def _check_saved(ctx, name: str) -> None:
    """Differentiating a call made with ``save=False`` is an error (its backward used to read the
    empty buffers: a segfault in the GRU kernel, an AttributeError in the LSTM one)."""
    if not ctx.save:
        raise RuntimeError(f"rnnkit::{name} was called with save=False, which keeps nothing for "
                           "backward; call it with save=True to differentiate it")  # fmt: skip


def _empties(like: Tensor, count: int) -> list[Tensor]:
    """``count`` distinct empty tensors (an op's outputs may not share storage)."""
    return [like.new_empty(0) for _ in range(count)]


def _or_empty(like: Tensor, tensors) -> list[Tensor]:
    return [like.new_empty(0) if t is None else t for t in tensors]


def _materialize(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    """Zeros for the outputs that received no gradient."""
    return [torch.zeros_like(t) if g is None else g.contiguous() for g, t in zip(grads, like)]


def _filled(grads: Sequence[Tensor | None], inputs: Sequence[Tensor | None], need) -> list[Tensor]:
    """The op's gradient list: each needed gradient (zeros where the kernels had none), else an
    empty tensor (ops return no None)."""
    like = next(t for t in inputs if t is not None)
    out = []
    for g, t, n in zip(grads, inputs, need):
        if not n or t is None:
            out.append(like.new_empty(0))
        elif g is not None and any(g is i for i in inputs if i is not None):
            out.append(g.clone())  # an input passed through (the projections' own gradient)
        else:
            out.append(torch.zeros_like(t) if g is None else g.contiguous())
    return out


def _fake_grads(inputs: Sequence[Tensor | None], need, like: Tensor) -> list[Tensor]:
    return [t.new_empty(t.shape) if n and t is not None else like.new_empty(0)
            for t, n in zip(inputs, need)]  # fmt: skip


def _reference_grads(spec, x, state, p, opts, lengths, reverse, tensors, need, d_outputs):
    """The input gradients by autograd through the reference loop, with ``create_graph`` (the
    double-backward path)."""
    wanted = [t for t, n in zip(tensors, need) if n and t is not None]
    kw = dict(lengths=lengths, reverse=reverse, options=opts)
    with torch.enable_grad():
        if p.w_ih is None:  # x is the projections
            out, final = reference.scan(spec, x, state, p, **kw)
        else:
            out, final = reference.layer_direction(spec, x, state, p, **kw)
        found = torch.autograd.grad((out, *final), wanted, d_outputs, create_graph=True,
                                    allow_unused=True)  # fmt: skip
    it = iter(found)
    return [next(it) if n and t is not None else None for t, n in zip(tensors, need)]


def _register(fn, fake) -> None:
    """Define the op ``rnnkit::<fn's name>`` with the schema of ``fn``'s annotations, ``fn`` as its
    CPU kernel and ``fake`` as its fake implementation. (``torch.library.custom_op`` would wrap
    the kernel so that its first call imports torch._dynamo, a second or two of the first call.)"""
    name = f"rnnkit::{fn.__name__}"
    torch.library.define(name, torch.library.infer_schema(fn, mutates_args=()))
    torch.library.impl(name, "CPU", fn)
    torch.library.register_fake(name, fake)


_register(lstm_sequence, _fake_lstm_sequence)
_register(lstm_sequence_backward, _fake_lstm_sequence_backward)
_register(gru_sequence, _fake_gru_sequence)
_register(gru_sequence_backward, _fake_gru_sequence_backward)
torch.library.register_autograd("rnnkit::lstm_sequence", _backward_lstm, setup_context=_setup_lstm)
torch.library.register_autograd("rnnkit::gru_sequence", _backward_gru, setup_context=_setup_gru)


# ---------------------------------------------------------------------------------- plain eager
# The registered autograd formulas as torch.autograd.Functions over the kernels themselves, for
# training calls in plain eager code (``dispatch._training_op`` decides): the dispatcher and the
# custom-op autograd wrapper, whose argument handling (``fill_defaults``, once per argument) costs
# ~0.1-0.2 ms per call of these 17-21-argument ops, are skipped; the same setup, formula and
# kernels run. Whatever may need to see the op (torch.compile, torch.func, dispatch modes, the
# profiler) gets the registered op instead.
class EagerLSTMSequence(torch.autograd.Function):
    """:func:`lstm_sequence` with its registered autograd formula, outside the dispatcher."""

    @staticmethod
    def forward(ctx, *args):  # noqa: D102
        output = lstm_sequence(*args)
        _setup_lstm(ctx, args, output)
        ctx.mark_non_differentiable(*output[3:])  # the saved buffers
        return output

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn, *_):  # noqa: D102
        return _lstm_grads(ctx, d_out, d_hn, d_cn, lstm_sequence_backward)


class EagerGRUSequence(torch.autograd.Function):
    """:func:`gru_sequence` with its registered autograd formula, outside the dispatcher."""

    @staticmethod
    def forward(ctx, *args):  # noqa: D102
        output = gru_sequence(*args)
        _setup_gru(ctx, args, output)
        ctx.mark_non_differentiable(*output[2:])
        return output

    @staticmethod
    def backward(ctx, d_out, d_hn, *_):  # noqa: D102
        return _gru_grads(ctx, d_out, d_hn, gru_sequence_backward)


# ------------------------------------------------------------------------------------- vmap
def _vmap_by_loop(op):
    """A vmap rule that runs ``op`` once per batch entry and stacks the results: the sequences of
    a batch entry are independent of the others'."""

    def rule(info, in_dims, *args):
        def entry(b: int):
            return [a.select(d, b) if isinstance(a, Tensor) and d is not None else a
                    for a, d in zip(args, in_dims)]  # fmt: skip

        results = [op(*entry(b)) for b in range(info.batch_size)]
        outs = tuple(torch.stack(items) for items in zip(*results))
        return outs, tuple(0 for _ in outs)

    return rule


for _name in ("lstm_sequence", "gru_sequence", "lstm_sequence_backward", "gru_sequence_backward"):
    torch.library.register_vmap(f"rnnkit::{_name}", _vmap_by_loop(getattr(torch.ops.rnnkit, _name)))
