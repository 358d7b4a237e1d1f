"""Builds rnnkit's C kernels at install time (``pip install .`` and ``pip install -e .``), so the
first variant layer a user runs loads them instead of compiling them. Everything else about the
package is in ``pyproject.toml``. A machine without a C compiler installs all the same: the
kernels are then built on first use where a compiler appears, or the torch-op kernels serve."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

KERNELS = Path("src/rnnkit/backends/cpu_kernels")


def _kernel_builder():
    # the build module needs only the standard library: load it by path, without rnnkit or torch
    spec = importlib.util.spec_from_file_location("rnnkit_kernel_build", KERNELS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        folder = KERNELS if editable else Path(self.build_lib) / "rnnkit/backends/cpu_kernels"
        builder = _kernel_builder()
        for problem in builder.prebuild(folder / "prebuilt"):
            print(f"rnnkit: the C kernels were not built at install time ({problem}); "
                  "they are built on first use")


setup(cmdclass={"build_py": BuildPyWithKernels})
