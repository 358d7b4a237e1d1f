"""MXNet's NDArray list files (Gluon ``.params``, ``mx.nd.save``), read and written without MXNet.

The format, from apache/mxnet ``src/ndarray/ndarray.cc`` (``NDArray::Save``/``Load``, MXNet 1.x),
little-endian throughout:

* ``uint64 0x112`` (``kMXAPINDArrayListMagic``), ``uint64 0`` (reserved);
* ``uint64 n``, then ``n`` arrays, each:

  - ``uint32`` magic: ``0xF993FAC9`` (V2, with storage type), ``0xF993FACA`` (V3, NumPy shape
    semantics), ``0xF993FAC8`` (V1); any other value is a legacy array whose magic *is* its
    ``ndim``;
  - V2/V3: ``int32`` storage type (0 dense; sparse arrays are refused here);
  - shape: ``uint32 ndim`` then ``ndim`` ``int64`` dims (legacy: ``uint32`` dims); ``ndim == 0`` is
    an empty array with nothing after it (V3: ``ndim == -1`` is; ``0`` is a scalar);
  - context ``int32 dev_type, int32 dev_id``; ``int32`` dtype flag (mshadow: 0 float32, 1 float64,
    2 float16, 3 uint8, 4 int32, 5 int8, 6 int64, 7 bool, 12 bfloat16); the raw data, C order;

* ``uint64 m`` names (``m`` is 0 for an unnamed list, else ``n``), each ``uint64`` length + UTF-8
  bytes.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping

import numpy as np

from . import limits
from .base import CheckpointFileError

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}
FLAGS = {dtype: flag for flag, dtype in DTYPES.items()}


MAX_NDIM = 32  # NumPy 1's limit; real MXNet headers stay far below it
MIN_ARRAY_BYTES = 4  # the smallest array record: a legacy uint32 ndim of 0
NAME_LENGTH_BYTES = 8


class _Reader:
    """Little-endian fields out of a bytes buffer; every length checked against what is left."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if size > self.left:
            raise self.truncated(f"{size} bytes")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def raw(self, size: int) -> bytes:
        if size < 0 or size > self.left:
            raise self.truncated(f"{size} bytes")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def count(self, what: str, each: int) -> int:
        """A ``uint64`` count of records of at least ``each`` bytes, bounded by what is left."""
        at = self.pos
        (n,) = self.unpack("Q")
        if n * each > self.left:
            raise CheckpointFileError(
                f"{self.name}: header at byte {at} claims {n} {what}, more than the "
                f"{self.left} bytes left in the file can hold"
            )
        return n

    def truncated(self, wanted: str) -> CheckpointFileError:
        return CheckpointFileError(
            f"{self.name}: truncated MXNet NDArray file at byte {self.pos} "
            f"(expected {wanted}, {self.left} left)"
        )


def read_params(path: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
    """The arrays of an MXNet NDArray list file, by name (``"0"``, ``"1"``... for unnamed lists).

    Every count, shape and length in the file is checked against the bytes left before anything is
    allocated; CheckpointFileError names the byte where the file stops making sense.
    """
    if isinstance(path, bytes):
        data, name = path, "<bytes>"
    else:
        with open(path, "rb") as f:
            data, name = f.read(), os.fspath(path)
    r = _Reader(data, name)
    magic, _reserved = r.unpack("QQ")
    if magic != LIST_MAGIC:
        raise CheckpointFileError(
            f"{name}: not an MXNet NDArray file (first 8 bytes are {magic:#x}, "
            f"expected {LIST_MAGIC:#x})"
        )
    count = r.count("arrays", MIN_ARRAY_BYTES)
    arrays = [_read_array(r) for _ in range(count)]
    n_names = r.count("names", NAME_LENGTH_BYTES)
    if n_names not in (0, count):
        raise CheckpointFileError(f"{name}: {count} arrays but {n_names} names")
    names = [_read_name(r) for _ in range(n_names)]
    return dict(zip(names or [str(i) for i in range(count)], arrays))


def _read_name(r: _Reader) -> str:
    at = r.pos
    length = r.count("name bytes", 1)
    try:
        return r.raw(length).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointFileError(f"{r.name}: array name at byte {at} is not UTF-8 ({e})") from e


def _read_array(r: _Reader) -> np.ndarray:
    at = r.pos
    (magic,) = r.unpack("I")
    if magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = r.unpack("i")
        if stype != 0:
            raise CheckpointFileError(
                f"{r.name}: sparse NDArray (storage type {stype}) at byte {at} is not supported"
            )
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        (ndim,) = r.unpack("i")
        if ndim == -1 or (ndim == 0 and magic != V3_MAGIC):
            return np.zeros((0,), np.float32)
        _check_ndim(r, ndim, at)
        shape = r.unpack(f"{ndim}q")
    else:  # legacy: the magic is ndim, dims are uint32
        ndim = magic
        if ndim > MAX_NDIM:
            raise CheckpointFileError(f"{r.name}: unknown NDArray magic {magic:#x} at byte {at}")
        shape = r.unpack(f"{ndim}I")
        if ndim == 0:
            return np.zeros((0,), np.float32)
    _dev_type, _dev_id, flag = r.unpack("iii")
    if flag not in DTYPES:
        raise CheckpointFileError(f"{r.name}: unsupported NDArray dtype flag {flag} at byte {at}")
    dtype = DTYPES[flag]
    data = r.raw(_data_bytes(r, shape, dtype, at))
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _check_ndim(r: _Reader, ndim: int, at: int) -> None:
    if not 0 <= ndim <= MAX_NDIM:
        raise CheckpointFileError(
            f"{r.name}: NDArray at byte {at} has ndim {ndim}; expected 0 to {MAX_NDIM}"
        )


def _data_bytes(r: _Reader, shape: tuple[int, ...], dtype: np.dtype, at: int) -> int:
    """The byte size of an array's data (Python integers: no overflow), bounded by the file."""
    if any(d < 0 for d in shape):
        raise CheckpointFileError(f"{r.name}: NDArray at byte {at} has shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limits.MAX_ARRAY_BYTES:
        raise CheckpointFileError(
            f"{r.name}: NDArray at byte {at} of shape {shape} ({dtype}) is {nbytes} bytes, over the "
            f"limit of {limits.MAX_ARRAY_BYTES} (rnnkit.interop.limits.MAX_ARRAY_BYTES)"
        )
    if nbytes > r.left:
        raise CheckpointFileError(
            f"{r.name}: NDArray at byte {at} of shape {shape} ({dtype}) needs {nbytes} bytes, "
            f"the file has {r.left} left"
        )
    return nbytes


def write_params(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as MXNet writes them (V2 dense arrays on the CPU context)."""
    out = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        a = a.reshape(1) if a.ndim == 0 else a  # ndim 0 means 'empty array' in V2
        key = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        if key not in FLAGS:
            raise TypeError(f"array {name!r}: dtype {a.dtype} has no MXNet type flag")
        out.append(struct.pack("<Iii", V2_MAGIC, 0, a.ndim))
        out.append(struct.pack(f"<{a.ndim}q", *a.shape))
        out.append(struct.pack("<iii", 1, 0, FLAGS[key]))
        out.append(a.astype(key, copy=False).tobytes())
    out.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode("utf-8")
        out.append(struct.pack("<Q", len(encoded)) + encoded)
    with open(path, "wb") as f:
        f.write(b"".join(out))
