"""Morello: synthesize fast matmul kernels by dynamic programming, emit header-only C++.

>>> import morello
>>> spec = morello.matmul_problem("1x2048x16384", "bf16,bf16,f32", "row,col,row")
>>> kernel = morello.synthesize(spec)
>>> header = kernel.to_header("gemma_ffw")

The package is layered, lowest first: ``core`` (the Spec language, rewrites, cost model,
search), ``store`` (the persistent memo table), ``emit`` (C++ rendering), ``tune`` (the
host profile and measurements), ``bench`` (the benchmark suite and its peers), ``front``
(command line, Python API, kernel lists). A layer imports only the ones below it; this
module imports none of them eagerly, so ``import morello.core.spec`` loads no front end.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it (loaded on first use).
_EXPORTS = {
    "Spec": "morello.core.spec",
    "matmul_spec": "morello.core.spec",
    "Synthesized": "morello.front.api",
    "matmul_problem": "morello.core.spec",
    "synthesize": "morello.front.api",
    "MorelloError": "morello.errors",
    "SpecError": "morello.errors",
}


def cmake_dir() -> Path:
    """Where MorelloConfig.cmake is: pass it as Morello_DIR to find_package(Morello)."""
    return Path(__file__).resolve().parent / "cmake"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'morello' has no attribute {name!r}")
    attribute = "synthesize_spec" if name == "synthesize" else name
    return getattr(importlib.import_module(_EXPORTS[name]), attribute)


__all__ = ["cmake_dir", *_EXPORTS]
