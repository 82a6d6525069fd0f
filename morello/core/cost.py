"""The affine cost model: every constant the search weighs programs by, and why.

Units are approximate core cycles. A program's cost is built bottom-up: a kernel costs
what its formula says (compute throughput bounds, plus the cache lines it touches priced
by the level they come from); a loop costs its trip count times its body plus a small
per-iteration overhead; a parallel loop divides the trips among threads and pays a
dispatch overhead; a move costs by the lines moved and the level they come from; making
tiles resident in a cache costs their lines once, after which touching them is cheap.

That last fetch is not a phase of its own when it comes from a cache (L3 or L2): the code
below a resident tile reads its lines as it computes and the hardware prefetchers stream
them meanwhile, so the fetch costs only where it is longer than that work (a roofline per
resident tile). Charging it on top made the search pack A into L1 to save an L2 stream that
in fact costs nothing, and split K short to fit that copy. A fetch from DRAM is charged in
full: it is what a memory-bound kernel's time is made of, and the search must see the
order it reads in. That order is the code's below the Promote, not the tile's layout: a
loop that cuts the resident tile across its runs pays their extra streams (``restreams``).
A Move is a copy loop of its own and is charged in full.

What a core does per cycle (``Rates``: its FMA, load and vector port throughputs, and
the cycles a line takes to stream from DRAM and from L3) is measured on the host by
``morello calibrate``; the defaults describe a Zen 4 / Skylake class core. The other
constants are properties of the code the kernels compile to. Exactness of the search does
not depend on any of the values, only its taste.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from morello.core.kernels import DotMode, Kernel, KernelKind, is_even_odd_widening, is_vector_copy
from morello.core.layout import CACHE_LINE, COL, EVEN_ODD_BLOCK, ROW, RowMajor
from morello.core.rewrites import Action, Promote, Tile, runs
from morello.core.spec import Spec, TensorSpec
from morello.core.target import AVX2_LIMITS, F32_LANES, Level, MemoryLimits

# The model's version. Bump it with any edit that makes some program cost differently or
# changes which programs exist (a rewrite, a kernel, a cost term, the table's encoding of
# actions): memo tables are keyed by it, so a bump starts new tables and an edit that prices
# nothing differently keeps users' tables. tests/test_model_version.py records the optima
# of a set of Specs at this version and fails when they move without a bump.
MODEL_VERSION = 1


@dataclass(frozen=True, slots=True)
class Rates:
    """What one core of the host does per cycle: the constants ``morello calibrate``
    measures (``morello.tune.host``). The defaults describe a Zen 4 / Skylake class core."""

    fma_per_cycle: float = 2.0  # two 256-bit FMA pipes
    loads_per_cycle: float = 2.0  # vector loads from L1 beside the FMAs they feed
    vector_ops_per_cycle: float = 3.0  # shifts, masks and FMAs share three vector ports
    # Price of touching one cache line that lives at a level. DRAM streams about 25 GB/s
    # to one core, ~7 bytes a cycle: ~9 cycles a line; L3 about 20 bytes a cycle.
    dram_line_cycles: float = 10.0
    l3_line_cycles: float = 3.0
    # Each separate run of lines read from DRAM restarts the hardware prefetcher, which then
    # waits most of a DRAM latency (~100 ns) before it streams: reading a matrix in strided
    # pieces is measurably slower than reading it front to back.
    dram_stream_start_cycles: float = 200.0

    def __str__(self) -> str:
        return (
            f"{self.fma_per_cycle:g} FMA, {self.loads_per_cycle:g} loads, "
            f"{self.vector_ops_per_cycle:g} vector ops a cycle; a line in "
            f"{self.dram_line_cycles:g} cycles from DRAM, {self.l3_line_cycles:g} from L3; "
            f"{self.dram_stream_start_cycles:g} to start a stream from DRAM"
        )

    def stream_start_cycles(self, level: Level) -> float:
        match level:
            case Level.GL:
                return self.dram_stream_start_cycles
            case Level.L3:
                return L3_STREAM_START_CYCLES
        return 0.0

    def line_cycles(self, level: Level) -> float:
        match level:
            case Level.GL:
                return self.dram_line_cycles
            case Level.L3:
                return self.l3_line_cycles
        # L2 hits are pipelined and prefetched; L1 and register traffic is already counted
        # in the port throughputs.
        return L2_LINE_CYCLES if level == Level.L2 else 0.0


RATES = Rates()
L2_LINE_CYCLES = 2.0  # 32 bytes a cycle
FMA_LATENCY = 4  # cycles before an accumulator can be used again
HSUM_CYCLES = 8  # reduce one 8-lane accumulator pair to a scalar and add it to C
SCALAR_FMA_CYCLES = FMA_LATENCY  # a scalar multiply-add chain runs at latency

L3_STREAM_START_CYCLES = 40.0  # as from DRAM (Rates), ~50 cycles of L3 latency
COPY_CYCLES_PER_VECTOR = 1.0  # a load and a store per 32 bytes when the copy vectorizes
COPY_CYCLES_PER_ELEMENT = 1.0  # a copy that changes layout goes element by element
EVEN_ODD_WIDEN_CYCLES = 4.0  # per 16 bf16: one load, a shift, a mask, two stores

LOOP_ITERATION_CYCLES = 1.0  # increment, compare, branch; usually hidden, never free
PARALLEL_DISPATCH_CYCLES = 4000.0  # waking pool threads and joining them (~1-2 µs)
PARALLEL_TASK_CYCLES = 100.0  # handing one task to a thread


@dataclass(frozen=True, slots=True)
class CostModel:
    """The model the search ranks programs by: the host's rates, and the memory a program
    may allocate at each level (the root Spec's budget)."""

    rates: Rates = RATES
    limits: MemoryLimits = AVX2_LIMITS

    @property
    def key(self) -> str:
        """What a solution's cost depends on beyond its Spec (which carries the budget):
        the version of the model and the rates."""
        return f"model {MODEL_VERSION}; {self.rates!r}"

    def cost(
        self,
        spec: Spec,
        action: Action,
        children: Sequence[Spec],
        costs: Sequence[float],
        threads: int,
    ) -> float:
        """The cost of ``spec`` implemented by ``action`` given its children's costs."""
        return action_cost(spec, action, children, costs, threads, self.rates)


def line_cost(t: TensorSpec, rates: Rates = RATES) -> float:
    return t.lines() * rates.line_cycles(t.level) + runs(t) * rates.stream_start_cycles(t.level)


def kernel_cost(kernel: Kernel, spec: Spec, rates: Rates = RATES) -> float:
    match kernel.kind:
        case KernelKind.OUTER_FMA:
            return _outer_fma(spec, rates)
        case KernelKind.DOT:
            return _dot(spec, kernel, rates)
        case KernelKind.DOT_ROWS:
            return _dot_rows(spec, kernel, rates)
        case KernelKind.ZERO_VRF:
            return spec.operands[0].registers / rates.vector_ops_per_cycle
        case KernelKind.ZERO_MEM:
            (c,) = spec.operands
            return _vectors(c) * COPY_CYCLES_PER_VECTOR + line_cost(c, rates)
        case KernelKind.LOAD_VRF | KernelKind.STORE_VRF:
            mem = next(t for t in spec.operands if not t.level.is_register)
            per = _vectors(mem) if isinstance(mem.layout, RowMajor) else _elems(mem)
            return per * COPY_CYCLES_PER_VECTOR + line_cost(mem, rates)
        case KernelKind.COPY:
            src, dst = spec.operands
            moved = _vectors(src) * COPY_CYCLES_PER_VECTOR
            if not is_vector_copy(src, dst):
                moved = _elems(src) * COPY_CYCLES_PER_ELEMENT
            if is_even_odd_widening(src, dst):
                blocks = math.ceil(src.shape[0] * src.shape[1] / EVEN_ODD_BLOCK)
                moved = blocks * EVEN_ODD_WIDEN_CYCLES
            return moved + line_cost(src, rates) + line_cost(dst, rates)
        case KernelKind.SCALAR_FMA:
            return SCALAR_FMA_CYCLES + sum(line_cost(t, rates) for t in spec.operands)
    raise AssertionError(kernel)


def _elems(t: TensorSpec) -> int:
    return t.shape[0] * t.shape[1]


def _vectors(t: TensorSpec) -> int:
    return math.ceil(_elems(t) * t.dtype.size / 32)


def _throughput(
    rates: Rates, fmas: float, loads: float, alu: float, chains_latency: bool = True
) -> float:
    bound = max(
        fmas / rates.fma_per_cycle,
        loads / rates.loads_per_cycle,
        (fmas + alu) / rates.vector_ops_per_cycle,
    )
    return max(bound, FMA_LATENCY) if chains_latency else bound


def _outer_fma(spec: Spec, rates: Rates) -> float:
    a, b, c = spec.operands
    mr, nr = c.shape
    nb = math.ceil(nr / F32_LANES)
    fmas = mr * nb
    alu = (2 * nb if b.dtype.size == 2 else 0) + (mr if a.dtype.size == 2 else 0)
    # Called once per k inside a loop: each accumulator is a dependency chain.
    return _throughput(rates, fmas, mr + nb, alu) + line_cost(a, rates) + line_cost(b, rates)


# Per block of 16 K-elements, what each operand costs the dot kernels besides the FMAs:
# (loads, other vector operations) for B's block, then for one row of A.
_DOT_WORK = {
    DotMode.EVEN_ODD: ((1, 2), (2, 0)),  # split B with a shift and a mask; A already split
    DotMode.SPLIT_BOTH: ((1, 2), (1, 2)),  # both split
    DotMode.WIDEN_B: ((2, 5), (2, 0)),  # B widened in order: zero-extend and shift
    DotMode.F32: ((2, 0), (2, 0)),
}


def _dot(spec: Spec, kernel: Kernel, rates: Rates) -> float:
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
        steps * _throughput(rates, 2 * u, loads * u + prefetches, alu * u)
        + blocks * _throughput(rates, 2, loads, alu)
        + tail * SCALAR_FMA_CYCLES
        + HSUM_CYCLES
    )
    return mr * nr * per_output + line_cost(a, rates) + line_cost(b, rates) + line_cost(c, rates)


