"""Every generated kernel against numpy, in float64 from the exact input values.

Tolerance. Inputs are exact (bf16 values are exactly representable in f32, and products
of two bf16 are exact in f32); the kernel's only error is f32 rounding of products (f32
inputs) and of the running sums. Whatever the summation order, each output then satisfies
|c - ref| <= (K + 2) * u * (sum_k |a_ik * b_kj| + |c0_ij| + |bias_j|), with u = 2^-24 the
unit roundoff of f32, for a sum of at most K + 2 terms, c0 and the bias among them
(Higham, Accuracy and Stability of Numerical Algorithms, 3.1 and 4.2).
A second check uses small integers, for which every step is exact: any dropped,
repeated or misplaced term shows as an exact mismatch.
"""

from __future__ import annotations

import zlib

import ml_dtypes
import numpy as np
import pytest

from .kernel_cases import CASES, Case

U_F32 = 2.0**-24
NP_DTYPES = {"f32": np.float32, "bf16": ml_dtypes.bfloat16}


def _operands(case: Case, rng: np.random.Generator, integers: bool):
    m, k, n = case.shape

    def draw(shape, dtype):
        if integers:
            values = rng.integers(-3, 4, size=shape).astype(np.float64)
        else:
            values = rng.standard_normal(shape)
        return values.astype(NP_DTYPES[dtype])

    a = draw((m, k), case.dtypes[0])
    b = draw((k, n), case.dtypes[1])
    c0 = draw((m, n), "f32") if case.accumulate else np.full((m, n), np.nan, np.float32)
    bias = draw((n,), "f32") if case.bias else None
    return a, b, c0, bias


def _raw(x: np.ndarray) -> np.ndarray:
    """What the C++ side sees: f32 as float, bf16 as its raw uint16 bits."""
    return np.ascontiguousarray(x.view(np.uint16) if x.dtype == ml_dtypes.bfloat16 else x)


def _memory(x: np.ndarray, layout: str) -> np.ndarray:
    """The operand as the kernel reads it: col is the transpose, dense (B col: N rows of K)."""
    return np.ascontiguousarray(x.T if layout == "col" else x)


def _padded(x: np.ndarray, pad: int) -> np.ndarray:
    """Rows followed by ``pad`` NaNs each: a kernel that reads the padding gets NaN out."""
    if not pad:
        return x
    out = np.full((x.shape[0], x.shape[1] + pad), np.nan, dtype=x.dtype)
    out[:, : x.shape[1]] = x
    return out


def _run(fn, case: Case, a, b, c0, bias) -> np.ndarray:
    c = _memory(c0, case.c_layout).copy()  # the kernel writes it; c0 stays the reference
    b_memory = _padded(_memory(b, case.b_layout), case.b_pad)
    fn(_raw(_memory(a, case.a_layout)), _raw(b_memory), c, *_bias(bias))
    return c.T if case.c_layout == "col" else c


def _bias(bias) -> tuple[np.ndarray, ...]:
    return () if bias is None else (bias,)


def _reference(case: Case, a, b, c0, bias):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = a64 @ b64
    magnitude = np.abs(a64) @ np.abs(b64)
    for extra in (c0 if case.accumulate else None, bias):
        if extra is not None:  # the bias broadcasts over the rows
            ref = ref + extra
            magnitude = magnitude + np.abs(extra.astype(np.float64))
    return ref, magnitude


def _variants(compiled, case: Case):
    yield getattr(compiled, case.name)
    if case.threads > 1:
        yield getattr(compiled, case.name + "_host_pool")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_random_within_derived_tolerance(compiled, case: Case) -> None:
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    a, b, c0, bias = _operands(case, rng, integers=False)
    ref, magnitude = _reference(case, a, b, c0, bias)
    tol = (case.shape[1] + 2) * U_F32 * magnitude
    for fn in _variants(compiled, case):
        got = _run(fn, case, a, b, c0, bias).astype(np.float64)
        err = np.abs(got - ref)
        worst = np.unravel_index(np.argmax(err - tol), err.shape)
        assert np.all(err <= tol), (
            f"{case.name}: |err| {err[worst]:.3g} > tol {tol[worst]:.3g} at {worst}"
        )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_small_integers_exact(compiled, case: Case) -> None:
    rng = np.random.default_rng(7)
    a, b, c0, bias = _operands(case, rng, integers=True)
    ref, _ = _reference(case, a, b, c0, bias)
    for fn in _variants(compiled, case):
        got = _run(fn, case, a, b, c0, bias)
        mismatch = np.argwhere(got != ref)
        assert mismatch.size == 0, f"{case.name}: {len(mismatch)} wrong, first at {mismatch[0]}"


def test_random_programs_reach_every_rewrite(programs) -> None:
    """The random programs above, and the forced ones, exercise every kernel, layout and
    move the space has, so their numerical checks cover the code generator, not only the
    optima."""
    from morello.core.kernels import Kernel
    from morello.core.rewrites import Move, Tile

    seen = set()
    for case in CASES:
        if case.sample is None and not case.forced:
            continue
        for node in programs[case.name].walk():
            match node.action:
                case Kernel(kind, mode, _, streams):
                    seen.add(kind.value if mode is None else f"{kind.value}[{mode.value}]")
                    if streams > 1:
                        seen.add(f"{kind.value} in streams")
                case Move(operand, level, layout, dtype):
                    seen.add(f"move {'ABC'[operand]} {level} {layout}")
                    seen.add(f"move {'ABC'[operand]} {level} {layout} {dtype.value}")
                case Tile(dim, _, parallel):
                    seen.add(f"{'parallel ' if parallel else ''}tile {dim.value}")
                case action:
                    seen.add(str(action))
    wanted = {
        "outer_fma",
        "dot[even_odd]",
        "dot[split_both]",
        "dot[widen_b]",
        "dot[f32]",
        "dot_block[even_odd]",
        "dot_block[split_both]",
        "dot_block[widen_b]",
        "dot_block[f32]",
        "dot_block in streams",
        "zero_vrf",
        "zero_mem",
        "load_vrf",
        "store_vrf",
        "copy",
        "scalar_fma",
        "tile m",
        "tile n",
        "tile k",
        "parallel tile n",
        "to-accum",
        "resident",
        "move A L1 evenodd f32",
        "move A L1 row f32",
        "move A L1 col",
        "move B L1 packed16",
        "move B L1 col",
        "move B L1 row",
    }
    assert wanted <= seen, sorted(wanted - seen)
