"""NumPy ``.npz`` archives (``np.savez``, Chainer's ``serializers.save_npz``), read without pickle.

Each ``.npy`` member goes through :mod:`~rnnkit.interop.archive` (declared-size limits, bounded
read); its header is parsed first and must describe a plain (non-object) dtype whose size is
exactly the bytes that follow it, within :data:`~rnnkit.interop.limits.MAX_ARRAY_BYTES`. Nothing
is allocated from a header alone, and object arrays (which ``np.load`` could only unpickle) are
refused: the equivalent of ``np.load(path, allow_pickle=False)`` with every length checked.
"""

from __future__ import annotations

import io
import logging
import math
import os

import numpy as np

from . import limits
from .archive import open_archive, read_member
from .base import CheckpointFileError

logger = logging.getLogger(__name__)

SUFFIX = ".npy"


def npz_names(path: str | os.PathLike) -> list[str]:
    """The array names in an ``.npz`` (member names without ``.npy``), nothing decompressed."""
    with open_archive(path) as archive:
        return [n[: -len(SUFFIX)] for n in archive.namelist() if n.endswith(SUFFIX)]


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, by name; members that are not ``.npy`` are skipped."""
    out = {}
    with open_archive(path) as archive:
        for member in archive.namelist():
            if not member.endswith(SUFFIX):
                logger.warning("%s: skipping archive member %r (not an .npy array)", path, member)
                continue
            data = read_member(archive, member, path)
            out[member[: -len(SUFFIX)]] = parse_npy(data, f"{path}: array {member!r}")
    return out


def parse_npy(data: bytearray, what: str) -> np.ndarray:
    """The array in the bytes of one ``.npy`` file (a view of ``data``, writable)."""
    buf = io.BytesIO(data)
    shape, fortran, dtype = _npy_header(buf, what)
    if dtype.hasobject:
        raise CheckpointFileError(
            f"{what} holds Python objects (dtype {dtype}), which only unpickling could read; "
            "expected numbers"
        )
    if any(d < 0 for d in shape):
        raise CheckpointFileError(f"{what}: negative dimension in shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limits.MAX_ARRAY_BYTES:
        raise CheckpointFileError(
            f"{what}: shape {shape} of {dtype} is {nbytes} bytes, over the limit of "
            f"{limits.MAX_ARRAY_BYTES} (rnnkit.interop.limits.MAX_ARRAY_BYTES)"
        )
    offset = buf.tell()
    if len(data) - offset != nbytes:
        raise CheckpointFileError(
            f"{what}: header says shape {shape} of {dtype} ({nbytes} bytes), "
            f"{len(data) - offset} bytes follow it"
        )
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def _npy_header(buf: io.BytesIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of a ``.npy`` header (format 1.0 or 2.0)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            return fmt.read_array_header_1_0(buf)
        if version == (2, 0):
            return fmt.read_array_header_2_0(buf)
    except (ValueError, SyntaxError, TypeError, EOFError) as e:
        raise CheckpointFileError(f"{what}: not a valid .npy array ({e})") from e
    raise CheckpointFileError(f"{what}: .npy format version {version}; expected 1.0 or 2.0")
