"""Morello: synthesize fast matmul kernels by dynamic programming, emit header-only C++.

>>> import morello
>>> spec = morello.matmul_problem("1x2048x16384", "bf16,bf16,f32", "row,col,row")
>>> kernel = morello.synthesize(spec)
>>> header = kernel.to_header("gemma_ffw")
"""

from pathlib import Path

__version__ = "0.1.0"


from morello.api import Synthesized, matmul_problem
from morello.api import synthesize_spec as synthesize
from morello.spec import Spec, SpecError, matmul_spec


def cmake_dir() -> Path:
    """Where MorelloConfig.cmake is: pass it as Morello_DIR to find_package(Morello)."""
    return Path(__file__).resolve().parent / "cmake"


__all__ = [
    "Spec",
    "SpecError",
    "Synthesized",
    "cmake_dir",
    "matmul_problem",
    "matmul_spec",
    "synthesize",
]
