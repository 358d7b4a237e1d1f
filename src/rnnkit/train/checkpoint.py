"""Pickle-free, atomic training checkpoints.

Layout of a run directory::

    RUN_DIR/checkpoints/
      step-000120/             one directory per checkpoint, named by the global step
        model.safetensors      the model's state_dict (tied weights stored once, aliases in
                               the metadata)
        optimizer.safetensors  optimizer state tensors, named by path ("optimizer.state.0.step")
        state.safetensors      per-rank tensors: torch/CUDA RNG states (uint8), carried hidden state
        trainer.json           step, data position, schedule, best metric, configs, task state
                               (and a sha256 of each of its entries), Python/NumPy RNG states, and
                               the structure that rebuilds the optimizer state dict and the
                               per-rank state around the tensors
        manifest.json          sha256 and size of the four files above, written last
      latest.json              {"path": "step-000120", "step": 120}
      best.json                the checkpoint with the best validation loss (kept by pruning)

Writes are atomic: every file goes into a temporary directory beside the final one, is fsynced, and
the directory is renamed into place; only then is ``latest.json`` replaced (temporary file +
``os.replace``). A crash at any point leaves the previous checkpoint and pointer intact; a failed
write (a full disk) raises ``CheckpointWriteError`` saying so.

Loading checks that all files exist, that they match the manifest's checksums (a checkpoint without
a manifest, as written before it existed, loads as unverified), and that keys and shapes match the
model and optimizer, raising ``CheckpointError`` naming the file and the key -- there is no partial
load. Damage (a missing, unreadable or altered file) is a ``CheckpointCorrupt``; resuming a run
(``load_newest_intact``) then falls back to the newest intact checkpoint with a warning. The pointer
files only ever name a ``step-NNNNNN`` folder inside their own ``checkpoints/``.

Nested state (the optimizer's state dict, RNG states, the carried hidden state) is split into JSON
and tensors by ``tree.encode_tree``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from .atomic import fsync_dir, write_bytes, write_json_atomic
from .tree import decode_tree, encode_tree

logger = logging.getLogger(__name__)

FORMAT = "rnnkit-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.safetensors"
META_FILE = "trainer.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "rnnkit-checkpoint-manifest"
FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, META_FILE)
TENSOR_FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE)
TASK_DIGEST_KEY = "task_digest"
_ALIASES_KEY = "rnnkit.aliases"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not match the model/optimizer."""


class CheckpointCorrupt(CheckpointError):
    """A checkpoint is damaged: a file is missing, unreadable, or differs from its checksum."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (a full disk, a lost mount...); the previous one is intact.
    ``errno`` is the original error's."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


def _digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _file_digest(path: Path) -> dict[str, Any]:
    h, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise CheckpointCorrupt(f"cannot read {path}: {e}") from e
    return {"sha256": h.hexdigest(), "bytes": size}


def _write_safetensors(
    path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]
) -> dict[str, Any]:
    """Write the file; returns its digest (sha256 and size)."""
    # safetensors refuses tensors that share memory (views of one buffer, e.g. an LSTM's (h, c)
    # cut from one tensor): copy all but the first user of each storage.
    seen: set[int] = set()
    for name, t in tensors.items():
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            tensors[name] = t.clone()
        seen.add(ptr)
    # Never empty metadata: safetensors 0.8 writes an unreadable header for ({}, {}).
    data = safetensors_save(tensors, metadata={"format": "pt", **metadata})
    write_bytes(path, data)
    return _digest(data)


# --------------------------------------------------------------------------- model tensors


def _model_tensors(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, aliases)``: the state_dict, tensors sharing memory (tied weights) stored once."""
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in model.state_dict().items():
        if t.numel() > 0:
            key = (
                t.untyped_storage().data_ptr(),
                t.storage_offset(),
                tuple(t.shape),
                t.stride(),
                t.dtype,
            )
            if key in seen:
                aliases[name] = seen[key]
                continue
            seen[key] = name
        tensors[name] = t.detach().to("cpu").contiguous()
    return tensors, aliases


