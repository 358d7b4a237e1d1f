"""How recurrent layers run. :mod:`.dispatch` is the one place that chooses; each backend is a
module named for what it is: :mod:`.native` (torch.nn's kernels), :mod:`.cpu_kernels` (rnnkit's C
step kernels), :mod:`.torch_ops` (torch ops with hand-written backward passes) and
:mod:`.reference` (the plain loop, the oracle). :mod:`.gemm` and :mod:`.sequence` are shared by the
two fused backends."""

from .dispatch import BACKENDS, check_backend, run_direction, runs_natively, scan

__all__ = ["BACKENDS", "check_backend", "run_direction", "runs_natively", "scan"]
