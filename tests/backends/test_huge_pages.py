"""Large kernel buffers on transparent huge pages (rnnkit.backends.cpu_kernels.huge_pages)."""

from __future__ import annotations

import pytest
import torch

from rnnkit.backends.cpu_kernels import huge_pages, panels
from rnnkit.backends.cpu_kernels.library import available

served = pytest.mark.skipif(huge_pages._madvise() is None,
                            reason="this kernel does not take MADV_HUGEPAGE")  # fmt: skip


def vm_flags(ptr: int) -> set[str]:
    """The VmFlags of the mapping of this process that holds address ``ptr``."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= ptr < hi
            elif inside and line.startswith("VmFlags:"):
                return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {ptr:#x}")


@served
def test_a_large_buffer_is_advised_before_it_is_written():
    t = huge_pages.empty(torch.empty(0), 9 << 20)  # 36 MiB of float32
    assert t.shape == (9 << 20,) and t.dtype == torch.float32
    middle = t.data_ptr() + t.numel() * 2  # inside the whole 2 MiB pages of the buffer
    assert "hg" in vm_flags(middle)
    t.fill_(3.0)
    assert t.sum().item() == 3.0 * t.numel()


def test_small_noncpu_and_storageless_tensors_are_left_alone():
    assert not huge_pages.advise(torch.empty(1 << 20))  # 4 MiB: glibc's heap
    assert not huge_pages.advise(torch.empty(16 << 20, device="meta"))
    small = huge_pages.empty(torch.zeros(2, dtype=torch.float64), 3, 4)
    assert small.shape == (3, 4) and small.dtype == torch.float64


@served
@pytest.mark.skipif(not available(torch.zeros(1)), reason="the C kernels are not built")
def test_panel_products_on_huge_pages_equal_torch():
    a = torch.randn(4096, 3, dtype=torch.float64)
    b = torch.randn(3, 1100, dtype=torch.float64)  # a (4096, 1100) float64 product: 34 MiB
    out = panels.matmul(a, panels.pack(b))
    assert "hg" in vm_flags(out.data_ptr() + out.numel() * 4)
    torch.testing.assert_close(out, a @ b, rtol=1e-12, atol=1e-12)
