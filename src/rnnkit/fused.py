"""Fused fast paths for the variant layers (issue: fast recurrent variants).

Placeholder: delegates to the functional time loop until the fused kernels land.
"""

from __future__ import annotations

from .functional import scan

__all__ = ["scan"]
