"""The AVX2 microkernel catalogue: for each family, the Specs it implements, the registers
it needs and what it costs, together in one ``Family``.

A kernel is a leaf of a program. Its C++ text lives in
``morello/emit/templates/kernels.hpp.j2`` (one macro per family, parameterized by tile
shape and dtypes). Adding a kernel is a ``Family`` here, its macro there, and the few
lines of codegen that hand the macro its operands.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from morello.core.dtypes import Dtype
from morello.core.layout import (
    CACHE_LINE,
    EVEN_ODD_BLOCK,
    ColMajor,
    EvenOdd,
    Layout,
    Packed,
    RowMajor,
)
from morello.core.rates import (
    COPY_CYCLES_PER_ELEMENT,
    COPY_CYCLES_PER_VECTOR,
    EVEN_ODD_WIDEN_CYCLES,
    HSUM_CYCLES,
    SCALAR_FMA_CYCLES,
    Rates,
    concurrent_line_cost,
    elems,
    line_cost,
    reread_cost,
    throughput,
    vectors,
)
from morello.core.spec import Op, Spec, TensorSpec
from morello.core.target import F32_LANES, Level


class KernelKind(enum.Enum):
    OUTER_FMA = "outer_fma"  # C[mr x nr] (registers) += A[mr x 1] · B[1 x nr]: broadcast + FMA
    DOT = "dot"  # C[mr x nr] (+)= A[mr x K] · B[K x nr], B rows contiguous along K
    DOT_BLOCK = "dot_block"  # the same, a block of outputs at once sharing loads of A and B
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
# A dot block computes its mr x nr outputs at once, each with two accumulators. Each
# block of 16 K-elements of A is loaded (and split) once for all nr columns, and each of B
# once for all mr rows. Rows sharing B (a batch of tokens) convert the weights once per
# block instead of once per row; columns sharing A keep a long vector that lives in L2 from
# being re-read once per output, and read nr columns of B as concurrent DRAM streams.
# With ``streams`` S, the block's columns are instead S runs of consecutive columns, and
# the kernel steps through the runs side by side, one column of each at a time: S long
# streams however short a column is, which some hosts read faster than one (rates.py).
DOT_BLOCK_MAX_OUTPUTS = 6


def dot_registers(accumulators: int, splits_bf16: bool, a_held: int = 0) -> int:
    """Vector registers a dot kernel holds: its accumulators, the temporaries, the shift
    mask of the modes that split bf16, and the blocks of A held for several columns."""
    return accumulators + DOT_TEMPORARIES + int(splits_bf16) + a_held


def dot_block_registers(rows: int, columns: int, splits_bf16: bool) -> int:
    """A block's registers: two accumulators per output; each row's two halves of A are
    held across the columns (with one column, FMAs read them from memory)."""
    held = 2 * rows if columns > 1 else 0
    return dot_registers(2 * rows * columns, splits_bf16, held)


# The most any dot kernel asks for: the search caps a Spec's register budget at what its
# subtree could use (rewrites.canonical), which must cover this.
DOT_MAX_REGISTERS = max(
    dot_registers(2 * max(DOT_UNROLLS), True),
    max(
        dot_block_registers(r, c, True)
        for r in range(1, DOT_BLOCK_MAX_OUTPUTS + 1)
        for c in range(1, DOT_BLOCK_MAX_OUTPUTS // r + 1)
    ),
)
OUTER_FMA_TEMPORARIES = 1  # the broadcast of A


@dataclass(frozen=True, slots=True)
class Kernel:
    kind: KernelKind
    mode: DotMode | None = None
    unroll: int = 1
    # A dot block's columns live at once, when fewer than the Spec's: the columns are cut
    # into this many equal runs of consecutive columns, read side by side (see DOT_BLOCK).
    streams: int = 1

    def __str__(self) -> str:
        if self.mode is None:
            return self.kind.value
        if self.kind == KernelKind.DOT_BLOCK:
            runs = f", {self.streams} streams" if self.streams > 1 else ""
            return f"{self.kind.value}[{self.mode.value}{runs}]"
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


# --- The families. Each is one object: the Specs it implements and the registers it
# needs (``offer``), and what one application costs (``cost``). Its C++ is the macro of
# the same name in morello/emit/templates/kernels.hpp.j2; codegen passes it the operands.


@dataclass(frozen=True, slots=True)
class Family:
    kind: KernelKind
    op: Op  # the one operation it implements
    offer: Callable[[Spec], Iterator[Kernel]]  # the kernels of the family ``spec`` admits
    cost: Callable[[Spec, Kernel, Rates], float]


def _zero_vrf(spec: Spec) -> Iterator[Kernel]:
    if spec.operands[0].level == Level.VRF:
        yield Kernel(KernelKind.ZERO_VRF)


def _zero_vrf_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    return spec.operands[0].registers / rates.vector_ops_per_cycle


def _zero_mem(spec: Spec) -> Iterator[Kernel]:
    if spec.operands[0].level != Level.VRF:
        yield Kernel(KernelKind.ZERO_MEM)


def _zero_mem_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    (c,) = spec.operands
    return vectors(c) * COPY_CYCLES_PER_VECTOR + line_cost(c, rates)


def _load_vrf(spec: Spec) -> Iterator[Kernel]:
    src, dst = spec.operands
    if dst.level == Level.VRF and _in_memory(src.level) and src.dtype == Dtype.F32:
        yield Kernel(KernelKind.LOAD_VRF)


def _store_vrf(spec: Spec) -> Iterator[Kernel]:
    src, dst = spec.operands
    if src.level == Level.VRF and _in_memory(dst.level) and dst.dtype == Dtype.F32:
        yield Kernel(KernelKind.STORE_VRF)


def _register_move_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    mem = next(t for t in spec.operands if not t.level.is_register)
    per = vectors(mem) if isinstance(mem.layout, RowMajor) else elems(mem)
    return per * COPY_CYCLES_PER_VECTOR + line_cost(mem, rates)


def _copy(spec: Spec) -> Iterator[Kernel]:
    src, dst = spec.operands
    widens = (src.dtype, dst.dtype) == (Dtype.BF16, Dtype.F32)
    if _in_memory(src.level) and _in_memory(dst.level) and (src.dtype == dst.dtype or widens):
        yield Kernel(KernelKind.COPY)


def _copy_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    src, dst = spec.operands
    moved = vectors(src) * COPY_CYCLES_PER_VECTOR
    if not is_vector_copy(src, dst):
        moved = elems(src) * COPY_CYCLES_PER_ELEMENT
    if is_even_odd_widening(src, dst):
        blocks = math.ceil(src.shape[0] * src.shape[1] / EVEN_ODD_BLOCK)
        moved = blocks * EVEN_ODD_WIDEN_CYCLES
    return moved + line_cost(src, rates) + line_cost(dst, rates)


def _computes(spec: Spec) -> bool:
    """What every matmul kernel needs: f32 C, and A and B in memory."""
    a, b, c = spec.operands
    return c.dtype == Dtype.F32 and _in_memory(a.level) and _in_memory(b.level)


def _outer_fma(spec: Spec) -> Iterator[Kernel]:
    _, b, c = spec.operands
    n = c.shape[1]
    if (
        _computes(spec)
        and spec.op == Op.MATMUL_ACCUM
        and spec.mkn[1] == 1
        and c.level == Level.VRF
        and isinstance(b.layout, RowMajor)
        and -(-n // F32_LANES) + OUTER_FMA_TEMPORARIES <= spec.limits.vrf
    ):
        yield Kernel(KernelKind.OUTER_FMA)


def _outer_fma_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    a, b, c = spec.operands
    mr, nr = c.shape
    nb = math.ceil(nr / F32_LANES)
    fmas = mr * nb
    alu = (2 * nb if b.dtype.size == 2 else 0) + (mr if a.dtype.size == 2 else 0)
    # Called once per k inside a loop: each accumulator is a dependency chain.
    return throughput(rates, fmas, mr + nb, alu) + line_cost(a, rates) + line_cost(b, rates)


def _dot_operands(spec: Spec) -> tuple[DotMode, bool] | None:
    """The dot kernels' mode for ``spec``, and whether it splits bf16 (holding a mask); None
    where no dot kernel applies."""
    a, b, c = spec.operands
    if not (_computes(spec) and _in_memory(c.level) and isinstance(b.layout, ColMajor)):
        return None
    mode = dot_mode(a.dtype, a.layout, b.dtype)
    if mode is None:
        return None
    return mode, mode in (DotMode.EVEN_ODD, DotMode.SPLIT_BOTH)


def _dot(spec: Spec) -> Iterator[Kernel]:
    found = _dot_operands(spec)
    m, _, n = spec.mkn
    if found is None or m * n > DOT_MAX_OUTPUTS:
        return
    mode, splits = found
    for unroll in DOT_UNROLLS:
        if dot_registers(2 * unroll, splits) <= spec.limits.vrf:
            yield Kernel(KernelKind.DOT, mode, unroll)


# Per block of 16 K-elements, what each operand costs the dot kernels besides the FMAs:
# (loads, other vector operations) for B's block, then for one row of A.
_DOT_WORK = {
    DotMode.EVEN_ODD: ((1, 2), (2, 0)),  # split B with a shift and a mask; A already split
    DotMode.SPLIT_BOTH: ((1, 2), (1, 2)),  # both split
    DotMode.WIDEN_B: ((2, 5), (2, 0)),  # B widened in order: zero-extend and shift
    DotMode.F32: ((2, 0), (2, 0)),
}


def _dot_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    a, b, c = spec.operands
    mr, k, nr = spec.mkn
    u = kernel.unroll
    assert kernel.mode is not None
    (b_loads, b_alu), (a_loads, a_alu) = _DOT_WORK[kernel.mode]
    loads, alu = b_loads + a_loads, b_alu + a_alu
    # The unrolled loop also prefetches each line of B it reads (see DOT_PREFETCH_BYTES).
    prefetches = math.ceil(EVEN_ODD_BLOCK * u * b.dtype.size / CACHE_LINE)
    steps, rest = divmod(k, EVEN_ODD_BLOCK * u)
    blocks, tail = divmod(rest, EVEN_ODD_BLOCK)
    per_output = (
        steps * throughput(rates, 2 * u, loads * u + prefetches, alu * u)
        + blocks * throughput(rates, 2, loads, alu)
        + tail * SCALAR_FMA_CYCLES
        + HSUM_CYCLES
    )
    # One output at a time: A is read once per column, B once per row.
    a_reads = reread_cost(a, nr, k * a.dtype.size, rates)
    reads = a_reads + reread_cost(b, mr, k * b.dtype.size, rates)
    return mr * nr * per_output + reads + line_cost(c, rates)


def _dot_block(spec: Spec) -> Iterator[Kernel]:
    found = _dot_operands(spec)
    if found is None:
        return
    mode, splits = found
    m, _, n = spec.mkn
    for streams in range(1, DOT_BLOCK_MAX_OUTPUTS // m + 1):
        live = n if streams == 1 else streams  # the columns whose outputs live at once
        if streams > 1 and (n % streams or n // streams < 2):
            continue
        if 2 <= m * live <= DOT_BLOCK_MAX_OUTPUTS and (
            dot_block_registers(m, live, splits) <= spec.limits.vrf
        ):
            yield Kernel(KernelKind.DOT_BLOCK, mode, streams=streams)


def _dot_block_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    a, b, c = spec.operands
    mr, k, n = spec.mkn
    assert kernel.mode is not None
    live, steps = (n, 1) if kernel.streams == 1 else (kernel.streams, n // kernel.streams)
    (b_loads, b_alu), (a_loads, a_alu) = _DOT_WORK[kernel.mode]
    # Each column's B is prefetched ahead once a block; with one column A is read by the
    # FMAs, once per use.
    prefetches = live * math.ceil(EVEN_ODD_BLOCK * b.dtype.size / CACHE_LINE)
    blocks, tail = divmod(k, EVEN_ODD_BLOCK)
    per_block = throughput(
        rates,
        2 * mr * live,
        live * b_loads + mr * a_loads + prefetches,
        live * b_alu + mr * a_alu,
    )
    tails = mr * live * (tail * SCALAR_FMA_CYCLES + HSUM_CYCLES)
    # B is read as ``live`` streams; each runs on through its consecutive columns when a
    # column is all of the caller's (B contiguous), else stops at the column's end.
    run = k * b.dtype.size * (steps if b.contiguous else 1)
    a_reads = reread_cost(a, steps, k * a.dtype.size, rates)
    lines = a_reads + concurrent_line_cost(b, live, run, rates) + line_cost(c, rates)
    return steps * (blocks * per_block + tails) + lines


def _scalar_fma(spec: Spec) -> Iterator[Kernel]:
    accum = spec.op == Op.MATMUL_ACCUM
    if _computes(spec) and accum and spec.mkn == (1, 1, 1) and _in_memory(spec.operands[2].level):
        yield Kernel(KernelKind.SCALAR_FMA)


def _scalar_fma_cost(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    return SCALAR_FMA_CYCLES + sum(line_cost(t, rates) for t in spec.operands)


# In the order the search meets them (on equal costs the first found is kept).
FAMILIES = (
    Family(KernelKind.ZERO_VRF, Op.ZERO, _zero_vrf, _zero_vrf_cost),
    Family(KernelKind.ZERO_MEM, Op.ZERO, _zero_mem, _zero_mem_cost),
    Family(KernelKind.LOAD_VRF, Op.MOVE, _load_vrf, _register_move_cost),
    Family(KernelKind.STORE_VRF, Op.MOVE, _store_vrf, _register_move_cost),
    Family(KernelKind.COPY, Op.MOVE, _copy, _copy_cost),
    *(
        family
        for op in (Op.MATMUL, Op.MATMUL_ACCUM)
        for family in (
            Family(KernelKind.OUTER_FMA, op, _outer_fma, _outer_fma_cost),
            Family(KernelKind.DOT, op, _dot, _dot_cost),
            Family(KernelKind.DOT_BLOCK, op, _dot_block, _dot_block_cost),
            Family(KernelKind.SCALAR_FMA, op, _scalar_fma, _scalar_fma_cost),
        )
    ),
)
_BY_OP = {op: tuple(f for f in FAMILIES if f.op == op) for op in Op}
_BY_KIND = {f.kind: f for f in FAMILIES}


def family(kernel: Kernel) -> Family:
    return _BY_KIND[kernel.kind]


def kernels_for(spec: Spec) -> list[Kernel]:
    """Every kernel whose preconditions ``spec`` meets."""
    return [kernel for f in _BY_OP[spec.op] for kernel in f.offer(spec)]
