"""The settings every task config shares, as dataclasses the task configs extend.

- :class:`ModelConfig`: ``hidden_size``, ``num_layers``, ``dropout``, ``batch_size`` and ``seed``,
  which every task has;
- :class:`CellConfig`: plus ``cell``, one of the task's :attr:`CellConfig.CELLS`, names in the
  cell registry (:mod:`rnnkit.registry`): a task offers another cell by adding its name there;
- :class:`VariantConfig`: plus the layer options of :mod:`rnnkit.options` (layer norm, recurrent
  dropout, DropConnect, zoneout, peepholes, forget-gate bias), given to the layer as far as the
  chosen cell accepts them (:meth:`VariantConfig.layer_options`).

A task config redeclares a shared field only to change its default, and its ``__post_init__``
calls ``super().__post_init__()``. Every field is a flag of ``rnnkit train TASK``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..registry import CellSpec, cell_names, get_cell

VARIANTS = (
    "layer_norm", "recurrent_dropout", "weight_drop", "zoneout", "peephole", "forget_bias",
    "recurrent_max", "num_heads", "forget_gate", "scan_chunk",
)  # fmt: skip


# given to every layer that accepts them, set or not (the options of the first rnnkit release)
_ALWAYS = VARIANTS[:6]


def check_positive(cfg: Any, *names: str) -> None:
    """ValueError ``'{name} must be >= 1, got {value}'`` for the first field below 1."""
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")


def check_choices(cfg: Any, **choices: tuple[Any, ...]) -> None:
    """ValueError ``'{name} must be one of {allowed}, got {value!r}'`` for the first field whose
    value is not among its ``allowed`` values."""
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")


@dataclass
class ModelConfig:
    """The fields every task has: the recurrent layers' ``hidden_size`` and ``num_layers``, the
    ``dropout`` rate, the training ``batch_size`` and the ``seed`` of data and shuffling."""

    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(self, "hidden_size", "num_layers", "batch_size")


@dataclass
class CellConfig(ModelConfig):
    """:class:`ModelConfig` plus the ``cell``: one of ``CELLS``, names of registered cells."""

    CELLS: ClassVar[tuple[str, ...]] = ("lstm", "gru", "mingru", "minlstm", "indrnn", "slstm")

    cell: str = "lstm"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in cls.CELLS if name not in cell_names()]
        if unknown:
            raise ValueError(
                f"{cls.__name__}.CELLS: {unknown} are not registered cells; "
                f"registered: {cell_names()}"
            )

    def __post_init__(self) -> None:
        check_choices(self, cell=self.CELLS)
        super().__post_init__()

    @property
    def spec(self) -> CellSpec:
        """The registered cell (:class:`rnnkit.registry.CellSpec`) named by ``cell``."""
        return get_cell(self.cell)


@dataclass
class VariantConfig(CellConfig):
    """:class:`CellConfig` plus the layer options of :mod:`rnnkit.options`, each given to the
    layer when the chosen cell accepts it; one set for a cell that refuses it is an error naming
    both (``peephole`` is the LSTM's, ``recurrent_max`` the IndRNN's, ``num_heads`` and
    ``forget_gate`` the sLSTM's, ``scan_chunk`` minGRU's and minLSTM's)."""

    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    zoneout: float = 0.0
    peephole: bool = False
    forget_bias: float | None = None
    recurrent_max: float | None = None
    num_heads: int | None = None
    forget_gate: str = "exp"
    scan_chunk: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.peephole and not self.spec.accepts("peephole")) or (
            self.forget_bias is not None and not self.spec.accepts("forget_bias")
        ):
            raise ValueError(f"peephole and forget_bias are LSTM options, not {self.cell}")
        defaults = VariantConfig.__dataclass_fields__
        for name in VARIANTS:
            if getattr(self, name) != defaults[name].default and not self.spec.accepts(name):
                raise ValueError(
                    f"--{name.replace('_', '-')} is not an option of cell {self.cell} "
                    f"({self.spec.title} accepts {', '.join(self.spec.accepted_options())})"
                )
        self.spec.weight_hh_shape(self.hidden_size, self)  # e.g. heads that divide hidden_size

    def layer_options(self) -> dict[str, Any]:
        """The options as keyword arguments of the cell's layer: those the cell accepts (the
        common ones always, for the LSTM/GRU/RNN layers' signatures; the others when set)."""
        defaults = VariantConfig.__dataclass_fields__
        return {
            name: getattr(self, name)
            for name in VARIANTS
            if self.spec.accepts(name)
            and (name in _ALWAYS or getattr(self, name) != defaults[name].default)
        }
