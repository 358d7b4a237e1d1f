"""One writer per run directory: the lock file, its holder in the error, stale-lock recovery."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

import rnnkit.train.lock as lock_mod
from rnnkit.train.lock import LOCK_FILE, RunLock, RunLockError, read_holder

# Holds (or tries to take) a run's lock in another process; imports lock.py alone (no torch).
HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("lock", sys.argv[1])
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
try:
    lock.RunLock(sys.argv[2]).acquire()
except lock.RunLockError as e:
    print("refused:", e, flush=True)
    sys.exit(3)
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold_in_another_process(run_dir, seconds=30.0) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lock_mod.__file__, str(run_dir), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def try_in_another_process(run_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HOLDER, lock_mod.__file__, str(run_dir), "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_file_names_its_holder_and_goes_with_release(tmp_path):
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    holder = read_holder(tmp_path / "run" / LOCK_FILE)
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert abs(holder["since"] - time.time()) < 60
    other = try_in_another_process(tmp_path / "run")
    assert other.returncode == 3
    assert f"in use by pid {os.getpid()} on host {socket.gethostname()}" in other.stdout
    lock.release()
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    assert try_in_another_process(tmp_path / "run").returncode == 0


def test_a_live_holder_in_another_process_is_named(tmp_path):
    proc = hold_in_another_process(tmp_path)
    try:
        with pytest.raises(
            RunLockError, match=rf"in use by pid {proc.pid} on host .*delete .*run\.lock"
        ):
            RunLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with RunLock(tmp_path):  # the kernel released it with its holder
        assert read_holder(tmp_path / LOCK_FILE)["pid"] == os.getpid()


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path, caplog):
    pid = dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "since": time.time() - 3600}
    (tmp_path / LOCK_FILE).write_text(json.dumps(stale))
    with caplog.at_level("WARNING", logger="rnnkit.train.lock"), RunLock(tmp_path):
        assert read_holder(tmp_path / LOCK_FILE)["pid"] == os.getpid()
    assert f"stale lock {tmp_path / LOCK_FILE} of pid {pid}" in caplog.text


def test_without_flock_a_dead_pid_is_stale_and_a_live_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_mod, "fcntl", None)  # as on Windows: the contents decide
    host = socket.gethostname()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": host}))
    with pytest.raises(RunLockError, match=f"pid {os.getppid()}"):
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": host}))
    with RunLock(tmp_path):
        assert read_holder(tmp_path / LOCK_FILE)["pid"] == os.getpid()


def test_a_holder_on_another_host_is_never_second_guessed(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RunLockError, match="pid 1 on host elsewhere.example"):
        RunLock(tmp_path).acquire()
    assert read_holder(tmp_path / LOCK_FILE)["host"] == "elsewhere.example"  # left alone


def test_holders_in_one_process_share_the_lock(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    second.acquire()
    first.release()
    assert (tmp_path / LOCK_FILE).exists()  # still held by the second
    assert try_in_another_process(tmp_path).returncode == 3
    second.release()
    assert not (tmp_path / LOCK_FILE).exists()
    second.release()  # releasing twice is harmless
