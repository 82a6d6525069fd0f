"""What a core does per cycle and what touching memory costs: the prices every cost in the
model is built from.

``Rates`` are the host's, measured by ``morello calibrate`` (morello/tune/calibrate.py);
the other constants are properties of the code the kernels compile to. The kernels
(morello/core/kernels.py) price their work with these; the cost model (cost.py) prices
loops, copies and residency with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from morello.core.layout import CACHE_LINE
from morello.core.spec import TensorSpec, runs
from morello.core.target import Level


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
    # The same price when several long runs are read side by side (a kernel reading a few
    # weight columns at once): some hosts' prefetchers sustain more over several streams.
    dram_streams_line_cycles: float = 8.0

    def __str__(self) -> str:
        return (
            f"{self.fma_per_cycle:g} FMA, {self.loads_per_cycle:g} loads, "
            f"{self.vector_ops_per_cycle:g} vector ops a cycle; a line in "
            f"{self.dram_line_cycles:g} cycles from DRAM, {self.l3_line_cycles:g} from L3; "
            f"{self.dram_stream_start_cycles:g} to start a stream from DRAM, "
            f"{self.dram_streams_line_cycles:g} a line over several long streams"
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

# A piece of an operand this small, re-read while other operands stream through L1, is
# still there when read again: a quarter of a 32 KiB L1d.
L1_KEEPS_BYTES = 8 * 1024
# Runs at least this long, read side by side, stream faster than one (concurrent_line_cost):
# shorter ones end before the prefetchers ramp up (measured with morello/tune/harness.py's
# read patterns: 4 KiB runs no faster than one stream, 16 KiB and 32 KiB up to a third).
LONG_RUN_BYTES = 16 * 1024
L3_STREAM_START_CYCLES = 40.0  # as from DRAM (Rates), ~50 cycles of L3 latency
COPY_CYCLES_PER_VECTOR = 1.0  # a load and a store per 32 bytes when the copy vectorizes
COPY_CYCLES_PER_ELEMENT = 1.0  # a copy that changes layout goes element by element
EVEN_ODD_WIDEN_CYCLES = 4.0  # per 16 bf16: one load, a shift, a mask, two stores


# The runs `morello calibrate` measures the stream start on (morello/tune/calibrate.py).
STREAM_RUN_BYTES = 2048  # half a column of 2048 bf16 weights


def line_cost(t: TensorSpec, rates: Rates = RATES) -> float:
    """Fetching ``t`` from its level: its lines, and a stream start per run. A run shorter
    than the measured ones pays its start in proportion: its lines are fetched together
    with the other runs' (the core keeps many misses in flight, and stores drain in the
    background), not each after a full latency. Without that, a strided tile of 64-byte
    rows of a matrix in DRAM cost twenty times its lines or more, and square matmuls whose
    output does not fit the cache chose narrow register blocks to have fewer rows."""
    lines = t.lines()
    starts = min(runs(t), lines * CACHE_LINE / STREAM_RUN_BYTES)
    return lines * rates.line_cycles(t.level) + starts * rates.stream_start_cycles(t.level)


def reread_cost(t: TensorSpec, times: int, piece_bytes: int, rates: Rates = RATES) -> float:
    """Reading ``t`` ``times`` over, a piece (a row or a column) of ``piece_bytes`` at a
    time. The first read fetches it from its level. A piece read again soon is still in
    L1 if it is small beside the streams flowing through L1, else in L2 at best; L2 feeds
    a core a line every ``L2_LINE_CYCLES`` at most, which a long vector re-read once per
    output makes the bound."""
    if times <= 1:
        return line_cost(t, rates)
    kept = Level.L1 if piece_bytes <= L1_KEEPS_BYTES else max(t.level, Level.L2)
    return line_cost(t, rates) + (times - 1) * t.lines() * rates.line_cycles(kept)


def concurrent_line_cost(
    t: TensorSpec, streams: int, run_bytes: int, rates: Rates = RATES
) -> float:
    """``line_cost`` of a tile read as ``streams`` streams side by side, each through runs
    of ``run_bytes``. Lines from DRAM cost ``dram_streams_line_cycles`` instead when there
    are several streams of runs long enough for the prefetchers to ramp up; a tile already
    made resident (fetched from DRAM under a Promote, which priced its lines as one stream)
    gets the difference back here, where the order it is read in is known."""
    cost = line_cost(t, rates)
    if streams < 2 or run_bytes < LONG_RUN_BYTES or not (t.level == Level.GL or t.from_dram):
        return cost
    return cost - t.lines() * max(0.0, rates.dram_line_cycles - rates.dram_streams_line_cycles)


def elems(t: TensorSpec) -> int:
    return t.shape[0] * t.shape[1]


def vectors(t: TensorSpec) -> int:
    """The 32-byte vectors ``t``'s elements fill."""
    return math.ceil(elems(t) * t.dtype.size / 32)


def throughput(
    rates: Rates, fmas: float, loads: float, alu: float, chains_latency: bool = True
) -> float:
    """Cycles for a loop body's FMAs, loads and other vector operations on the ports, at
    least one FMA latency when its accumulators are dependency chains."""
    bound = max(
        fmas / rates.fma_per_cycle,
        loads / rates.loads_per_cycle,
        (fmas + alu) / rates.vector_ops_per_cycle,
    )
    return max(bound, FMA_LATENCY) if chains_latency else bound
