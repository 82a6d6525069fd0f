"""The inputs of a timed matmul: random operands in the dtypes each system computes in,
rotating through copies when the problem is cold (read from DRAM on every call, as a
decoder's weights are), and the exact product with the error bound a result must meet."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import ml_dtypes
import numpy as np

from morello.core.dtypes import Dtype
from morello.tune.harness import aligned_empty
from morello.tune.machine import beyond_l3

ROTATION_BYTES = beyond_l3(128 << 20)  # inputs of a cold problem rotate over this much
MAX_COPIES = 256  # bounds the copies of small problems, which stay in cache whatever we do
REFERENCE_BLOCK_ELEMS = 1 << 24  # B's elements widened to f64 at once (128 MiB)


@dataclass(frozen=True, slots=True)
class Problem:
    m: int
    k: int
    n: int
    a_dtype: Dtype
    b_dtype: Dtype
    b_col: bool  # B stored as N rows of K, the layout of LLM weights
    cold: bool  # inputs come from DRAM on every call, as a decoder's weights do

    @property
    def b_shape(self) -> tuple[int, int]:
        return (self.n, self.k) if self.b_col else (self.k, self.n)


def _np_dtype(dtype: Dtype) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16 if dtype == Dtype.BF16 else np.float32)


@dataclass
class Inputs:
    """Random inputs of a problem, in copies that rotate when the problem is cold, and in
    as many dtypes as the contenders ask for (each made once and shared)."""

    problem: Problem
    seed: int = 0
    _copies: dict[tuple[Dtype, Dtype], tuple[list[np.ndarray], list[np.ndarray]]] = field(
        default_factory=dict
    )

    def copies(self, a_dtype: Dtype, b_dtype: Dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
        key = (a_dtype, b_dtype)
        if key not in self._copies:
            p = self.problem
            a0, b0 = self.values
            count = 1
            if p.cold:
                size = a0.size * a_dtype.size + b0.size * b_dtype.size
                count = min(MAX_COPIES, max(1, math.ceil(ROTATION_BYTES / size)))
            self._copies[key] = (
                [_aligned_copy(a0, _np_dtype(a_dtype)) for _ in range(count)],
                [_aligned_copy(b0, _np_dtype(b_dtype)) for _ in range(count)],
            )
        return self._copies[key]

    def native(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return self.copies(self.problem.a_dtype, self.problem.b_dtype)

    @cached_property
    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Copy 0 in the problem's dtypes: every other copy and dtype derives from it."""
        p = self.problem
        rng = np.random.default_rng(self.seed)
        a = rng.uniform(-1, 1, (p.m, p.k)).astype(np.float32).astype(_np_dtype(p.a_dtype))
        b = rng.uniform(-1, 1, p.b_shape).astype(np.float32).astype(_np_dtype(p.b_dtype))
        return a, b

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact product in f64, and |A|·|B| to scale error bounds by. B is widened a
        block of columns at a time: a vocabulary projection's weights in f64 would take
        several times the memory the contenders' own copies already do."""
        p = self.problem
        a, b = self.values
        a64 = a.astype(np.float64)
        product, scale = np.empty((p.m, p.n)), np.empty((p.m, p.n))
        step = max(1, REFERENCE_BLOCK_ELEMS // p.k)
        for j in range(0, p.n, step):
            block = (b[j : j + step].T if p.b_col else b[:, j : j + step]).astype(np.float64)
            product[:, j : j + step] = a64 @ block
            scale[:, j : j + step] = np.abs(a64) @ np.abs(block)
        return product, scale


def _aligned_copy(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = aligned_empty(values.shape, dtype)
    out[...] = values.astype(dtype)
    return out


def error_bound(k: int, bf16_roundings: int = 0) -> float:
    """|c - ref| / (|A|·|B|) of a K-term f32 dot product (Higham 3.1: (K + 2) u, u = 2^-24),
    plus 2^-8 for each rounding to bf16 on the way (a narrowed input, a bf16 output)."""
    return (k + 2) * 2.0**-24 + bf16_roundings * 2.0**-8


def max_error(output: np.ndarray, reference: np.ndarray, scale: np.ndarray) -> float:
    """The largest |output - reference| / (|A|·|B|): what ``error_bound`` bounds."""
    return float(np.max(np.abs(output.astype(np.float64) - reference) / np.maximum(scale, 1e-30)))
