"""Ctrl-C as a request: the first SIGINT sets a flag the training loop checks between steps (so a
checkpoint is written at a consistent point); a second SIGINT raises KeyboardInterrupt at once."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)


class InterruptFlag:
    """Context manager installing the SIGINT handler (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "interrupted: saving a checkpoint after this step (Ctrl-C again to quit now)"
        )

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
