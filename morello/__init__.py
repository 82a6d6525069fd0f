"""Morello: synthesize fast matmul kernels by dynamic programming, emit header-only C++."""

__version__ = "0.1.0"
