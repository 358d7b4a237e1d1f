"""Reading a checkpoint's files safely: the manifest and the sha256 checks against it, safetensors
headers and tensors, and trainer.json (pickle-free JSON). Anything unreadable or altered is a
``CheckpointCorrupt`` naming the file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import Tensor

from .layout import (
    FILES,
    FORMAT,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    META_FILE,
    VERSION,
    CheckpointCorrupt,
    CheckpointError,
    require_file,
)

logger = logging.getLogger(__name__)


def digest(data: bytes) -> dict[str, Any]:
    """``{"sha256", "bytes"}`` of ``data``, as the manifest records it."""
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointCorrupt(f"cannot read {path}: {e}") from e


def read_safetensors(
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
    doc = _read_json(path)
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
        require_file(path, name)
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


# --------------------------------------------------------------------------- trainer.json


def read_meta(path: Path) -> dict[str, Any]:
    """trainer.json of checkpoint directory ``path`` (not checked against the manifest)."""
    meta_path = path / META_FILE
    meta = _read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointCorrupt(f"{meta_path} is not an rnnkit checkpoint (format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{meta_path}: version {meta.get('version')}, expected {VERSION}")
    return meta


def read_checkpoint_meta(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """trainer.json of a checkpoint directory, checked against the manifest (when it has one)."""
    path = Path(checkpoint)
    verify_checkpoint(path, (META_FILE,))
    return read_meta(path)
