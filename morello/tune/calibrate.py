"""``morello calibrate``: measures what the synthesizer tunes to on this host.

The cost model's ``Rates``, what one core does per cycle: its FMA, load and vector port
throughputs, from probes that keep one kind of port busy (loads as they feed FMAs, as in
the kernels); the cycles a cache line takes to stream from DRAM and from the last-level
cache, from reads of a buffer four times the L3 and of a 4 MiB one; and what starting a
stream from DRAM costs, from the big buffer read in 2 KiB runs, every other one first.
Every probe is timed against a chain of dependent register adds, which take one cycle on
every x86 core, so turbo and the VM's nominal clock do not matter.

And how far ahead the dot kernel prefetches the weights it streams from DRAM: the
bandwidth-latency product of the host's memory, which differs between machines by an
order of magnitude, so it is measured with the seed kernel rendered at each candidate
distance, timed on weights too large for any cache.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from morello.core.cost import CostModel
from morello.core.dtypes import Dtype
from morello.core.layout import CACHE_LINE, COL, ROW
from morello.core.memo import Memo
from morello.core.rates import STREAM_RUN_BYTES, Rates
from morello.core.search import synthesize
from morello.core.spec import Spec, matmul_spec
from morello.tune.harness import (
    BANDWIDTH_BYTES,
    READ_PATTERNS,
    NativeBench,
    Probe,
    build_library,
    measure,
)
from morello.tune.host import DEFAULT, HostProfile
from morello.tune.machine import CPU_CACHES, cache_bytes
from morello.tune.rerank import Candidate, measure_candidates

PREFETCH_CANDIDATES = (0, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# The seed, one token of decode: 1x2048x16384, bf16 vector and weights (N rows of K).
PROBE = (1, 2048, 16384)
# A new measurement within this of the saved one keeps the saved value: noise alone must
# not move the model, which would start a new, empty memo table.
KEEP_WITHIN = 0.10
KEEP_TIME = 0.02  # the saved prefetch distance stays if it times within this of the fastest
STREAMS_PATTERN = READ_PATTERNS.index((4, 32768, 0))  # four long runs side by side

# --- The rates: probes of the core, each against the clock.


@dataclass(frozen=True, slots=True)
class RateMeasurement:
    name: str  # a field of Rates
    measured: float  # per cycle, or cycles a line: this calibration's
    fastest: float  # the fastest of this and every earlier calibration's measurements
    used: float  # what the profile keeps: on a coarse grid, or the saved value if close


def measure_rates(*, log: Callable[[str], None] = lambda line: None) -> tuple[Rates, float]:
    """Times the probes of ``morello.tune.harness`` round by round (1 thread); returns the rates
    they measure, unrounded, and the clock in Hz."""
    with tempfile.TemporaryDirectory(prefix="morello-calibrate-") as tmp:
        log("compiling the probes")
        native = NativeBench(build_library([], Path(tmp)))
        size = BANDWIDTH_BYTES >> 20
        log(f"timing the core's ports; reads of {size} MiB, whole and in runs, and of 4 MiB")
        runs = [lambda reps, p=p: native.probe(p, reps) for p in Probe]
        runs.append(lambda reps: native.read(1, reps, STREAMS_PATTERN))
        runs.append(lambda reps: native.read(1, reps))
        runs.append(lambda reps: native.runs(STREAM_RUN_BYTES, reps))
        timings = measure(runs, rounds=5, min_time_s=0.1)
    # The fastest round, not the median: a neighbour on a shared machine only ever slows a
    # probe down, and what the model needs is what the core can do.
    per_second = [p.per_unit / t.best for p, t in zip(Probe, timings, strict=False)]
    hz = per_second[Probe.CLOCK.value]
    per_cycle = {p: rate / hz for p, rate in zip(Probe, per_second, strict=True)}
    streams, contiguous, in_runs = timings[-3].best, timings[-2].best, timings[-1].best
    dram_bytes_per_cycle = BANDWIDTH_BYTES / contiguous / hz
    # What reading in runs costs beyond reading the same bytes front to back, per run;
    # at least a cycle, so that a host that hides it entirely still prices it above zero.
    stream_start = max(1.0, (in_runs - contiguous) * hz / (BANDWIDTH_BYTES // STREAM_RUN_BYTES))
    measured = Rates(
        fma_per_cycle=per_cycle[Probe.FMA],
        loads_per_cycle=per_cycle[Probe.LOADS],
        vector_ops_per_cycle=per_cycle[Probe.VECTOR_MIX],
        dram_line_cycles=CACHE_LINE / dram_bytes_per_cycle,
        l3_line_cycles=CACHE_LINE / per_cycle[Probe.CACHED_READ],
        dram_stream_start_cycles=stream_start,
        dram_streams_line_cycles=CACHE_LINE * streams * hz / BANDWIDTH_BYTES,
    )
    return measured, hz


def settle_rates(
    measured: Rates, previous: HostProfile
) -> tuple[Rates, Rates, list[RateMeasurement]]:
    """The rates a profile keeps after a calibration measured ``measured``: the fastest
    measurement so far of each (a neighbour on a shared VM only ever slows a probe down,
    and its load comes and goes over minutes, so a calibration in a busy hour must not
    make the model worse), settled on the grid. Returns them, the new fastest
    measurements and a row per rate."""
    fastest = measured if previous.fastest is None else faster(measured, previous.fastest)
    rows = [
        RateMeasurement(
            f.name,
            getattr(measured, f.name),
            getattr(fastest, f.name),
            _settle(getattr(fastest, f.name), getattr(previous.rates, f.name)),
        )
        for f in fields(Rates)
    ]
    return Rates(**{r.name: r.used for r in rows}), fastest, rows


def faster(a: Rates, b: Rates) -> Rates:
    """Each rate at the faster of the two: more per cycle, fewer cycles per line or stream
    (the fields named ``*_per_cycle`` count work, the others cycles)."""
    best = {
        f.name: (max if f.name.endswith("_per_cycle") else min)(
            getattr(a, f.name), getattr(b, f.name)
        )
        for f in fields(Rates)
    }
    return Rates(**best)


def _settle(measured: float, previous: float) -> float:
    """The saved value if the measurement is within KEEP_WITHIN of it, else the nearest
    point of a grid four to an octave (1, 1.25, 1.5, 1.75 times a power of two)."""
    if abs(measured - previous) <= KEEP_WITHIN * previous:
        return previous
    octave = 2.0 ** math.floor(math.log2(measured))
    return min((octave * q / 4 for q in range(4, 9)), key=lambda g: abs(g - measured))


def l2_budget(cpu: Path | None = None) -> int:
    """Half the core's L2 as the kernel reports it, but never more than the default: a
    smaller L2 shrinks what a program may plan to keep there, a larger one does not grow
    it: the streams around a resident tile evict it sooner than its size says, so a larger
    budget lets the search plan on whole operands staying in L2 that do not
    (docs/results.md)."""
    size = cache_bytes(2, cpu or CPU_CACHES)
    return min(size // 2, DEFAULT.l2_budget) if size else DEFAULT.l2_budget


# --- The prefetch distance: the seed kernel at each candidate, timed.


def probe_spec() -> Spec:
    """The Spec of the kernel the prefetch distance is timed with."""
    return matmul_spec(*PROBE, (Dtype.BF16, Dtype.BF16, Dtype.F32), (ROW, COL, ROW))


@dataclass(frozen=True, slots=True)
class Trial:
    prefetch_bytes: int
    seconds: float  # median per call
    gb_per_s: float  # the weights read per second


def calibrate_prefetch(
    memo: Memo,
    candidates: Sequence[int] = PREFETCH_CANDIDATES,
    *,
    log: Callable[[str], None] = lambda line: None,
) -> list[Trial]:
    """Times the seed kernel at each prefetch distance (1 thread, cold weights, every
    candidate checked against the exact product); the fastest median is the first."""
    log("synthesizing the probe kernel, matmul {}x{}x{} bf16,bf16,f32 row,col,row".format(*PROBE))
    program, _ = synthesize(probe_spec(), memo=memo)
    trials = measure_candidates(
        program.spec,
        [Candidate(program, f"prefetch {d} B", d) for d in candidates],
        threads=1,
        log=log,
    )
    weights = program.spec.operands[1].bytes
    found = [
        Trial(t.candidate.prefetch_bytes, t.seconds, weights / t.seconds / 1e9) for t in trials
    ]
    return sorted(found, key=lambda t: t.seconds)


@dataclass(frozen=True, slots=True)
class Calibration:
    profile: HostProfile
    rates: list[RateMeasurement]
    clock_hz: float
    trials: list[Trial]


def calibrate(
    open_memo: Callable[[CostModel], Memo],
    previous: HostProfile = DEFAULT,
    *,
    log: Callable[[str], None] = lambda line: None,
) -> Calibration:
    """Measures the rates, then the prefetch distance with the seed kernel found under
    them (in the memo table ``open_memo`` gives for them). What ``previous`` measured
    counts too (``settle_rates``); pass DEFAULT to start afresh."""
    measured, hz = measure_rates(log=log)
    rates, fastest, rows = settle_rates(measured, previous)
    l2 = l2_budget()
    memo = open_memo(replace(previous, rates=rates, l2_budget=l2).model)
    try:
        trials = calibrate_prefetch(memo, log=log)
    finally:
        memo.close()
    best = trials[0]
    kept = next((t for t in trials if t.prefetch_bytes == previous.prefetch_bytes), None)
    if previous != DEFAULT and kept is not None and kept.seconds <= best.seconds * (1 + KEEP_TIME):
        best = kept  # as with the rates: noise alone does not move the profile
    source = (
        f"morello calibrate: {hz / 1e9:.2f} GHz, seed kernel at {best.gb_per_s:.1f} GB/s, 1 thread"
    )
    profile = HostProfile(best.prefetch_bytes, source, rates, l2, fastest)
    return Calibration(profile, rows, hz, trials)
