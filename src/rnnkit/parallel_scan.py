"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` over a whole sequence at once, for the
cells whose gates read only the input (minGRU and minLSTM; Feng et al. 2024, "Were RNNs All We
Needed?"), with ``a_t`` in ``(0, 1]`` and ``b_t > 0``.

* :func:`log_scan`: the parallel scan in log space of Heinsen 2023 ("Efficient Parallelization of
  a Ubiquitous Sequential Computation"): with ``a*_t = cumsum(log a)_t``,
  ``h_t = exp(a*_t) h_0 + exp(a*_t + logcumsumexp(log b - a*)_t)``. The ``h_0`` term is split off,
  so ``h_0`` may have any sign (log space needs positive terms: ``b_t > 0`` is).
* :func:`chunked_scan`: the same recurrence cut into chunks of ``chunk`` steps: inside every chunk
  the steps run one after another in linear space for all chunks at once, and the chunks are
  joined by :func:`log_scan` over their end values, in float64; ``chunk >= T`` is the plain
  loop. Both levels are stable: inside a chunk ``|h|`` never grows (``0 <= a <= 1``), and the
  join never exponentiates a large number; float32 keeps about 1e-7 relative accuracy at any
  length, where :func:`log_scan` alone loses about ``|cumsum(log a)| * 6e-8`` (1e-3 at 4096
  steps of typical gates).
* :func:`scan_sequence`: ``lengths`` and ``reverse`` as :func:`rnnkit.backends.reference.scan`
  gives them: each sequence's padded steps output zeros and leave its state alone, the reverse
  direction starts at each sequence's own last valid step.

Autograd differentiates every function here (only torch ops). Shapes: ``(T, N, H)`` sequences,
``(N, H)`` states.

Why chunks: on a CPU ``torch.logcumsumexp`` costs tens of nanoseconds per element (a scalar
loop), several times a step-by-step loop's whole step, and the log-space coefficients cost about
twice the elementwise passes of the linear ones; the chunked form runs ``chunk`` small steps on
linear coefficients plus one log-space scan over ``T / chunk`` ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

#: steps per chunk of :func:`chunked_scan` when the caller does not say (on CPU chunks of 64
#: steps were the fastest: ``python -m benchmarks.scan``, ``docs/cells.md``)
DEFAULT_CHUNK = 64


def default_chunk(like: Tensor) -> int:
    """The steps per chunk for tensors like ``like``: :data:`DEFAULT_CHUNK`."""
    return DEFAULT_CHUNK


def log_scan(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Heinsen's log-space scan of ``h_t = a_t h_{t-1} + b_t`` over dimension 0.

    ``log_a``, ``log_b (T, ...)`` (``log_a <= 0``; ``log_b`` finite or ``-inf``), ``h0 (...)``
    of any sign or None (zeros) -> ``h (T, ...)``. ``h_t = A_t h0 + A_t sum_{s<=t} b_s / A_s``
    with ``A_t = prod_{s<=t} a_s``, in logs: ``log(A_t sum b_s / A_s) = a*_t +
    logcumsumexp(log b - a*)_t``.
    """
    a_star = torch.cumsum(log_a, dim=0)
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=0))
    return h if h0 is None else h + torch.exp(a_star) * h0


def chunk_size(steps: int, chunk: int) -> int:
    """The steps per chunk actually used for ``steps`` steps when ``chunk`` is asked for: all of
    them when ``chunk >= steps``, else the largest divisor of ``steps`` in ``(chunk/2, chunk]``
    (no padding), else ``chunk``."""
    if chunk >= steps:
        return steps
    return next((c for c in range(chunk, chunk // 2, -1) if steps % c == 0), chunk)


def chunked_scan(
    a: Tensor, b: Tensor, h0: Tensor | None = None, chunk: int | None = None
) -> Tensor:
    """:func:`log_scan`'s recurrence from linear coefficients, chunk by chunk (see the module
    docstring).

    ``a (T, ...)`` in ``[0, 1]``, ``b (T, ...) >= 0``, ``h0 (...)`` of any sign or None,
    ``chunk`` steps per chunk (None: :func:`default_chunk`) -> ``h (T, ...)``. Inside a chunk
    ``local_t = a_t local_{t-1} + b_t`` from zero and ``decay_t = prod a``; the chunks' starts
    ``s_k = A_{k-1} s_{k-1} + B_{k-1}`` (``A``, ``B`` a chunk's last ``decay`` and ``local``) come
    from :func:`log_scan` in float64; then ``h = local + decay * s``.
    """
    steps = a.shape[0]
    chunk = default_chunk(a) if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of steps, got {chunk}")
    chunk = chunk_size(steps, chunk)
    start0 = torch.zeros_like(b[0]) if h0 is None else h0.expand_as(b[0])
    if chunk == steps:  # one chunk: the recurrence from h0 itself
        return torch.stack(_steps(a.unbind(0), b.unbind(0), start0))
    count = math.ceil(steps / chunk)
    pad = count * chunk - steps
    if pad:  # a = 1, b = 0 after the end: the padded steps change nothing before it
        a = torch.cat([a, a.new_ones(pad, *a.shape[1:])])
        b = torch.cat([b, b.new_zeros(pad, *b.shape[1:])])
    rest = a.shape[1:]
    a, b = a.view(count, chunk, *rest), b.view(count, chunk, *rest)
    local, decay = torch.zeros_like(b[:, 0]), torch.ones_like(a[:, 0])
    locals_, decays = [], []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        local = torch.addcmul(b_t, a_t, local)
        decay = decay * a_t
        locals_.append(local)
        decays.append(decay)
    local, decay = torch.stack(locals_, 1), torch.stack(decays, 1)  # (K, C, ...)
    # the starts in log space and float64: cumsum(log A) grows with T, and float32 would lose
    # |cumsum| * 6e-8 of log h; A_k or B_k below the smallest normal number contributes nothing
    wide = torch.float64 if b.device.type in ("cpu", "cuda") else b.dtype
    tiny = torch.finfo(wide).tiny
    log_ends_a = torch.log(decay[:-1, -1].to(wide).clamp_min(tiny))
    log_ends_b = torch.log(local[:-1, -1].to(wide).clamp_min(tiny))
    later = log_scan(log_ends_a, log_ends_b, None if h0 is None else h0.to(wide))
    starts = torch.cat([start0.unsqueeze(0), later.to(b.dtype)])
    out = torch.addcmul(local, decay, starts.unsqueeze(1))
    return out.reshape(count * chunk, *rest)[:steps]


def _steps(a: tuple[Tensor, ...], b: tuple[Tensor, ...], h: Tensor) -> list[Tensor]:
    out = []
    for a_t, b_t in zip(a, b):
        h = torch.addcmul(b_t, a_t, h)
        out.append(h)
    return out


Coefficients = Callable[[Tensor], tuple[Tensor, Tensor]]


def linear_sequence(coefficients: Coefficients, log_coefficients: Coefficients):
    """The ``CellSpec.sequence`` of a one-state cell whose step is ``h_t = a_t h_{t-1} + b_t``
    (minGRU, minLSTM): :func:`scan_sequence` of its coefficients, with the variant option
    ``scan_chunk`` and the backend's ``fused`` kernel."""

    def sequence(gx, state, p, *, lengths=None, reverse=False, fused=None):
        chunk = getattr(p.variants, "scan_chunk", None)
        out, h = scan_sequence(coefficients, log_coefficients, gx, state[0], lengths=lengths,
                               reverse=reverse, chunk=chunk, fused=fused)  # fmt: skip
        return out, (h,)

    return sequence


def scan_sequence(
    coefficients: Coefficients,
    log_coefficients: Coefficients,
    gx: Tensor,
    h0: Tensor,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    chunk: int | None = None,
    fused: Callable[[Tensor, Tensor], Tensor | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """One direction of a cell whose step is ``h_t = a_t h_{t-1} + b_t``, with ``(a, b) =
    coefficients(gx)`` and ``(log a, log b) = log_coefficients(gx)``, ``gx (T, N, G*H) -> (T, N,
    H)`` each, elementwise in time: :func:`log_scan` of the logs for ``chunk=1``, else
    :func:`chunked_scan` of the linear ones (fewer elementwise passes than logs and exps).

    ``h0 (N, H)``; ``lengths (N,)``: steps ``t >= lengths[n]`` output zeros and leave sequence
    ``n``'s state alone; ``reverse``: each sequence runs from its own last valid step back to 0.
    ``fused(gx, h0) -> h (T, N, H)``, when given and no ``chunk`` is asked for, computes the
    coefficients and the scan at once (None where it cannot serve the call).
    Returns ``(outputs (T, N, H), h_n (N, H))``, ``h_n`` each sequence's state after its last
    step.
    """
    steps, batch = gx.shape[0], gx.shape[1]
    order = None  # the time index each sequence reads at each step, when it is not 0..T-1
    if reverse and lengths is None:
        gx = gx.flip(0)
    elif reverse:
        t = torch.arange(steps, device=gx.device)[:, None]
        last = (lengths.to(gx.device) - 1)[None, :]
        order = torch.where(t <= last, last - t, t).unsqueeze(-1)  # (T, N, 1), an involution
        gx = gx.gather(0, order.expand_as(gx))
    h = fused(gx, h0) if fused is not None and chunk is None else None
    if h is not None:
        pass  # the coefficients and the scan in one kernel (rnnkit.backends.cpu_kernels.minrnn)
    elif chunk == 1:
        h = log_scan(*log_coefficients(gx), h0)
    else:
        h = chunked_scan(*coefficients(gx), h0, chunk)
    if lengths is None:
        final = h[-1]
        return (h.flip(0) if reverse else h), final
    last = (lengths.to(gx.device) - 1).view(1, batch, 1).expand(1, batch, h.shape[-1])
    final = h.gather(0, last).squeeze(0)  # padded steps come after a sequence's last one
    if order is not None:
        h = h.gather(0, order.expand_as(h))
    valid = torch.arange(steps, device=gx.device)[:, None] < lengths.to(gx.device)
    return torch.where(valid.unsqueeze(-1), h, torch.zeros_like(h)), final
