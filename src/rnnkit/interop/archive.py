"""Zip archives from users (``.keras``, ``.npz``), read member by member, in memory only.

Nothing is extracted to disk. Before a member is read, the archive's declared sizes are checked
against :mod:`~rnnkit.interop.limits` (uncompressed size, compression ratio), so a zip bomb is
refused before it is decompressed; the read itself stops as soon as more bytes come than the
member declares. Archives with absolute or ``..`` member names, duplicate names or encrypted
members are refused whole.
"""

from __future__ import annotations

import logging
import os
import zipfile
import zlib
from pathlib import PurePosixPath, PureWindowsPath
from typing import BinaryIO

from . import limits
from .base import CheckpointFileError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


def open_archive(path: str | os.PathLike) -> zipfile.ZipFile:
    """The zip archive at ``path``, its member names checked; CheckpointFileError when it is not a
    readable zip archive."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointFileError(f"{path}: not a readable zip archive ({e})") from e
    try:
        check_names(archive, path)
    except CheckpointFileError:
        archive.close()
        raise
    return archive


def check_names(archive: zipfile.ZipFile, path: object) -> None:
    """CheckpointFileError for an absolute, ``..`` or duplicate member name."""
    seen: set[str] = set()
    for name in archive.namelist():
        if unsafe_name(name):
            raise CheckpointFileError(
                f"{path}: archive member {name!r} has an absolute path or '..'; expected names "
                "relative to the archive"
            )
        if name in seen:
            raise CheckpointFileError(f"{path}: archive member {name!r} appears twice")
        seen.add(name)


def unsafe_name(name: str) -> bool:
    """Whether a relative name (an archive member, an external data file) is in fact absolute
    (``/x``, ``C:\\x``) or climbs out with ``..``."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    return (
        posix.is_absolute()
        or bool(windows.drive or windows.root)
        or ".." in posix.parts
        or ".." in windows.parts
    )


def check_member(info: zipfile.ZipInfo, path: object) -> None:
    """CheckpointFileError when a member is encrypted or its declared size breaks a limit."""
    what = f"{path}: archive member {info.filename!r}"
    if info.flag_bits & 0x1:
        raise CheckpointFileError(f"{what} is encrypted; expected a plain member")
    if info.file_size > limits.MAX_MEMBER_BYTES:
        raise CheckpointFileError(
            f"{what} declares {info.file_size} bytes uncompressed, over the limit of "
            f"{limits.MAX_MEMBER_BYTES} (rnnkit.interop.limits.MAX_MEMBER_BYTES)"
        )
    if info.file_size > limits.RATIO_FREE_BYTES:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.MAX_COMPRESSION_RATIO:
            raise CheckpointFileError(
                f"{what} expands {info.compress_size} bytes to {info.file_size} (ratio "
                f"{ratio:.0f}, over the limit of {limits.MAX_COMPRESSION_RATIO}: "
                "rnnkit.interop.limits.MAX_COMPRESSION_RATIO); refusing a likely zip bomb"
            )


def read_member(archive: zipfile.ZipFile, name: str, path: object) -> bytearray:
    """The bytes of member ``name``, after :func:`check_member`, read with a bounded stream."""
    try:
        info = archive.getinfo(name)
    except KeyError as e:
        raise CheckpointFileError(f"{path}: the archive has no member {name!r}") from e
    check_member(info, path)
    logger.debug("reading %s from %s (%d bytes)", name, path, info.file_size)
    try:
        with archive.open(info) as stream:
            return read_bounded(stream, info.file_size, f"{path}: archive member {name!r}")
    except (
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
        OSError,
        EOFError,
    ) as e:
        raise CheckpointFileError(f"{path}: cannot read archive member {name!r} ({e})") from e


def read_bounded(stream: BinaryIO, declared: int, what: str) -> bytearray:
    """Exactly ``declared`` bytes of ``stream``; CheckpointFileError as soon as more arrive, or
    when fewer do."""
    data = bytearray()
    while len(data) <= declared:
        chunk = stream.read(min(CHUNK, declared + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) != declared:
        more = "more than" if len(data) > declared else f"only {len(data)} of"
        raise CheckpointFileError(f"{what}: {more} the {declared} bytes it declares")
    return data