def _dot_rows(spec: Spec, kernel: Kernel, rates: Rates) -> float:
    a, b, c = spec.operands
    mr, k, nr = spec.mkn
    assert kernel.mode is not None
    (b_loads, b_alu), (a_loads, a_alu) = _DOT_WORK[kernel.mode]
    prefetches = math.ceil(EVEN_ODD_BLOCK * b.dtype.size / CACHE_LINE)
    blocks, tail = divmod(k, EVEN_ODD_BLOCK)
    per_column = blocks * _throughput(
        rates, 2 * mr, b_loads + mr * a_loads + prefetches, b_alu + mr * a_alu
    ) + mr * (tail * SCALAR_FMA_CYCLES + HSUM_CYCLES)
    return nr * per_column + line_cost(a, rates) + line_cost(b, rates) + line_cost(c, rates)


def restreams(whole: TensorSpec, piece: TensorSpec, tasks: int) -> int:
    """The DRAM streams a loop adds by cutting a tile that is resident but not yet fetched
    (``from_dram``) into ``tasks`` pieces across its runs: K halves of a block of columns
    are read half a column at a time, each a stream of its own, where the Promote that made
    the block resident priced it as read front to back. Pieces along the runs follow each
    other in memory and add none."""
    if not whole.from_dram or piece.shape == whole.shape:
        return 0
    across = 1 if whole.layout == ROW else 0 if whole.layout == COL else None
    if across is None or piece.shape[across] == whole.shape[across]:
        return 0
    return max(0, tasks * runs(piece) - runs(whole))


