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

import os
import struct
from collections.abc import Mapping

import numpy as np

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


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"{self.name}: truncated MXNet NDArray file at byte {self.pos}")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError(f"{self.name}: truncated MXNet NDArray file at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def read_params(path: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
    """The arrays of an MXNet NDArray list file, by name (``"0"``, ``"1"``... for unnamed lists)."""
    if isinstance(path, bytes):
        data, name = path, "<bytes>"
    else:
        with open(path, "rb") as f:
            data, name = f.read(), os.fspath(path)
    r = _Reader(data, name)
    magic, _reserved = r.unpack("QQ")
    if magic != LIST_MAGIC:
        raise ValueError(
            f"{name}: not an MXNet NDArray file (first 8 bytes are {magic:#x}, "
            f"expected {LIST_MAGIC:#x})"
        )
    (count,) = r.unpack("Q")
    arrays = [_read_array(r) for _ in range(count)]
    (n_names,) = r.unpack("Q")
    names = []
    for _ in range(n_names):
        (length,) = r.unpack("Q")
        names.append(r.raw(length).decode("utf-8"))
    if n_names not in (0, count):
        raise ValueError(f"{name}: {count} arrays but {n_names} names")
    return dict(zip(names or [str(i) for i in range(count)], arrays))


def _read_array(r: _Reader) -> np.ndarray:
    (magic,) = r.unpack("I")
    if magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = r.unpack("i")
        if stype != 0:
            raise ValueError(f"{r.name}: sparse NDArray (storage type {stype}) is not supported")
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        (ndim,) = r.unpack("i")
        if ndim == -1 or (ndim == 0 and magic != V3_MAGIC):
            return np.zeros((0,), np.float32)
        shape = r.unpack(f"{ndim}q")
    else:  # legacy: the magic is ndim, dims are uint32
        ndim = magic
        if ndim > 32:
            raise ValueError(f"{r.name}: unknown NDArray magic {magic:#x}")
        shape = r.unpack(f"{ndim}I")
        if ndim == 0:
            return np.zeros((0,), np.float32)
    _dev_type, _dev_id, flag = r.unpack("iii")
    if flag not in DTYPES:
        raise ValueError(f"{r.name}: unsupported NDArray dtype flag {flag}")
    dtype = DTYPES[flag]
    count = int(np.prod(shape, dtype=np.int64))
    data = r.raw(count * dtype.itemsize)
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


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
