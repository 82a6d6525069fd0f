"""The AVX2 microkernel catalogue: which Specs each kernel implements, and what it needs.

A kernel is a leaf of a program. Its C++ text lives in
``morello/emit/templates/kernels.hpp.j2`` (one macro per family, parameterized by tile
shape and dtypes) and its cost in ``cost.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from morello.core.dtypes import Dtype
from morello.core.layout import ColMajor, EvenOdd, Layout, Packed, RowMajor
from morello.core.spec import Op, Spec, TensorSpec
from morello.core.target import F32_LANES, Level


class KernelKind(enum.Enum):
    OUTER_FMA = "outer_fma"  # C[mr x nr] (registers) += A[mr x 1] · B[1 x nr]: broadcast + FMA
    DOT = "dot"  # C[mr x nr] (+)= A[mr x K] · B[K x nr], B rows contiguous along K
    DOT_ROWS = "dot_rows"  # the same, the mr rows of A sharing each loaded block of B
    ZERO_VRF = "zero_vrf"
    ZERO_MEM = "zero_mem"
    LOAD_VRF = "load_vrf"
    STORE_VRF = "store_vrf"
    COPY = "copy"  # into a new buffer: any layout to any layout, widening bf16 to f32
    SCALAR_FMA = "scalar_fma"  # C[1x1] += A[1x1] · B[1x1]: the fallback for anything


class DotMode(enum.Enum):
    """How the dot kernel turns 16 K-elements of each operand into f32 vectors."""

    EVEN_ODD = "even_odd"  # A f32 already in even/odd order; B bf16 split with shift and mask
    SPLIT_BOTH = "split_both"  # A and B bf16, both split into even/odd halves on the fly
    WIDEN_B = "widen_b"  # A f32 in order; B bf16 widened in order (zero-extend + shift)
    F32 = "f32"  # A and B f32


# The dot kernel finishes one output before the next, so each row of B is read as one
# sequential stream (interleaving rows defeats the hardware prefetcher). Its K loop is
# unrolled by 1, 2 or 4 blocks of 16 with two accumulators each (even and odd halves, or
# two 8-lane halves): up to eight FMA chains to cover latency.
DOT_UNROLLS = (1, 2, 4)
# The main loop also prefetches B ahead, because a core's hardware prefetcher alone leaves
# part of the DRAM bandwidth unused. The best distance is the memory's bandwidth times its
# latency, which differs between hosts, so `morello calibrate` measures it per host
# (morello/tune/calibrate.py); this is the default before that (docs/tuning.md,
# docs/results.md). The prefetches cost a load slot per line of B.
DOT_PREFETCH_BYTES = 1024
DOT_TEMPORARIES = 3  # raw B vector and its two f32 halves
DOT_MAX_OUTPUTS = 8  # bounds code size: each output is an unrolled copy of the loop
# A few rows of A (a batch of tokens) can share each block of B the dot kernel loads and
# widens: the weights are then converted once per block instead of once per row, and the
# loop does 2 x rows FMAs per block, which bounds it by the FMA pipes rather than by the
# loads and conversions. Each row keeps two accumulators (no unrolling), so 4 rows fill
# the 16 vector registers with the temporaries.
DOT_ROWS_MAX = 4


def dot_registers(accumulators: int, splits_bf16: bool) -> int:
    """Vector registers a dot kernel holds: its accumulators, the temporaries, and the
    shift mask of the modes that split bf16."""
    return accumulators + DOT_TEMPORARIES + int(splits_bf16)


# The most any dot kernel asks for: the search caps a Spec's register budget at what its
# subtree could use (rewrites.canonical), which must cover this.
DOT_MAX_REGISTERS = max(
    dot_registers(2 * max(DOT_UNROLLS), True), dot_registers(2 * DOT_ROWS_MAX, True)
)
OUTER_FMA_TEMPORARIES = 1  # the broadcast of A


@dataclass(frozen=True, slots=True)
class Kernel:
    kind: KernelKind
    mode: DotMode | None = None
    unroll: int = 1

    def __str__(self) -> str:
        if self.mode is None:
            return self.kind.value
        if self.kind == KernelKind.DOT_ROWS:
            return f"{self.kind.value}[{self.mode.value}]"
        return f"{self.kind.value}[{self.mode.value}, unroll {self.unroll}]"


def _in_memory(level: Level) -> bool:
    return not level.is_register


def is_vector_copy(src: TensorSpec, dst: TensorSpec) -> bool:
    """A copy that moves whole vectors: same dtype, and rows of consecutive elements on both
    sides (a packed buffer is copied panel by panel, each panel row-major), or the same
    column order."""
    if src.dtype != dst.dtype:
        return False
    rows = (RowMajor, Packed)
    if isinstance(src.layout, rows) and isinstance(dst.layout, rows):
        return True
    return type(src.layout) is type(dst.layout)


def is_even_odd_widening(src: TensorSpec, dst: TensorSpec) -> bool:
    """A copy of bf16 rows into even/odd f32: the copy kernel's vector fast path."""
    return (
        isinstance(dst.layout, EvenOdd)
        and isinstance(src.layout, RowMajor)
        and (src.dtype, dst.dtype) == (Dtype.BF16, Dtype.F32)
    )


