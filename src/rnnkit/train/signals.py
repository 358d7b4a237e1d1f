"""Stop signals as requests: the first SIGINT (Ctrl-C), SIGTERM (a scheduler's pre-emption, ``kill``)
or SIGHUP (the terminal closed) sets a flag the training loop checks between steps, so a checkpoint
is written at a consistent point; a second one raises ``RunInterrupted`` at once."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

# SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class RunInterrupted(KeyboardInterrupt):
    """``fit`` was stopped by a signal. ``checkpoint`` is the checkpoint written for it (None when a
    second signal cut the run short before one could be written); ``exit_code`` is the shell's
    convention for a process ended by that signal, 128 + its number."""

    def __init__(self, signum: int, checkpoint: Path | None = None) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint written for it"
        super().__init__(f"interrupted by {signal_name(signum)}: {where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class InterruptFlag:
    """Context manager installing the handler for ``STOP_SIGNALS`` (main thread only; elsewhere a
    no-op). ``requested`` is True once one arrived, ``signum`` says which."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise RunInterrupted(signum)
        self.requested, self.signum = True, signum
        logger.warning(
            "%s received: saving a checkpoint after this step (send it again to quit now)",
            signal_name(signum),
        )

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():  # None: set outside Python
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous = {}
