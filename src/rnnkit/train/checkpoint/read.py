"""Loading a checkpoint: every file checked against the manifest first, then every key and shape
against the model and optimizer, so that a load is whole or raises (there is no partial load);
resuming falls back past damaged checkpoints to the newest intact one."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..tree import decode_tree
from .layout import (
    ALIASES_KEY,
    FILES,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    TENSOR_FILES,
    CheckpointCorrupt,
    CheckpointError,
    checkpoints_root,
    require_file,
)
from .pointers import resolve_checkpoint, resume_candidates
from .verify import read_meta, read_safetensors, verify_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    """What ``load_checkpoint`` read: the directory, trainer.json's contents (``meta``) and the
    per-rank states (``ranks[r]``: whatever the trainer saved, tensors on the CPU)."""

    path: Path
    meta: dict[str, Any]
    ranks: list[Any] = field(default_factory=list)


def _decode(skeleton: Any, tensors: dict[str, Tensor], source: Path) -> Any:
    try:
        return decode_tree(skeleton, tensors, str(source))
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointCorrupt(f"{source} does not match {META_FILE}: {e}") from e


# --------------------------------------------------------------------------- model tensors


def load_model_weights(checkpoint: str | os.PathLike, model: nn.Module) -> None:
    """Load ``model.safetensors`` from a checkpoint directory into ``model`` (strict), after
    checking it against the manifest's checksum.

    Raises CheckpointError naming the file and the first missing, unexpected or mis-shaped key;
    CheckpointCorrupt when the file is damaged.
    """
    verify_checkpoint(checkpoint, (MODEL_FILE,))
    _load_model_weights(Path(checkpoint), model)


def _load_model_weights(checkpoint: Path, model: nn.Module) -> None:
    path = checkpoint / MODEL_FILE
    tensors, metadata = read_safetensors(path)
    try:
        aliases = json.loads(metadata.get(ALIASES_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointCorrupt(f"{path}: corrupt {ALIASES_KEY} metadata: {e}") from e
    for alias, name in aliases.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: alias {alias!r} points to missing key {name!r}")
        tensors[alias] = tensors[name]
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise CheckpointError(
            f"{path}: missing key {missing[0]!r} (model expects shape "
            f"{tuple(expected[missing[0]].shape)}); {len(missing)} missing in all"
        )
    if unexpected:
        raise CheckpointError(
            f"{path}: unexpected key {unexpected[0]!r} not in the model; "
            f"{len(unexpected)} unexpected in all"
        )
    for k, t in expected.items():
        if tuple(tensors[k].shape) != tuple(t.shape):
            raise CheckpointError(
                f"{path}: key {k!r} has shape {tuple(tensors[k].shape)}, "
                f"the model expects {tuple(t.shape)}"
            )
    model.load_state_dict(tensors, strict=True)


# --------------------------------------------------------------------------- optimizer


def _check_optimizer_state(path: Path, saved: dict, optimizer: torch.optim.Optimizer) -> None:
    current = optimizer.state_dict()
    groups, cur_groups = saved.get("param_groups", []), current["param_groups"]
    if len(groups) != len(cur_groups):
        raise CheckpointError(
            f"{path}: {len(groups)} parameter groups in the checkpoint, the optimizer has "
            f"{len(cur_groups)}"
        )
    live = [p for g in optimizer.param_groups for p in g["params"]]
    saved_ids = [i for g in groups for i in g["params"]]
    for i, (g, cg) in enumerate(zip(groups, cur_groups)):
        if len(g["params"]) != len(cg["params"]):
            raise CheckpointError(
                f"{path}: parameter group {i} has {len(g['params'])} parameters in the checkpoint, "
                f"the optimizer has {len(cg['params'])}"
            )
        if set(g) != set(cg):
            diff = sorted(set(g) ^ set(cg))
            raise CheckpointError(
                f"{path}: parameter group {i} hyper-parameter keys differ ({diff}): "
                "was it written by another optimizer?"
            )
    params: dict[Any, Tensor] = dict(zip(saved_ids, live))
    for pid, entry in saved.get("state", {}).items():
        if pid not in params:
            raise CheckpointError(f"{path}: state for unknown parameter id {pid!r}")
        p = params[pid]
        for key, value in entry.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != p.shape:
                raise CheckpointError(
                    f"{path}: key 'state.{pid}.{key}' has shape {tuple(value.shape)}, "
                    f"its parameter has shape {tuple(p.shape)}"
                )


def _load_optimizer_state(
    path: Path, meta: dict[str, Any], optimizer: torch.optim.Optimizer, skeleton: Any
) -> None:
    """Check ``optimizer.safetensors`` (``path``) against ``optimizer``, then load it."""
    saved_class = meta.get("optimizer_class")
    if saved_class != type(optimizer).__name__:
        raise CheckpointError(
            f"{path}: written by {saved_class}, the optimizer is {type(optimizer).__name__}"
        )
    opt_tensors, _ = read_safetensors(path)
    saved = _decode(skeleton, opt_tensors, path)
    _check_optimizer_state(path, saved, optimizer)
    optimizer.load_state_dict(saved)


# --------------------------------------------------------------------------- checkpoints


def load_checkpoint(
    checkpoint: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> LoadedCheckpoint:
    """Read a checkpoint directory (or the latest one of a run directory).

    Checks every file against the manifest's checksums first (unverified when there is none),
    then loads the weights into ``model`` and the state into ``optimizer`` when they are given,
    after checking every key and shape (when they are not, it checks that their files' headers
    are readable); returns trainer.json (``meta``) and the decoded per-rank states.
    Raises CheckpointError naming the file at fault (CheckpointCorrupt when it is damaged).
    """
    path = resolve_checkpoint(checkpoint)
    for f in FILES:
        require_file(path, f)
    verify_checkpoint(path, (META_FILE, *TENSOR_FILES))
    meta = read_meta(path)
    state_tensors, _ = read_safetensors(path / STATE_FILE)
    ranks = [_decode(s, state_tensors, path / STATE_FILE) for s in meta.pop("ranks", [])]
    opt_skeleton = meta.pop("optimizer", None)
    if model is not None:
        _load_model_weights(path, model)
    else:
        read_safetensors(path / MODEL_FILE, header_only=True)
    if optimizer is not None:
        _load_optimizer_state(path / OPTIMIZER_FILE, meta, optimizer, opt_skeleton)
    else:
        read_safetensors(path / OPTIMIZER_FILE, header_only=True)
    return LoadedCheckpoint(path=path, meta=meta, ranks=ranks)


def load_newest_intact(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> LoadedCheckpoint:
    """``load_checkpoint`` of the newest intact checkpoint of a run directory (or its
    checkpoints/ folder): a damaged one (CheckpointCorrupt) is skipped with a warning saying which
    and why, and the next older one tried. A checkpoint directory given itself is loaded as is.

    Raises CheckpointError when the run has no checkpoint, CheckpointCorrupt (listing each
    problem) when none is intact; a mismatch with ``model`` or ``optimizer`` is raised at once.
    """
    path = Path(path)
    if (path / META_FILE).is_file():
        return load_checkpoint(path, model, optimizer)
    candidates = resume_candidates(path)
    if not candidates:
        raise CheckpointError(f"no latest checkpoint under {checkpoints_root(path)}")
    problems = []
    for candidate in candidates:
        try:
            loaded = load_checkpoint(candidate, model, optimizer)
        except CheckpointCorrupt as e:
            logger.warning("skipping damaged checkpoint %s: %s", candidate, e)
            problems.append(f"{candidate.name}: {e}")
            continue
        if problems:
            logger.warning(
                "resuming from %s, the newest intact checkpoint (%d skipped)",
                candidate,
                len(problems),
            )
        return loaded
    raise CheckpointCorrupt(
        f"no intact checkpoint under {checkpoints_root(path)}: " + "; ".join(problems)
    )
