"""Build pybind11 bindings for generated kernels through the top-level CMakeLists.txt.

Sources are written only when their text changes, and the CMake build directory is kept
under tests/.cache, so a rerun with the same kernels recompiles nothing.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pybind11

from morello.core.dtypes import Dtype

ROOT = Path(__file__).resolve().parent.parent
TRANSLATION_UNITS = 4  # kernels are split over a few sources so two cores compile in parallel


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _binding(name: str, a: str, b: str, threads: int, bias: bool) -> str:
    at, bt = Dtype.parse(a).c_type, Dtype.parse(b).c_type
    # With a bias the Python function takes it as a fourth array, after c.
    params = ", Arr<float> bias" if bias else ""
    args = "bias.data(), " if bias else ""
    # For multi-threaded kernels also bind the host-executor overload, driven by a plain
    # std::thread executor: the hook a project like gemma.cpp plugs its own pool into.
    custom = ""
    if threads > 1:
        custom = f"""
  m.def("{name}_host_pool", [](Arr<{at}> a, Arr<{bt}> b, Arr<float> c{params}) {{
    py::gil_scoped_release unlocked;
    morello::{name}(a.data(), b.data(), {args}c.mutable_data(), [](std::size_t n, auto&& body) {{
      std::vector<std::thread> threads;
      for (std::size_t t = 1; t < n; ++t) threads.emplace_back([&body, t] {{ body(t); }});
      if (n > 0) body(0);
      for (auto& th : threads) th.join();
    }});
  }});"""
    return f"""
#include "{name}.hpp"
void register_{name}(py::module_& m) {{
  m.def("{name}", [](Arr<{at}> a, Arr<{bt}> b, Arr<float> c{params}) {{
    py::gil_scoped_release unlocked;
    morello::{name}(a.data(), b.data(), {args}c.mutable_data());
  }});{custom}
}}
"""


_PRELUDE = """#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <thread>
#include <vector>
namespace py = pybind11;
template <class T> using Arr = py::array_t<T, py::array::c_style>;
"""


def build(kernels: Sequence[tuple[str, str, str, str, int, bool]], cache: Path):
    """kernels: (name, header text, A dtype, B dtype, threads, bias). Returns the module."""
    src = cache / "src"
    build_dir = cache / "build"
    src.mkdir(parents=True, exist_ok=True)
    for name, header, *_ in kernels:
        _write_if_changed(src / f"{name}.hpp", header)
    units: list[list[str]] = [[] for _ in range(TRANSLATION_UNITS)]
    for i, (name, _, a, b, threads, bias) in enumerate(kernels):
        units[i % TRANSLATION_UNITS].append(_binding(name, a, b, threads, bias))
    for i, unit in enumerate(units):
        _write_if_changed(src / f"unit{i}.cpp", _PRELUDE + "".join(unit))
    names = [k[0] for k in kernels]
    module = "\n".join(
        [
            _PRELUDE,
            *(f"void register_{n}(py::module_&);" for n in names),
            "PYBIND11_MODULE(morello_test_kernels, m) {",
            *(f"  register_{n}(m);" for n in names),
            "}",
        ]
    )
    _write_if_changed(src / "module.cpp", module)
    for stale in src.glob("*.hpp"):
        if stale.stem not in names:
            stale.unlink()
    env = _environment()
    if not (build_dir / "CMakeCache.txt").exists():
        _run(
            [
                "cmake",
                "-S",
                str(ROOT),
                "-B",
                str(build_dir),
                "-G",
                "Ninja",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DMORELLO_BUILD_TEST_BINDINGS=ON",
                f"-DMORELLO_TEST_KERNEL_DIR={src}",
                *_python_defines(),
            ],
            env,
        )
    _run(["cmake", "--build", str(build_dir), "--parallel"], env)
    sys.path.insert(0, str(build_dir))
    return importlib.import_module("morello_test_kernels")


def build_extension(
    source: Path, build_dir: Path, module: str, defines: dict[str, str], env: dict[str, str]
):
    """The pybind11 extension ``module`` of the CMake project in ``source``, configured every
    time (cheap on a kept build) so that ``defines`` always hold, built, and imported."""
    env = dict(
        os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env
    )
    configure = ["cmake", "-S", str(source), "-B", str(build_dir), "-G", "Ninja"]
    configure += ["-DCMAKE_BUILD_TYPE=Release", *(f"-D{k}={v}" for k, v in defines.items())]
    configure += [
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        f"-DPython_EXECUTABLE={sys.executable}",
    ]
    _run(configure, env)
    _run(["cmake", "--build", str(build_dir), "--parallel"], env)
    sys.path.insert(0, str(build_dir))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(build_dir))


def _environment() -> dict[str, str]:
    """This environment, with this Python's scripts (morello, for CMake) first on the PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _python_defines() -> list[str]:
    return [f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}"]


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
