"""Building the C kernels (``csrc/``) into a shared library, with no dependency beyond the standard
library, so that ``setup.py`` can build them at install time as :mod:`.library` does on first use.

A library's file name carries a digest of everything its code depends on (the sources, the
compiler command, the flags, this CPU and the ABI version), so a stale or foreign file is never
picked up under a current name. Each library is written with a build record (its size and SHA-256)
and loaded only when it matches it.

Where a library is looked for, in order: the ``prebuilt/`` folder beside this module (filled at
install time; ``RNNKIT_PREBUILT_KERNELS=0`` skips it), then the cache ``$RNNKIT_CACHE_DIR/kernels``
(default ``~/.cache/rnnkit/kernels``), where a missing one is compiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

# the version the C side reports (rnnkit_abi_version) and the Python side checks before binding
ABI_VERSION = 17
SOURCE_DIR = Path(__file__).parent / "csrc"
PREBUILT_DIR = Path(__file__).parent / "prebuilt"
SOURCES = ("rnnkit_cpu.c", "rnnkit_cpu.h", "panel_gemm.h", "lstm_template.h", "gru_template.h",
           "minrnn_template.h", "slstm_template.h")  # fmt: skip
SUFFIXES = ("f32", "f64")
# -ffast-math for vectorised math, but NaN and Inf kept: they propagate as in torch.nn. -fopenmp:
# the step kernels split a step's batch rows over torch's threads; the library then needs
# libgomp.so.1, which is the copy torch has loaded already (one thread pool, no oversubscription)
FLAGS = ("-O2", "-ftree-vectorize", "-march=native", "-ffast-math", "-fno-finite-math-only",
         "-fopenmp", "-fPIC", "-shared")  # fmt: skip


class CompilerError(RuntimeError):
    """``$CC`` is not a command line."""


def cpu_signature() -> str:
    """What ``-march=native`` depends on: the machine and the CPU's feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                flags += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def cache_dir() -> Path:
    root = os.environ.get("RNNKIT_CACHE_DIR") or Path.home() / ".cache" / "rnnkit"
    return Path(root) / "kernels"


def flags(suffix: str) -> tuple[str, ...]:
    return (*FLAGS, "-DRNNKIT_F64") if suffix == "f64" else FLAGS


def library_name(compiler: list[str], suffix: str) -> str:
    """``rnnkit_cpu_{suffix}_{digest}.so`` for the current sources, ``compiler``, flags and CPU."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((SOURCE_DIR / name).read_bytes())
    digest.update(" ".join((*compiler, *flags(suffix), cpu_signature(), str(ABI_VERSION))).encode())
    return f"rnnkit_cpu_{suffix}_{digest.hexdigest()[:16]}.so"


def compiler() -> list[str] | None:
    """``$CC`` split like a shell word list (``CC="gcc -O0"`` is a compiler and a flag), or ``cc`` /
    ``gcc`` from ``PATH``; None when there is none. Raises :class:`CompilerError` for a ``$CC``
    that is not a command line (an unbalanced quote)."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        try:
            return shlex.split(cc)
        except ValueError as err:
            raise CompilerError(f"CC={cc!r} is not a command line ({err})") from err
    found = shutil.which("cc") or shutil.which("gcc")
    return None if found is None else [found]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_path(target: Path) -> Path:
    """The build record beside a library: its size and SHA-256, written after the build."""
    return target.with_suffix(".json")


def compile_library(compiler: list[str], target: Path, suffix: str) -> None:
    """Compile into a temporary file next to ``target``, then rename it and its build record into
    place: concurrent processes (DDP ranks) may race, and each sees either no file or a whole one.
    Raises ``subprocess.CalledProcessError`` (with the compiler's output) when it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    source = str(SOURCE_DIR / "rnnkit_cpu.c")
    cmd = [*compiler, *flags(suffix), f"-I{SOURCE_DIR}", source, "-o", tmp, "-lm"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
        record = {"size": os.path.getsize(tmp), "sha256": file_digest(Path(tmp))}
        fd, tmp_record = tempfile.mkstemp(suffix=".json", dir=target.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, target)
        os.replace(tmp_record, record_path(target))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def intact(target: Path) -> bool:
    """Whether ``target`` is the file its build record describes (size, then SHA-256). A library
    truncated or replaced on disk would crash the process (SIGBUS) or misbehave on load."""
    try:
        record = json.loads(record_path(target).read_text())
        return target.stat().st_size == record["size"] and file_digest(target) == record["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prebuilt_enabled() -> bool:
    return os.environ.get("RNNKIT_PREBUILT_KERNELS", "").strip().lower() not in ("0", "false",
                                                                                "no", "off")  # fmt: skip


def prebuild(folder: Path = PREBUILT_DIR) -> list[str]:
    """Build every library into ``folder`` (``setup.py`` calls this at install time); returns what
    went wrong, one line per library (an empty list: all built). A machine without a compiler
    builds them on first use instead, or runs the torch-op kernels."""
    try:
        cc = compiler()
    except CompilerError as err:
        return [str(err)]
    if cc is None:
        return ["no C compiler found"]
    problems = []
    for suffix in SUFFIXES:
        target = folder / library_name(cc, suffix)
        if target.exists() and intact(target):
            continue
        try:
            compile_library(cc, target, suffix)
        except (OSError, subprocess.SubprocessError) as err:
            problems.append(f"{suffix}: {getattr(err, 'stderr', '') or err}")
    return problems
