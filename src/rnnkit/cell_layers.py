"""One named layer and one named cell per registered cell that has no torch.nn twin: thin
subclasses of :class:`rnnkit.Recurrent` and :class:`rnnkit.RecurrentCell` with the cell fixed.

=============  ===============  ============================================================
layer          cell             cell type (equations and paper: ``rnnkit.registry.<name>``)
=============  ===============  ============================================================
``MinGRU``     ``MinGRUCell``   minGRU (Feng et al. 2024), parallel scan over a sequence
``MinLSTM``    ``MinLSTMCell``  minLSTM (Feng et al. 2024), parallel scan over a sequence
``IndRNN``     ``IndRNNCell``   IndRNN (Li et al. 2018), elementwise recurrent weight
``SLSTM``      ``SLSTMCell``    sLSTM of xLSTM (Beck et al. 2024), four states, heads
=============  ===============  ============================================================

Layers: ``(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
bidirectional=False, device=None, dtype=None, *, backend="auto", **options)``, input ``(T, N, C)``
(``(N, T, C)`` with ``batch_first``), output ``(T, N, D*H)``, state ``(L*D, N, H)`` per state (a
tuple in the spec's order for the sLSTM's ``(h, c, n, m)``), ``lengths=`` as
:class:`rnnkit.LSTM`. Cells: ``(input_size, hidden_size, bias=True, device=None, dtype=None,
**options)``, ``(N, C), state -> state``. ``options`` are those the cell accepts
(:mod:`rnnkit.options`); any other raises a ValueError naming the cell and the option.

Example::

    >>> layer = rnnkit.MinGRU(10, 20, num_layers=2, bidirectional=True)
    >>> out, h = layer(torch.randn(50, 3, 10), lengths=torch.tensor([50, 20, 7]))
    >>> out, (h, c, n, m) = rnnkit.SLSTM(10, 20, num_heads=4)(torch.randn(50, 3, 10))
"""

from __future__ import annotations

from typing import Any

from .recurrent import Recurrent, RecurrentCell


class _NamedLayer(Recurrent):
    cell_name = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        backend: str = "auto",
        **options: Any,
    ) -> None:
        super().__init__(
            self.cell_name, input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, device, dtype, backend=backend, **options,
        )  # fmt: skip


class _NamedCell(RecurrentCell):
    cell_name = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(self.cell_name, input_size, hidden_size, bias, device, dtype, **options)


class MinGRU(_NamedLayer):
    """minGRU layer (Feng et al. 2024): ``h_t = (1 - z_t) h_{t-1} + z_t g(k_h)``, ``z_t =
    sigmoid(k_z)``, gates from ``x_t`` only (:mod:`rnnkit.registry.mingru`). Parameters
    ``weight_ih_l{k} (2H, C)``, ``bias_ih_l{k} (2H,)`` (gates ``z, h``); no ``weight_hh``.
    ``backend="auto"`` runs a whole sequence as one parallel scan (:mod:`rnnkit.parallel_scan`),
    ``"reference"`` step by step. Options: ``layer_norm``, ``scan_chunk``."""

    cell_name = "mingru"


class MinLSTM(_NamedLayer):
    """minLSTM layer (Feng et al. 2024): ``h_t = f'_t h_{t-1} + i'_t g(k_h)`` with the forget and
    input gates normalised to sum to one, gates from ``x_t`` only
    (:mod:`rnnkit.registry.minlstm`). Parameters ``weight_ih_l{k} (3H, C)``, ``bias_ih_l{k}
    (3H,)`` (gates ``f, i, h``). Backends and options as :class:`MinGRU`."""

    cell_name = "minlstm"


class IndRNN(_NamedLayer):
    """IndRNN layer (Li et al. 2018): ``h_t = relu(W x_t + u * h_{t-1} + b)`` with ``u (H,)``
    (:mod:`rnnkit.registry.indrnn`). Parameters ``weight_ih_l{k} (H, C)``, ``weight_hh_l{k}
    (H,)`` (``u``, initialised uniform in ``[0, 1]``), ``bias_ih_l{k}``, ``bias_hh_l{k} (H,)``.
    Options: ``recurrent_max`` (clamp of ``u`` in every step), ``layer_norm`` (input
    projection), ``recurrent_dropout``, ``weight_drop``, ``zoneout``."""

    cell_name = "indrnn"


class SLSTM(_NamedLayer):
    """sLSTM layer (Beck et al. 2024, xLSTM): exponential gates with a stabiliser, state ``(h, c,
    n, m)`` (:mod:`rnnkit.registry.slstm`). Parameters ``weight_ih_l{k} (4H, C)``,
    ``weight_hh_l{k} (K, 4H/K, H/K)`` (block-diagonal by ``K`` heads), ``bias_ih_l{k}``,
    ``bias_hh_l{k} (4H,)`` (gates ``i, f, z, o``). Options: ``num_heads``, ``forget_gate``
    (``"exp"``/``"sigmoid"``), ``layer_norm``, ``recurrent_dropout``, ``weight_drop``,
    ``forget_bias``."""

    cell_name = "slstm"


class MinGRUCell(_NamedCell):
    """One minGRU step: ``(N, C), h (N, H) -> h'`` (:class:`MinGRU`'s math and parameters)."""

    cell_name = "mingru"


class MinLSTMCell(_NamedCell):
    """One minLSTM step: ``(N, C), h (N, H) -> h'`` (:class:`MinLSTM`'s math and parameters)."""

    cell_name = "minlstm"


class IndRNNCell(_NamedCell):
    """One IndRNN step: ``(N, C), h (N, H) -> h'`` (:class:`IndRNN`'s math and parameters)."""

    cell_name = "indrnn"


class SLSTMCell(_NamedCell):
    """One sLSTM step: ``(N, C), (h, c, n, m) -> (h', c', n', m')``, each ``(N, H)``
    (:class:`SLSTM`'s math and parameters)."""

    cell_name = "slstm"
