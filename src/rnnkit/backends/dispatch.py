"""The one place that decides how a recurrent layer runs: torch's native kernels, the CPU C kernels,
the torch-op kernels, the parallel scan or the reference loop.

* :func:`runs_natively` is the layer-level choice: torch.nn's fused kernels (oneDNN, cuDNN) run a
  layer whenever no option changes the recurrence (DropConnect alone runs on them too, with the
  dropped matrices); ``backend="native"`` insists and fails loudly otherwise.
* :func:`run_direction` runs one direction of one layer of a variant layer. ``backend="fused"``
  (what ``"auto"`` means for a variant layer) takes the CPU C kernels (:mod:`.cpu_kernels`) for
  CPU float32/float64 tensors when they are built and enabled (``RNNKIT_CPU_KERNELS``), else the
  torch-op kernels (:mod:`.torch_ops`: CUDA, no compiler, LSTM projections), and for a cell with
  neither but a whole-sequence form (:attr:`~rnnkit.registry.CellSpec.sequence`: minGRU, minLSTM)
  the parallel scan (:mod:`.parallel`); ``"cpu_kernels"``, ``"torch_ops"`` or ``"parallel"`` asks
  for one and raises when it cannot serve the call; ``"reference"`` is the plain loop
  (:mod:`.reference`), which runs every cell step by step. Inputs the fused kernels do not cover
  (a dropout or zoneout mask that itself requires grad, zero time steps) quietly take the
  reference loop under ``"fused"``.

Every choice is made here, at call time, from the configuration, the tensors' device and dtype and
the environment; nothing is fixed at import.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from .. import regularization  # DropConnectDraw; it imports this package, so read at call time
from ..functional import CellParams, StepOptions
from ..registry import CellSpec, get_cell
from . import cpu_kernels, parallel, reference
from .cpu_kernels import ops as kernel_ops  # noqa: F401 - registers torch.ops.rnnkit
from .cpu_kernels import slstm as slstm_kernels
from .cpu_kernels.library import SUFFIX as KERNEL_DTYPES
from .cpu_kernels.library import BernoulliDraws
from .gemm import input_projection
from .sequence import Aux, direction_aux
from .torch_ops.gru import GRUInputs, GRUSequence, RNNSequence, gru_forward, rnn_forward
from .torch_ops.lstm import LSTMInputs, LSTMSequence, lstm_forward

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "native", "fused", "cpu_kernels", "torch_ops", "parallel", "reference")
FUSED = ("cpu_kernels", "torch_ops", "parallel")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


# ------------------------------------------------------------------------------- layer level
def weight_drop_only(variants) -> bool:
    """True when DropConnect is the only option changing the recurrence: the native kernels then
    run it on the dropped matrices (AWD-LSTM's WeightDrop, without patching the module)."""
    return variants.weight_drop > 0 and variants == type(variants)(
        weight_drop=variants.weight_drop, forget_bias=variants.forget_bias
    )


def runs_natively(
    spec: CellSpec, variants, backend: str, twin: bool = True, like: Tensor | None = None
) -> bool:
    """Whether a layer of ``spec`` with ``variants`` runs on torch.nn's own kernels (``twin``: the
    layer is a torch.nn layer, whose ``forward`` those kernels are) for inputs like ``like``.

    DropConnect alone runs there, except for a GRU or RNN that the C kernels serve (CPU float32 /
    float64): torch has no fused CPU kernel for those, so the C loop runs them in about half of
    torch.nn's time, and its seeded mask keeps no ``(G*H, H)`` dropped matrix for backward (torch's
    kept one: 1.35x torch.nn's training memory at H=512, docs/benchmarks.md)."""
    if "native" not in spec.backends or not twin:
        return False
    if backend == "native":
        return True
    if backend != "auto":
        return False
    if not variants.changes_recurrence:
        return True
    if not weight_drop_only(variants):
        return False
    return (
        spec.kernel == "lstm" or like is None or _cpu_kernels_refusal(spec, like, None) is not None
    )


def check_native(spec: CellSpec, variants, backend: str, twin: bool = True) -> None:
    """Raise when ``backend="native"`` was asked for but an option rules torch's kernels out."""
    if backend != "native":
        return
    if "native" not in spec.backends or not twin:
        raise ValueError(f"backend='native': torch has no kernels for {spec.title}")
    if variants.changes_recurrence and not weight_drop_only(variants):
        raise ValueError(
            f"backend='native' cannot run {variants.describe()}: torch's kernels have no such "
            "option; use backend='auto' or 'fused'"
        )


# ------------------------------------------------------------------------------- direction level
def _needs_grad(tensors: tuple[Tensor | None, ...]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _fusable(opts: StepOptions) -> bool:
    stochastic = (opts.dropout_mask, opts.zoneout_h, opts.zoneout_c)
    return not any(isinstance(t, Tensor) and t.requires_grad for t in stochastic)


def _cpu_kernels_refusal(spec: CellSpec, like: Tensor, p: CellParams | None) -> str | None:
    """Why the C kernels cannot run this direction (``p`` None: any parameters without a
    projection), or None when they can."""
    if "cpu_kernels" not in spec.backends:
        return f"they have no {spec.title} kernel"
    if p is not None and p.w_hr is not None:
        return "they do not cover LSTM projections (proj_size)"
    if like.device.type != "cpu" or like.dtype not in KERNEL_DTYPES:
        return f"they serve CPU float32/float64 tensors, got {like.device.type} {like.dtype}"
    if spec.kernel == "slstm" and p is not None:
        why = slstm_kernels.refusal(like, p)
        if why is not None:
            return why
    return _kernels_unavailable(str(like.dtype).removeprefix("torch.")) or None


def _constant_for_dynamo(fn):
    """``torch.compiler.assume_constant_result(fn)``: torch.compile evaluates ``fn`` once while it
    traces and keeps the result as a constant. Set as the attribute that decorator sets, since
    calling it imports torch._dynamo (1-2 s) when rnnkit is imported
    (tests/backends/test_registered_ops.py checks the attribute against torch's decorator)."""
    fn._dynamo_marked_constant = True
    return fn


@_constant_for_dynamo
def _kernels_unavailable(dtype: str) -> str:
    """Why the C library cannot serve ``dtype`` (``"float32"``) now, or ``""``: the environment
    and the library on disk, which torch.compile reads once, while it traces, as a constant."""
    if not cpu_kernels.enabled():
        return "RNNKIT_CPU_KERNELS switches them off"
    if cpu_kernels.library(getattr(torch, dtype)) is None:
        return "the C library could not be built or loaded (see the log)"
    return ""


def transforms_active() -> bool:
    """Whether a torch.func transform (``grad``, ``vmap``, ``jvp``, ...) is tracing this call: the
    fused kernels' autograd is opaque to those, the reference loop's torch ops are not."""
    return torch._C._are_functorch_transforms_active()


def fused_path(
    spec: CellSpec,
    like: Tensor,
    p: CellParams,
    backend: str = "fused",
    options: StepOptions | None = None,
) -> str:
    """``"cpu_kernels"``, ``"torch_ops"`` or ``"parallel"`` for ``backend`` ``"fused"`` (in that
    order of preference; ``"reference"`` for a cell that has none, and under a torch.func
    transform for a cell without a parallel form), or the one asked for; raises when the one
    asked for cannot serve the call."""
    if backend == "parallel" or ("parallel" in spec.backends and backend in ("fused", "auto")):
        why = parallel.refusal(spec, options)
        if why is None:
            return "parallel"  # torch ops: torch.func transforms trace them too
        if backend == "parallel":
            raise ValueError(f"backend='parallel' cannot run this {spec.title} layer: {why}")
        return "reference"
    if transforms_active():
        if backend in FUSED:
            raise ValueError(
                f"backend={backend!r} cannot run under a torch.func transform (grad, vmap, jvp): "
                "its autograd is opaque to them; use backend='fused' (which then takes the "
                "reference loop) or 'reference'"
            )
        logger.debug("a torch.func transform is active: %s runs the reference loop", spec.title)
        return "reference"
    refusal = _cpu_kernels_refusal(spec, like, p)
    if backend == "cpu_kernels" and refusal is not None:
        raise ValueError(f"backend='cpu_kernels' cannot run this {spec.title} layer: {refusal}")
    if backend == "torch_ops" and "torch_ops" not in spec.backends:
        raise ValueError(f"backend='torch_ops' has no {spec.title} kernel")
    if backend in FUSED:
        return backend
    if refusal is None:
        return "cpu_kernels"
    return "torch_ops" if "torch_ops" in spec.backends else "reference"


def run_direction(
    cell: str | CellSpec,
    x: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: StepOptions | None = None,
    backend: str = "fused",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer from its input ``x (T, N, D)``: the input projection and the
    recurrence. ``state`` holds one ``(N, size)`` tensor per state of the cell; ``lengths (N,)``.
    Returns ``(outputs (T, N, R), final state)``.

    On the C kernels the projection is the bare GEMM ``x W_ih^T`` and its layer norm and biases run
    inside the step kernel, which saves two passes over the ``(T, N, G*H)`` projections.
    """
    spec = get_cell(cell)
    opts = options or StepOptions()
    if backend == "reference" or x.shape[1] == 0:  # an empty batch: nothing to fuse
        kw = dict(lengths=lengths, reverse=reverse, options=drawn(opts, x))
        return reference.layer_direction(spec, x, state, p, **kw)
    path = fused_path(spec, x, p, check_backend(backend), opts)
    # the sLSTM's C loop takes the projections, as every non-C path does
    if path != "cpu_kernels" or spec.kernel == "slstm" or x.shape[0] == 0 or not _fusable(opts):
        return _scan_on(path, spec, input_projection(x, p), state, p, opts, lengths, reverse)
    w = p.w_hh if opts.w_hh is None else opts.w_hh  # a DropConnectDraw: applied in the op
    kw = dict(lengths=lengths, reverse=reverse)
    if spec.kernel != "lstm":
        return _gru_kernel(spec, x, state, p, w, p.w_ih, p.ln_ih, opts, **kw)
    bias = p.b_hh if p.b_ih is None else (p.b_ih if p.b_hh is None else p.b_ih + p.b_hh)
    return _lstm_kernel(x, p.w_ih, state, p, w, bias, p.ln_ih, opts, **kw)


def scan(
    cell: str | CellSpec,
    gx: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: StepOptions | None = None,
    backend: str = "fused",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The recurrence of one direction from its input projections ``gx (T, N, G*H)``; the contract
    of :func:`rnnkit.backends.reference.scan`, on the backend :func:`fused_path` picks."""
    spec = get_cell(cell)
    opts = options or StepOptions()
    if backend == "reference":
        return reference.scan(spec, gx, state, p, lengths=lengths, reverse=reverse,
                              options=drawn(opts, gx))  # fmt: skip
    path = fused_path(spec, gx, p, check_backend(backend), opts)
    return _scan_on(path, spec, gx, state, p, opts, lengths, reverse)


def _scan_on(
    path: str,
    spec: CellSpec,
    gx: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    opts: StepOptions,
    lengths: Tensor | None,
    reverse: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """:func:`scan` on the backend :func:`fused_path` chose (the reference loop for inputs the
    fused kernels do not cover)."""
    if path == "cpu_kernels" and spec.kernel == "slstm":
        if lengths is not None or opts.dropout_mask is not None or opts.w_hh is not None:
            path = "reference"  # what the sLSTM's C time loop does not cover
    if path != "cpu_kernels" or gx.shape[0] == 0 or gx.shape[1] == 0 or not _fusable(opts):
        opts = drawn(opts, gx)  # only the C kernels make zoneout draws themselves
    if path == "reference" or gx.shape[0] == 0 or gx.shape[1] == 0 or not _fusable(opts):
        logger.debug("scan: %s inputs the fused kernels do not cover; reference loop", spec.title)
        return reference.scan(spec, gx, state, p, lengths=lengths, reverse=reverse, options=opts)
    if path == "parallel":
        return parallel.scan(spec, gx, state, p, lengths=lengths, reverse=reverse)
    w = p.w_hh if opts.w_hh is None else opts.w_hh
    if path == "cpu_kernels" and spec.kernel == "slstm":  # cpu_kernels/slstm.py
        return slstm_kernels.sequence(gx, state, p, reverse=reverse)
    if path == "cpu_kernels":  # w may be a DropConnectDraw: the op applies it
        kw = dict(lengths=lengths, reverse=reverse)
        if spec.kernel == "lstm":
            return _lstm_kernel(gx, None, state, p, w, p.b_hh, None, opts, **kw)
        return _gru_kernel(spec, gx, state, p, w, None, None, opts, **kw)
    aux = _aux(spec, gx, opts, lengths, reverse)
    if spec.kernel == "lstm":
        inputs = LSTMInputs(gx, state[0], state[1], w, p.b_hh, p.w_hr, p.ln_hh, p.ln_c_weight,
                            p.ln_c_bias, p.peephole)  # fmt: skip
        if _needs_grad(inputs):
            out, h, c = LSTMSequence.apply(aux, *inputs)
            return out, (h, c)
        with torch.no_grad():
            hs, c_n, _ = lstm_forward(aux, *inputs, save=False)
        return aux.seq.outputs(hs), (aux.seq.last(hs), c_n)
    inputs = GRUInputs(gx, state[0], w, p.b_hh, p.ln_hh)
    gru = spec.kernel == "gru"
    fn, forward = (GRUSequence, gru_forward) if gru else (RNNSequence, rnn_forward)
    if _needs_grad(inputs):
        out, h = fn.apply(aux, *inputs)
        return out, (h,)
    with torch.no_grad():
        hs, _ = forward(aux, *inputs, save=False)
    return aux.seq.outputs(hs), (aux.seq.last(hs),)


def _aux(
    spec: CellSpec, gx: Tensor, opts: StepOptions, lengths: Tensor | None, reverse: bool
) -> Aux:
    zoned = {s.zoneout for s in spec.states}
    return direction_aux(
        gx,
        lengths=lengths,
        reverse=reverse,
        mask=opts.dropout_mask,
        zoneout_h=opts.zoneout_h,
        zoneout_c=opts.zoneout_c if "c" in zoned else None,
        nonlinearity=spec.nonlinearity,
    )


_PLAIN = (Tensor, torch.nn.Parameter)


def _plain_eager(tensors: tuple[Tensor | None, ...]) -> bool:
    """Whether nothing may need to see the registered op: no torch.compile or torch.func
    transform tracing, no dispatch mode (fake tensors, ``torch.export``, FLOP counters), no tensor
    subclass, no profiler."""
    return not (
        cpu_kernels.tracing()
        or torch._C._len_torch_dispatch_stack() > 0
        or torch.autograd.profiler._is_profiler_enabled
        or any(t is not None and type(t) not in _PLAIN for t in tensors)
    )


def _no_grad_op(name: str, tensors: tuple[Tensor | None, ...]):
    """``torch.ops.rnnkit.<name>`` for a call without gradients, or, in plain eager code, the
    op's CPU kernel itself (:mod:`.cpu_kernels.ops`): the dispatcher and the custom-op autograd
    wrapper cost ~15-20 us per direction, a few percent of a small layer's forward."""
    if _plain_eager(tensors):
        return getattr(kernel_ops, name)
    return getattr(torch.ops.rnnkit, name)


_EAGER = {
    "lstm_sequence": kernel_ops.EagerLSTMSequence,
    "gru_sequence": kernel_ops.EagerGRUSequence,
}


def _training_op(name: str, tensors: tuple[Tensor | None, ...]):
    """``torch.ops.rnnkit.<name>`` for a call that autograd differentiates, or, in plain eager
    code, the same kernels and autograd formula as a ``torch.autograd.Function``
    (:class:`.cpu_kernels.ops.EagerLSTMSequence`), which skips the dispatcher and the custom-op
    autograd wrapper (~0.1-0.2 ms per direction)."""
    if _plain_eager(tensors):
        return _EAGER[name].apply
    return getattr(torch.ops.rnnkit, name)


def drawn(opts: StepOptions, like: Tensor) -> StepOptions:
    """``opts`` with zoneout masks that came as draws for the C kernels to make
    (:class:`~.cpu_kernels.library.BernoulliDraws`) drawn as tensors and DropConnect that came
    as a draw applied: what every other backend reads (the same values)."""
    zh, zc, w = opts.zoneout_h, opts.zoneout_c, opts.w_hh
    drawn_w = isinstance(w, regularization.DropConnectDraw)
    if not (drawn_w or isinstance(zh, BernoulliDraws) or isinstance(zc, BernoulliDraws)):
        return opts
    as_tensor = [z.tensor(like) if isinstance(z, BernoulliDraws) else z for z in (zh, zc)]
    return StepOptions(opts.dropout_mask, w.applied() if drawn_w else w, *as_tensor)


def _zoneout_args(z) -> tuple[Tensor | None, float]:
    """An op's ``(mask, rate)`` pair of a zoneout option (draws: their probability)."""
    if isinstance(z, BernoulliDraws):
        return None, z.p
    return (z, 0.0) if isinstance(z, Tensor) else (None, float(z))


def _seeds(*draws) -> list[int] | None:
    """The op's ``seeds`` argument: the seed of each zoneout and DropConnect draw the op makes
    itself (-1 for a mask, a rate or no DropConnect), None if there is none."""
    if not any(isinstance(d, (BernoulliDraws, regularization.DropConnectDraw)) for d in draws):
        return None
    return [
        d.seed if isinstance(d, (BernoulliDraws, regularization.DropConnectDraw)) else -1
        for d in draws
    ]


def _weight_args(w) -> tuple[Tensor, float]:
    """The op's recurrent weight and DropConnect rate (0: ``w`` is the matrix to run)."""
    return (w.weight, w.p) if isinstance(w, regularization.DropConnectDraw) else (w, 0.0)


def _gru_kernel(spec, x, state, p, w, w_ih, ln_ih, opts, *, lengths, reverse):
    """``x`` is the layer input with ``w_ih`` (projected inside), or the projections with None:
    ``torch.ops.rnnkit.gru_sequence``."""
    b_ih = None if w_ih is None else p.b_ih
    w_run, drop = _weight_args(w)
    tensors = (x, w_ih, state[0], w_run, b_ih, p.b_hh, ln_ih, p.ln_hh)
    save = _needs_grad(tensors)
    op = (_training_op if save else _no_grad_op)("gru_sequence", tensors)
    out, h, *_ = op(
        *tensors,
        opts.dropout_mask,
        *_zoneout_args(opts.zoneout_h),
        lengths,
        reverse,
        spec.name,
        save,
        _seeds(opts.zoneout_h, w),
        drop,
    )
    return out, (h,)


def _lstm_kernel(x, w_ih, state, p, w, bias, ln_ih, opts, *, lengths, reverse):
    """``x`` is the layer input with ``w_ih`` (projected inside), or the projections with None:
    ``torch.ops.rnnkit.lstm_sequence``."""
    w_run, drop = _weight_args(w)
    tensors = (x, w_ih, state[0], state[1], w_run, bias, ln_ih, p.ln_hh, p.ln_c_weight,
               p.ln_c_bias, p.peephole)  # fmt: skip
    save = _needs_grad(tensors)
    op = (_training_op if save else _no_grad_op)("lstm_sequence", tensors)
    out, h, c, *_ = op(
        *tensors,
        opts.dropout_mask,
        *_zoneout_args(opts.zoneout_h),
        *_zoneout_args(opts.zoneout_c),
        lengths,
        reverse,
        save,
        _seeds(opts.zoneout_h, opts.zoneout_c, w),
        drop,
    )
    return out, (h, c)
