"""Size limits for files read by :mod:`rnnkit.interop`, checked before anything is allocated.

Module attributes, read at each call: raise them for larger models, e.g.
``rnnkit.interop.limits.MAX_ARRAY_BYTES = 16 * GiB``.

* ``MAX_ARRAY_BYTES``: one array (an HDF5 dataset, an ``.npz`` member, an MXNet NDArray, an ONNX
  tensor's external data);
* ``MAX_MEMBER_BYTES``: one member of a zip archive (``.keras``, ``.npz``), uncompressed, as the
  archive declares it;
* ``MAX_COMPRESSION_RATIO``: uncompressed over compressed size of a member, checked for members
  larger than ``RATIO_FREE_BYTES`` (real weights compress little; a zip bomb compresses ~1000:1).
"""

from __future__ import annotations

GiB = 2**30
MiB = 2**20

MAX_ARRAY_BYTES = 4 * GiB
MAX_MEMBER_BYTES = 4 * GiB
MAX_COMPRESSION_RATIO = 100
RATIO_FREE_BYTES = 16 * MiB
