"""What rnnkit's layers and cells share: a registered cell (:attr:`spec`), its validated options
(:attr:`variants`), the parameters those options add (one set per parameter suffix), their
initialisation, and pickling with the spec by name."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .options import Variants, init_forget_bias, init_variant_parameter
from .registry import CellSpec, get_cell


class VariantModule:
    """A mixin over a torch module with ``hidden_size`` and ``bias``; subclasses say which
    parameter suffixes they carry (``_l0``, ``_l0_reverse``, ...; ``""`` for a cell)."""

    spec: CellSpec
    variants: Variants

    def _parameter_suffixes(self) -> list[str]:
        raise NotImplementedError

    def _add_variant_parameters(self, spec: CellSpec, variants: Variants, like: Tensor) -> None:
        """Register the parameters ``variants`` add to ``spec`` (on ``like``'s device and dtype)
        for every suffix, and initialise them."""
        self.spec, self.variants = spec, variants
        factory = {"device": like.device, "dtype": like.dtype}
        shapes = spec.parameters(self.hidden_size, variants)
        for sfx in self._parameter_suffixes():
            for name, shape in shapes.items():
                self.register_parameter(f"{name}{sfx}", nn.Parameter(torch.empty(shape, **factory)))
        self.reset_variant_parameters()

    def reset_variant_parameters(self) -> None:
        """The options' parameters, the forget-gate bias and the cell's own initialisation
        (:attr:`rnnkit.registry.CellSpec.init_parameter`), after torch's uniform one."""
        init = self.spec.init_parameter
        for name, param in self.named_parameters():
            init_variant_parameter(name, param, self.hidden_size)
            if init is not None:
                init(name, param, self.hidden_size, self.variants)
        if self.variants.forget_bias is not None and self.bias:
            for sfx in self._parameter_suffixes():
                init_forget_bias(
                    getattr(self, f"bias_ih{sfx}"),
                    getattr(self, f"bias_hh{sfx}"),
                    self.variants.forget_bias,
                    self.hidden_size,
                )

    def _checked_input(
        self, input: Any, ranks: tuple[int, ...], shapes: str, natively: bool, packed: bool = False
    ) -> Tensor:
        """``input`` if it is a floating-point tensor of one of ``ranks`` (described as ``shapes``)
        with ``input_size`` features last, in the parameters' dtype (torch.nn's own kernels check
        that themselves when they run: ``natively``); else a TypeError/ValueError naming what
        was expected and what came."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            kinds = "a Tensor or PackedSequence" if packed else "a Tensor"
            raise TypeError(f"input must be {kinds}, got {type(input).__name__}")
        if input.dim() not in ranks:
            raise ValueError(f"{name} expects input {shapes}, got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name} expects {self.input_size} input features (input_size {self.input_size}) in the last "
                f"dimension, got {input.shape[-1]} (input shape {tuple(input.shape)})"
            )
        if not input.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")
        dtype = next(self.parameters()).dtype
        if not natively and input.dtype != dtype:
            raise TypeError(
                f"{name} has {dtype} parameters, got {input.dtype} input: convert one to the "
                f"other (e.g. module.to({input.dtype}) or input.to({dtype}))"
            )
        return input

    def __getstate__(self) -> dict[str, Any]:
        """The module's state with its cell spec by name (a spec holds functions, which
        ``torch.load``'s default ``weights_only=True`` does not unpickle)."""
        state = dict(super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__)
        if isinstance(state.get("spec"), CellSpec):
            state["spec"] = state["spec"].name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if isinstance(state.get("spec"), str):
            state["spec"] = get_cell(state["spec"])
        super().__setstate__(state)
