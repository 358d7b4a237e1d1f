"""Wrappers: ``Stateful`` (state kept between calls) and ``TimeDistributed`` (a module at every step)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .recurrent import RecurrentCell
from .state import detach_state, reset_state


class Stateful(nn.Module):
    """Keep a recurrent module's state between calls: Chainer's ``L.LSTM`` and Keras' ``stateful=True``.

    Wraps a sequence layer (``rnnkit.LSTM``/``GRU``/``RNN`` or their torch.nn namesakes,
    ``rnnkit.Recurrent`` and its named layers; each call takes ``(T, N, C)`` and returns the
    output sequence) or a cell (``LSTMCell``, ``RecurrentCell``, ``SLSTMCell`` etc.; each call
    takes one step ``(N, C)`` and returns ``h``). The state carried to the next call is the
    module's final state.

    * :meth:`reset_state` forgets it (the next call starts from zeros);
    * :meth:`detach_state` cuts the graph (truncated BPTT) but keeps the values;
    * ``reset_mask (N,)`` in :meth:`forward` zeroes the state of the streams whose sequence ended before
      this call, so streams of different lengths can share a batch.

    The batch size is fixed by the first call after a reset; a call with another batch size raises a
    ValueError (call :meth:`reset_state` first).

    Example::

        >>> lstm = rnnkit.Stateful(rnnkit.LSTM(8, 16))
        >>> for chunk in torch.randn(100, 4, 8).split(10):   # 10 windows of (10, 4, 8)
        ...     out = lstm(chunk)
        ...     lstm.detach_state()
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.is_cell = isinstance(module, (nn.RNNCellBase, RecurrentCell))
        self.state: Any = None
        self._batch: int | None = None  # the batch size of the carried state; None: unbatched

    def reset_state(self) -> None:
        """Forget the carried state; the next call starts from zeros."""
        self.state = None
        self._batch = None

    def detach_state(self) -> None:
        """Keep the carried values but cut the autograd graph (truncated BPTT)."""
        self.state = detach_state(self.state)

    @staticmethod
    def _describe(batch: int | None) -> str:
        return "an unbatched input" if batch is None else f"batch size {batch}"

    def forward(
        self, input: Tensor, lengths: Tensor | None = None, reset_mask: Tensor | None = None
    ) -> Tensor:
        """``input`` ``(T, N, C)`` (``(N, T, C)`` with the layer's ``batch_first``) for a layer,
        ``(N, C)`` for a cell; ``lengths (N,)`` for a layer; ``reset_mask (N,)`` bool. Returns the
        output sequence (layer) or ``h`` (cell)."""
        batch_dim = 0 if self.is_cell else (0 if getattr(self.module, "batch_first", False) else 1)
        unbatched = input.dim() == (1 if self.is_cell else 2)
        batch = None if unbatched else input.shape[batch_dim]
        if self.state is not None:
            if batch != self._batch:
                raise ValueError(
                    f"Stateful carries state for {self._describe(self._batch)}, got "
                    f"{'an unbatched input' if batch is None else f'an input with batch size {batch}'}"
                    "; call reset_state() before changing the batch size"
                )
            if reset_mask is not None:
                if batch is None:
                    raise ValueError("reset_mask needs a batched input, got an unbatched one")
                mask = torch.as_tensor(reset_mask, dtype=torch.bool)
                if mask.shape != (batch,):
                    raise ValueError(
                        f"reset_mask must have shape ({batch},), got {tuple(mask.shape)}"
                    )
                self.state = reset_state(self.state, mask, batch_dim=0 if self.is_cell else 1)
        self._batch = batch
        if self.is_cell:
            if lengths is not None:
                raise ValueError("lengths applies to sequence layers, not to a cell's single step")
            self.state = self.module(input, self.state)
            return self.state[0] if isinstance(self.state, tuple) else self.state
        if lengths is None:
            out, self.state = self.module(input, self.state)
        else:
            out, self.state = self.module(input, self.state, lengths=lengths)
        return out


class TimeDistributed(nn.Module):
    """Apply a module taking ``(N, ...)`` to every step of ``(T, N, ...)`` (or ``(N, T, ...)`` with
    ``batch_first``): Keras' and NNabla's ``TimeDistributed``, e.g. a CNN over the frames of a video.

    The steps are folded into the batch (one call of ``module`` on ``(T*N, ...)``) and unfolded back.

    Example::

        >>> cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
        >>> TimeDistributed(cnn)(torch.randn(7, 2, 1, 8, 8)).shape   # (T, N, 4*6*6)
        torch.Size([7, 2, 144])
    """

    def __init__(self, module: nn.Module, batch_first: bool = False) -> None:
        super().__init__()
        self.module = module
        self.batch_first = batch_first

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"TimeDistributed expects a Tensor, got {type(input).__name__}")
        if input.dim() < 3:
            raise ValueError(
                "TimeDistributed expects (T, N, ...) or (N, T, ...) with at least 3 dimensions, "
                f"got shape {tuple(input.shape)}"
            )
        a, b = input.shape[:2]
        out = self.module(input.reshape(a * b, *input.shape[2:]))
        if not isinstance(out, Tensor) or out.shape[0] != a * b:
            raise ValueError(
                f"the wrapped module must return a Tensor with {a * b} rows (one per step and "
                f"sample), got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}"
            )
        return out.reshape(a, b, *out.shape[1:])

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}"