def _read_safetensors(
    path: Path, header_only: bool = False
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a file; ``header_only``: no tensors, only a readable header that
    covers the whole file (which is what a truncated file lacks)."""
    if not path.is_file():
        raise CheckpointCorrupt(f"checkpoint file {path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            names = list(f.keys())
            tensors = {} if header_only else {k: f.get_tensor(k) for k in names}
    except Exception as e:  # SafetensorError, OSError, ...
        raise CheckpointCorrupt(f"cannot read {path}: {e}") from e
    return tensors, metadata


# --------------------------------------------------------------------------- checksums


def read_manifest(checkpoint: str | os.PathLike) -> dict[str, dict[str, Any]] | None:
    """``{file name: {"sha256", "bytes"}}`` from a checkpoint's manifest.json; None when it has
    none (written before manifests existed). CheckpointCorrupt when it is unreadable."""
    path = Path(checkpoint) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointCorrupt(f"cannot read {path}: {e}") from e
    if not _is_manifest(doc):
        raise CheckpointCorrupt(
            f"{path} is not a checkpoint manifest: expected {{'format': {MANIFEST_FORMAT!r}, "
            "'files': {name: {'sha256', 'bytes'}}}"
        )
    return doc["files"]


def _is_manifest(doc: Any) -> bool:
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return False
    files = doc.get("files")
    return isinstance(files, dict) and all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
        for v in files.values()
    )


def verify_checkpoint(checkpoint: str | os.PathLike, files: tuple[str, ...] = FILES) -> bool:
    """Check ``files`` of a checkpoint against its manifest: True when they match, False when
    there is no manifest to check against (logged at debug level: 'unverified').

    Raises CheckpointCorrupt naming the file whose size or sha256 differs from the record.
    """
    path = Path(checkpoint)
    manifest = read_manifest(path)
    if manifest is None:
        logger.debug("checkpoint %s has no %s: its files are unverified", path, MANIFEST_FILE)
        return False
    for name in files:
        want = manifest.get(name)
        if want is None:
            raise CheckpointCorrupt(f"{path / MANIFEST_FILE} records no checksum for {name}")
        if not (path / name).is_file():
            raise CheckpointCorrupt(f"checkpoint {path} is incomplete: {name} is missing")
        got = _file_digest(path / name)
        if got["bytes"] != want["bytes"]:
            raise CheckpointCorrupt(
                f"{path / name} is damaged: {got['bytes']} bytes, the manifest records "
                f"{want['bytes']} (truncated or overwritten)"
            )
        if got["sha256"] != want["sha256"]:
            raise CheckpointCorrupt(
                f"{path / name} is damaged: its sha256 is {got['sha256'][:16]}..., the manifest "
                f"records {want['sha256'][:16]}... (altered after it was written)"
            )
    return True


def _write_manifest(directory: Path, digests: dict[str, dict[str, Any]]) -> None:
    document = {"format": MANIFEST_FORMAT, "version": 1, "algorithm": "sha256", "files": digests}
    write_bytes(directory / MANIFEST_FILE, json.dumps(document, indent=1).encode("utf-8"))


# --------------------------------------------------------------------------- task state


def task_digest(state: dict[str, Any]) -> dict[str, str]:
    """sha256 of each top-level entry of a task's state (its canonical JSON): ``{"config": ...,
    "vocab": ...}``. Recorded in checkpoints to catch an edited or replaced task.json."""
    return {
        str(k): hashlib.sha256(
            json.dumps(v, sort_keys=True, separators=(",", ":")).encode("utf-8")
        ).hexdigest()
        for k, v in state.items()
    }


def check_task_state(
    checkpoint: str | os.PathLike,
    meta: dict[str, Any],
    state: dict[str, Any],
    ignore: tuple[str, ...] = (),
) -> None:
    """CheckpointError unless the task ``state`` (e.g. task.json's) is the one the checkpoint was
    trained with, entry by entry (``ignore``: entries allowed to differ, such as a config given
    overrides). Uses the checkpoint's recorded digest, else its stored task state; neither:
    unverified (debug log)."""
    recorded = meta.get(TASK_DIGEST_KEY)
    if recorded is None and isinstance(meta.get("task"), dict):
        recorded = task_digest(meta["task"])
    if not isinstance(recorded, dict):
        logger.debug("checkpoint %s records no task state: task settings unverified", checkpoint)
        return
    current = task_digest(state)
    changed = sorted(
        k
        for k in set(recorded) | set(current)
        if k not in ignore and recorded.get(k) != current.get(k)
    )
    if changed:
        raise CheckpointError(
            f"the task's {', '.join(repr(k) for k in changed)} differ from what checkpoint "
            f"{checkpoint} was trained with (task.json edited or replaced?): a reordered or changed "
            "vocabulary would map every token to another embedding. Restore the run's task.json, "
            "or start a new run"
        )


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
    tensors, metadata = _read_safetensors(path)
    try:
        aliases = json.loads(metadata.get(_ALIASES_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointCorrupt(f"{path}: corrupt {_ALIASES_KEY} metadata: {e}") from e
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


# --------------------------------------------------------------------------- save / load


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


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    ranks: list[Any],
    *,
    keep_last: int | None = None,
    best: dict[str, Any] | None = None,
) -> Path:
    """Write ``RUN_DIR/checkpoints/step-XXXXXX`` atomically and point ``latest.json`` at it.

    Args:
        meta: JSON-able trainer state (step, data position, schedule, configs, task state...).
        ranks: one nested state per process (RNG states, carried hidden state), stored with
            ``encode_tree``.
        keep_last: delete older step directories beyond the newest K (never the best one).
        best: when given, ``best.json`` points at this checkpoint with these fields (e.g. the loss).
    Returns:
        The checkpoint directory.
    Raises:
        CheckpointWriteError: a write failed (e.g. the disk is full); the message says which
            checkpoint is still intact.
    """
    root = Path(run_dir) / "checkpoints"
    name = step_dir_name(step)
    final = root / name
    previous = latest_checkpoint(run_dir) if root.is_dir() else None
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(root)
        _write_step_dir(root, final, model, optimizer, {**meta, "step": step}, ranks)
    except OSError as e:
        raise _write_error(final, previous, e) from e
    try:
        write_json_atomic(root / "latest.json", {"path": name, "step": step})
        if best is not None:
            write_json_atomic(root / "best.json", {"path": name, "step": step, **best})
    except OSError as e:
        raise CheckpointWriteError(
            f"checkpoint {final} was written but its pointer could not be updated: {e}"
            f"{_full_disk_hint(e)}; the pointers still name the previous checkpoints, which are "
            "intact",
            e.errno,
        ) from e
    if keep_last is not None:
        prune_checkpoints(run_dir, keep_last)
    logger.info("saved checkpoint %s", final)
    return final


def _write_step_dir(
    root: Path,
    final: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    ranks: list[Any],
) -> None:
    """Every file into a temporary directory (the manifest last), fsynced, then renamed to
    ``final``; on any error the temporary directory is removed and ``final`` left as it was."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    old: Path | None = None
    try:
        digests = {}
        model_tensors, aliases = _model_tensors(model)
        digests[MODEL_FILE] = _write_safetensors(
            tmp / MODEL_FILE, model_tensors, {_ALIASES_KEY: json.dumps(aliases)}
        )
        opt_skeleton, opt_tensors = encode_tree(optimizer.state_dict(), "optimizer")
        digests[OPTIMIZER_FILE] = _write_safetensors(tmp / OPTIMIZER_FILE, opt_tensors, {})
        rank_skeletons, state_tensors = [], {}
        for r, rank_state in enumerate(ranks):
            skeleton, tensors = encode_tree(rank_state, f"rank{r}")
            rank_skeletons.append(skeleton)
            state_tensors.update(tensors)
        digests[STATE_FILE] = _write_safetensors(tmp / STATE_FILE, state_tensors, {})
        document = {
            "format": FORMAT,
            "version": VERSION,
            **meta,
            "optimizer_class": type(optimizer).__name__,
            "optimizer": opt_skeleton,
            "ranks": rank_skeletons,
        }
        data = json.dumps(document, indent=1).encode("utf-8")
        write_bytes(tmp / META_FILE, data)
        digests[META_FILE] = _digest(data)
        _write_manifest(tmp, digests)
        fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. the final save right after a resume)
            old = root / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _full_disk_hint(e: OSError) -> str:
    return " (the disk is full)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""


