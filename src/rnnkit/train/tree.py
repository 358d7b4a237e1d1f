"""Nested Python state <-> (JSON skeleton, named tensors), so checkpoints need no pickle.

``encode_tree`` walks tuples, lists and dicts: tensors go to a ``{name: tensor}`` dict (for a
safetensors file) under a path-like name, and the skeleton keeps ``{"tensor": name}``,
``{"tuple": [...]}``, ``{"dict": [[key, value], ...]}`` (keys may be ints, as in an optimizer's
state dict), plain lists and JSON scalars. ``decode_tree`` rebuilds the original structure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor


def encode_tree(obj: Any, prefix: str) -> tuple[Any, dict[str, Tensor]]:
    """Split nested state into a JSON-able skeleton and ``{name: tensor}`` (names start ``prefix``).

    Supports None, bool, int, float, str, NumPy scalars, tensors, and tuples/lists/dicts of them.
    """
    tensors: dict[str, Tensor] = {}

    def name_for(path: str) -> str:
        name, n = path, 1
        while name in tensors:
            name, n = f"{path}~{n}", n + 1
        return name

    def enc(x: Any, path: str) -> Any:
        if isinstance(x, Tensor):
            name = name_for(path)
            tensors[name] = x.detach().to("cpu").contiguous()
            return {"tensor": name}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, tuple):
            return {"tuple": [enc(v, f"{path}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [enc(v, f"{path}.{i}") for i, v in enumerate(x)]
        if isinstance(x, dict):
            items = []
            for k, v in x.items():
                if not (k is None or isinstance(k, (bool, int, float, str))):
                    raise TypeError(
                        f"dict keys in {path!r} must be JSON scalars, got {type(k).__name__}"
                    )
                items.append([k, enc(v, f"{path}.{k}")])
            return {"dict": items}
        raise TypeError(
            f"cannot store {type(x).__name__} at {path!r} in a checkpoint: expected tensors, "
            "numbers, strings, None, or tuples/lists/dicts of them"
        )

    return enc(obj, prefix), tensors


def decode_tree(skeleton: Any, tensors: dict[str, Tensor], source: str = "checkpoint") -> Any:
    """Inverse of ``encode_tree``; a ValueError naming ``source`` if a tensor is missing."""

    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if isinstance(x, dict):
            if "tensor" in x:
                if x["tensor"] not in tensors:
                    raise ValueError(f"{source}: tensor {x['tensor']!r} is missing")
                return tensors[x["tensor"]]
            if "tuple" in x:
                return tuple(dec(v) for v in x["tuple"])
            if "dict" in x:
                return {k: dec(v) for k, v in x["dict"]}
            raise ValueError(f"{source}: unknown node {sorted(x)}")
        return x

    return dec(skeleton)
