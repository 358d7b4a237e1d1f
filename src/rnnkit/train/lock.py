"""One writer per run directory: ``RUN_DIR/run.lock`` names the process that trains the run.

The file holds ``{"pid", "host", "since"}`` of its holder. Taking it:

- where ``fcntl`` exists (Linux, macOS), an exclusive ``flock`` on the file is the lock itself, so
  the kernel releases it when its holder dies however it dies; a file left by a dead holder is
  taken over with a warning;
- otherwise the file's contents decide: a holder on this host whose pid is dead is stale and taken
  over, any other holder keeps the run.

A holder on another host (a shared file system) is never second-guessed: the error names it and
the file to delete once that process is known to be gone. Holders in one process share the lock
(it guards against other processes, not against a second ``Trainer`` in the same one); the file is
deleted when the last of them releases it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_FILE = "run.lock"

# resolved lock path -> [open file descriptor or None, number of holders in this process]
_HELD: dict[str, list[Any]] = {}


class RunLockError(RuntimeError):
    """The run directory is being written by another process."""


def _holder_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # alive, owned by someone else (or we cannot tell)
        return True
    return True


def read_holder(path: Path) -> dict[str, Any] | None:
    """The lock file's ``{"pid", "host", "since"}``; None when it is empty or unreadable."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return None
    return holder


def _describe(holder: dict[str, Any]) -> str:
    since = holder.get("since")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
    return f"pid {holder['pid']} on host {holder.get('host', '?')}{when}"


def _locked_error(path: Path, holder: dict[str, Any] | None) -> RunLockError:
    who = _describe(holder) if holder else "another process"
    return RunLockError(
        f"run directory {path.parent} is in use by {who}: two processes must not write one run. "
        f"Wait for it to finish or stop it; if it is gone, delete {path}"
    )


class RunLock:
    """``acquire()`` / ``release()`` the lock of ``run_dir`` (also a context manager)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False
        self._key = ""

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock; RunLockError naming the holder when another live process has it."""
        if self.held:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = str(self.path.resolve())
        if self._key in _HELD:  # another holder in this process
            _HELD[self._key][1] += 1
            self.held = True
            return
        for _ in range(3):  # a competitor may delete or replace the file between our steps
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            flocked = self._flock(fd)
            if flocked is False:
                os.close(fd)
                raise _locked_error(self.path, read_holder(self.path))
            if not self._same_file(fd):  # released (deleted) by its holder meanwhile: again
                os.close(fd)
                continue
            holder = read_holder(self.path)
            if holder is not None and not self._stale(holder, flocked=bool(flocked)):
                os.close(fd)
                raise _locked_error(self.path, holder)
            if holder is not None:
                logger.warning("taking over the stale lock %s of %s", self.path, _describe(holder))
            self._write_holder(fd)
            _HELD[self._key] = [fd, 1]
            self.held = True
            return
        raise RunLockError(f"could not take the lock {self.path}: it keeps changing")

    @staticmethod
    def _flock(fd: int) -> bool | None:
        """True: locked; False: another process holds it; None: no flock here."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # a file system without flock: the contents decide
            return None
        return True

    def _same_file(self, fd: int) -> bool:
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    @staticmethod
    def _stale(holder: dict[str, Any], flocked: bool) -> bool:
        """Whether the holder named in the file may be ignored."""
        if holder.get("host") != socket.gethostname():
            return False  # cannot see that host's processes
        if holder["pid"] == os.getpid():
            return True  # an earlier holder in this process that did not clean up
        # Having the flock proves the holder is gone (a live pid is then a reused one).
        return flocked or not _holder_alive(holder["pid"])

    @staticmethod
    def _write_holder(fd: int) -> None:
        data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data.encode("utf-8"))
        os.fsync(fd)

    def release(self) -> None:
        """Give the lock back (the file is deleted with the last holder in this process)."""
        if not self.held:
            return
        self.held = False
        entry = _HELD.get(self._key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[self._key]
        fd = entry[0]
        if self._same_file(fd):  # never someone else's file (ours deleted by hand, then retaken)
            self.path.unlink(missing_ok=True)  # before unlocking: no one can take a deleted file
        os.close(fd)
