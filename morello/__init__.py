"""Morello: synthesize fast matmul kernels by dynamic programming, emit header-only C++.

>>> import morello
>>> spec = morello.matmul_problem("1x2048x16384", "bf16,bf16,f32", "row,col,row")
>>> kernel = morello.synthesize(spec)
>>> header = kernel.to_header("gemma_ffw")
"""

__version__ = "0.1.0"

from morello.api import Synthesized, matmul_problem
from morello.api import synthesize_spec as synthesize
from morello.spec import Spec, SpecError, matmul_spec

__all__ = ["Spec", "SpecError", "Synthesized", "matmul_problem", "matmul_spec", "synthesize"]