def dot_mode(a_dtype: Dtype, a_layout: Layout, b_dtype: Dtype) -> DotMode | None:
    if isinstance(a_layout, EvenOdd):
        return DotMode.EVEN_ODD if (a_dtype, b_dtype) == (Dtype.F32, Dtype.BF16) else None
    if not isinstance(a_layout, RowMajor):
        return None
    return {
        (Dtype.BF16, Dtype.BF16): DotMode.SPLIT_BOTH,
        (Dtype.F32, Dtype.BF16): DotMode.WIDEN_B,
        (Dtype.F32, Dtype.F32): DotMode.F32,
    }.get((a_dtype, b_dtype))


def kernels_for(spec: Spec) -> list[Kernel]:
    """Every kernel whose preconditions ``spec`` meets."""
    match spec.op:
        case Op.ZERO:
            (c,) = spec.operands
            if c.level == Level.VRF:
                return [Kernel(KernelKind.ZERO_VRF)]
            return [Kernel(KernelKind.ZERO_MEM)]
        case Op.MOVE:
            return _move_kernels(spec)
    return _matmul_kernels(spec)


def _move_kernels(spec: Spec) -> list[Kernel]:
    src, dst = spec.operands
    if dst.level == Level.VRF and _in_memory(src.level) and src.dtype == Dtype.F32:
        return [Kernel(KernelKind.LOAD_VRF)]
    if src.level == Level.VRF and _in_memory(dst.level) and dst.dtype == Dtype.F32:
        return [Kernel(KernelKind.STORE_VRF)]
    widens = (src.dtype, dst.dtype) == (Dtype.BF16, Dtype.F32)
    if _in_memory(src.level) and _in_memory(dst.level) and (src.dtype == dst.dtype or widens):
        return [Kernel(KernelKind.COPY)]
    return []


def _matmul_kernels(spec: Spec) -> list[Kernel]:
    a, b, c = spec.operands
    m, k, n = spec.mkn
    found: list[Kernel] = []
    if c.dtype != Dtype.F32 or not (_in_memory(a.level) and _in_memory(b.level)):
        return found
    accum = spec.op == Op.MATMUL_ACCUM
    if (
        accum
        and k == 1
        and c.level == Level.VRF
        and isinstance(b.layout, RowMajor)
        and -(-n // F32_LANES) + OUTER_FMA_TEMPORARIES <= spec.limits.vrf
    ):
        found.append(Kernel(KernelKind.OUTER_FMA))
    if _in_memory(c.level) and isinstance(b.layout, ColMajor) and m * n <= DOT_MAX_OUTPUTS:
        mode = dot_mode(a.dtype, a.layout, b.dtype)
        if mode is not None:
            splits = mode in (DotMode.EVEN_ODD, DotMode.SPLIT_BOTH)
            for unroll in DOT_UNROLLS:
                if dot_registers(2 * unroll, splits) <= spec.limits.vrf:
                    found.append(Kernel(KernelKind.DOT, mode, unroll))
            if 2 <= m <= DOT_ROWS_MAX and dot_registers(2 * m, splits) <= spec.limits.vrf:
                found.append(Kernel(KernelKind.DOT_ROWS, mode))
    if accum and (m, k, n) == (1, 1, 1) and _in_memory(c.level):
        found.append(Kernel(KernelKind.SCALAR_FMA))
    return found