def _write_error(final: Path, previous: Path | None, e: OSError) -> CheckpointWriteError:
    kept = (
        f"the previous checkpoint {previous} is intact"
        if previous is not None
        else "no earlier checkpoint exists"
    )
    return CheckpointWriteError(
        f"could not write checkpoint {final}: {e}{_full_disk_hint(e)}; nothing was replaced and "
        f"{kept}",
        e.errno,
    )


def _remove_stale_temporaries(root: Path) -> None:
    """Temporary directories left by a crash mid-write (never referenced by a pointer)."""
    for p in root.iterdir():
        if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(".old-")):
            shutil.rmtree(p, ignore_errors=True)


def _checkpoints_root(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    return path if path.name == "checkpoints" else path / "checkpoints"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete step directories of a run, oldest first."""
    root = _checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and _inside(root, p) and p.is_dir() and all((p / f).is_file() for f in FILES):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def _inside(root: Path, target: Path) -> bool:
    """Whether ``target`` (symbolic links resolved) is a direct child of ``root``."""
    return target.resolve().parent == root.resolve()


def _read_pointer(root: Path, name: str) -> Path | None:
    """The step directory a pointer file names, or None (with a warning) when it is unreadable,
    names anything but a ``step-NNNNNN`` folder of ``root``, or that folder is incomplete."""
    pointer = root / name
    if not pointer.is_file():
        return None
    try:
        relative = json.loads(pointer.read_text(encoding="utf-8"))["path"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        logger.warning("ignoring unreadable %s: %s", pointer, e)
        return None
    target = root / relative if isinstance(relative, str) else None
    if target is None or not _STEP_DIR.match(relative) or not _inside(root, target):
        logger.warning(
            "ignoring %s: it names %r, expected a step-NNNNNN folder inside %s",
            pointer,
            relative,
            root,
        )
        return None
    if not all((target / f).is_file() for f in FILES):
        logger.warning("%s points to incomplete %s", pointer, target)
        return None
    return target


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest.json`` points to; if that pointer is missing or broken, the newest
    complete step directory; None when the run has no checkpoint."""
    root = _checkpoints_root(run_dir)
    target = _read_pointer(root, "latest.json")
    if target is not None:
        return target
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``best.json`` points to, or None."""
    return _read_pointer(_checkpoints_root(run_dir), "best.json")


def resolve_checkpoint(path: str | os.PathLike, which: str = "latest") -> Path:
    """A checkpoint directory from a step directory, a run directory or its checkpoints/ folder.

    ``which`` is 'latest' or 'best' for the latter two. Raises CheckpointError when none is found.
    """
    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    found = latest_checkpoint(path) if which == "latest" else best_checkpoint(path)
    if found is None:
        raise CheckpointError(f"no {which} checkpoint under {_checkpoints_root(path)}")
    return found


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int) -> None:
    """Delete step directories except the newest ``keep_last``, the latest and the best."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    root = _checkpoints_root(run_dir)
    keep = {p.name for p in list_checkpoints(run_dir)[-keep_last:]}
    for pointer in ("latest.json", "best.json"):
        target = _read_pointer(root, pointer)
        if target is not None:
            keep.add(target.name)
    for p in root.iterdir():
        if _STEP_DIR.match(p.name) and p.is_dir() and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointCorrupt(f"cannot read {meta_path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointCorrupt(f"{meta_path} is not an rnnkit checkpoint (format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{meta_path}: version {meta.get('version')}, expected {VERSION}")
    return meta


def read_checkpoint_meta(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """trainer.json of a checkpoint directory, checked against the manifest (when it has one)."""
    path = Path(checkpoint)
    verify_checkpoint(path, (META_FILE,))
    return _read_meta(path)


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
        if not (path / f).is_file():
            raise CheckpointCorrupt(f"checkpoint {path} is incomplete: {f} is missing")
    verify_checkpoint(path, (META_FILE, *TENSOR_FILES))
    meta = _read_meta(path)
    state_tensors, _ = _read_safetensors(path / STATE_FILE)
    ranks = [_decode(s, state_tensors, path / STATE_FILE) for s in meta.pop("ranks", [])]
    opt_skeleton = meta.pop("optimizer", None)
    if model is not None:
        _load_model_weights(path, model)
    else:
        _read_safetensors(path / MODEL_FILE, header_only=True)
    opt_path = path / OPTIMIZER_FILE
    if optimizer is not None:
        saved_class = meta.get("optimizer_class")
        if saved_class != type(optimizer).__name__:
            raise CheckpointError(
                f"{opt_path}: written by {saved_class}, the optimizer is {type(optimizer).__name__}"
            )
        opt_tensors, _ = _read_safetensors(opt_path)
        saved = _decode(opt_skeleton, opt_tensors, opt_path)
        _check_optimizer_state(opt_path, saved, optimizer)
        optimizer.load_state_dict(saved)
    else:
        _read_safetensors(opt_path, header_only=True)
    return LoadedCheckpoint(path=path, meta=meta, ranks=ranks)


def resume_candidates(run_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints a run may resume from, in order of preference: the one ``latest.json``
    names, then every complete step directory, newest first."""
    root = _checkpoints_root(run_dir)
    latest = _read_pointer(root, "latest.json")
    found = [latest] if latest is not None else []
    return found + [p for p in reversed(list_checkpoints(root)) if p != latest]


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
        raise CheckpointError(f"no latest checkpoint under {_checkpoints_root(path)}")
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
        f"no intact checkpoint under {_checkpoints_root(path)}: " + "; ".join(problems)
    )