def loop_cost(trips: int, body: float, remainder: float | None, parallel_threads: int) -> float:
    """``trips`` full-tile iterations of ``body``, then one remainder body if the tile does
    not divide the dimension. A parallel loop runs its tasks on ``parallel_threads``."""
    tasks = trips + (remainder is not None)
    if parallel_threads > 1:
        rounds = math.ceil(tasks / parallel_threads)
        # Conservatively, every round takes as long as its slowest possible task.
        per_round = max(body, remainder or 0.0)
        return (
            rounds * (per_round + LOOP_ITERATION_CYCLES)
            + PARALLEL_DISPATCH_CYCLES
            + tasks * PARALLEL_TASK_CYCLES
        )
    total = trips * (body + LOOP_ITERATION_CYCLES)
    return total + (remainder or 0.0)


def action_cost(
    spec: Spec,
    action: Action,
    children: Sequence[Spec],
    costs: Sequence[float],
    threads: int,
    rates: Rates = RATES,
) -> float:
    """The cost of ``spec`` implemented by ``action`` given its children's costs."""
    match action:
        case Kernel():
            return kernel_cost(action, spec, rates)
        case Tile():
            loop = action.loop(spec)
            remainder = costs[1] if loop.remainder else None
            tasks = loop.tasks
            streams = sum(
                restreams(whole, piece, tasks)
                for whole, piece in zip(spec.operands, children[0].operands, strict=True)
            )
            body = loop_cost(loop.trips, costs[0], remainder, threads if loop.parallel else 1)
            return body + streams * rates.dram_stream_start_cycles
        case Promote():
            (child,) = children
            moved = [t for t, u in zip(spec.operands, child.operands, strict=True) if t != u]
            from_dram = sum(line_cost(t, rates) for t in moved if t.level == Level.GL)
            from_cache = sum(line_cost(t, rates) for t in moved if t.level != Level.GL)
            return from_dram + max(from_cache, costs[0])
    return sum(costs)
