"""``morello bench``: the suite of synthesized kernels, timed against this machine's limits."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from morello.api import matmul_problem, synthesize_spec
from morello.bench import BenchKernel, format_report, limit_ratio, run_benchmarks
from morello.db import MemoDB, format_stats
from morello.dtypes import Dtype
from morello.memo import Memo


@dataclass(frozen=True, slots=True)
class Workload:
    label: str
    shape: tuple[int, int, int]
    dtypes: tuple[str, str, str]
    b_col: bool
    threads: int
    bar: float  # the fraction of the machine limit this bar asks for
    memory_bound: bool  # judged against read bandwidth, else against FMA peak


SEED = ((1, 2048, 16384), ("bf16", "bf16", "f32"))
SUITE = (
    Workload(
        "seed 1x2048x16384 bf16, B col, 1 thread",
        *SEED,
        b_col=True,
        threads=1,
        bar=0.80,
        memory_bound=True,
    ),
    Workload(
        "seed 1x2048x16384 bf16, B col, 2 threads",
        *SEED,
        b_col=True,
        threads=2,
        bar=0.80,
        memory_bound=True,
    ),
    Workload(
        "f32 512x512x512, 1 thread",
        (512, 512, 512),
        ("f32", "f32", "f32"),
        b_col=False,
        threads=1,
        bar=0.50,
        memory_bound=False,
    ),
)


def _kernel(w: Workload, index: int, memo: Memo) -> BenchKernel:
    shape = "x".join(map(str, w.shape))
    spec = matmul_problem(
        shape, ",".join(w.dtypes), f"row,{'col' if w.b_col else 'row'},row", threads=w.threads
    )
    result = synthesize_spec(spec, threads=w.threads, memo=memo)
    print(
        f"  {w.label}: predicted {result.program.cost:,.0f}, "
        f"{result.stats.specs_solved:,} Specs in {result.stats.seconds:.1f} s",
        file=sys.stderr,
    )
    name = f"bench_kernel_{index}"
    m, k, n = w.shape
    return BenchKernel(
        w.label, result.to_header(name), name, m, k, n, *map(Dtype.parse, w.dtypes), w.threads
    )


def run_suite(workdir: Path, memo: Memo, *, quick: bool = False) -> int:
    print("synthesizing:", file=sys.stderr)
    kernels = [_kernel(w, i, memo) for i, w in enumerate(SUITE)]
    print("timing (all systems interleaved, round by round):", file=sys.stderr)
    limits, results = run_benchmarks(
        kernels,
        workdir=workdir,
        min_time_s=0.2 if quick else 0.5,
        rounds=7 if quick else 15,
        progress=lambda line: print(f"  {line}", file=sys.stderr),
    )
    memory_bound = [w.memory_bound for w in SUITE]
    print(format_report(limits, results, memory_bound))
    print()
    for w, r in zip(SUITE, results, strict=True):
        ratio = limit_ratio(limits, r, w.memory_bound)
        what = "measured read bandwidth" if w.memory_bound else "measured FMA peak"
        verdict = "met" if ratio >= w.bar else "MISSED"
        print(f"bar {verdict:6}  {w.label}: {ratio:.0%} of {what} (bar {w.bar:.0%})")
    return 0


# --- Synthesis speed: how long the search takes with an empty and with a full memo table.

SYNTHESIS_SUITE = (
    ("seed 1x2048x16384 bf16, B col", "1x2048x16384", "bf16,bf16,f32", "row,col,row", 3),
    ("f32 1024x1024x1024", "1024x1024x1024", "f32,f32,f32", "row,row,row", 1),
)
WARM_RUNS = 5


def run_synthesis_suite(precomputed: Path | None) -> int:
    """Cold: a new, empty file. Warm: the same file in a new process, the whole command
    timed (start-up, imports, lookups, code generation). Medians over repeated runs."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="morello-synth-bench-") as tmp:
        for label, shape, dtypes, layouts, cold_runs in SYNTHESIS_SUITE:
            spec = matmul_problem(shape, dtypes, layouts)
            cold = []
            for run in range(cold_runs):
                path = Path(tmp) / f"{shape}-{run}.sqlite3"
                with MemoDB(path) as memo:
                    print(f"  {label}: cold run {run + 1}/{cold_runs} ...", file=sys.stderr)
                    stats = synthesize_spec(spec, memo=memo).stats
                cold.append(stats)
            command = [sys.executable, "-m", "morello", "synth", "matmul", shape]
            command += ["--dtypes", dtypes, "--layouts", layouts, "--db", str(path)]
            warm = []
            for _ in range(WARM_RUNS):
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                warm.append(time.perf_counter() - start)
            seconds = statistics.median(s.seconds for s in cold)
            rows.append((label, cold[0].specs_solved, seconds, statistics.median(warm)))
    print(f"{'kernel':32} {'Specs':>10} {'cold':>9} {'Specs/s':>9} {'warm (command)':>15}")
    for label, specs, cold_s, warm_s in rows:
        print(f"{label:32} {specs:>10,} {cold_s:>8.2f}s {specs / cold_s:>9,.0f} {warm_s:>14.2f}s")
    print()
    # The bars: the seed (first) cold within a minute, every kernel warm within 1 s.
    bars = [(f"cold {rows[0][0]}", rows[0][2], 60.0)]
    bars += [(f"warm {label}", warm_s, 1.0) for label, _, _, warm_s in rows]
    for what, value, bar in bars:
        print(f"bar {'met' if value <= bar else 'MISSED':6}  {what}: {value:.2f} s (bar {bar:g} s)")
    if precomputed is not None:
        with MemoDB(precomputed) as memo:
            stats = memo.stats()
        ratio = stats.specs / max(stats.regions, 1)
        print(format_stats(stats, 0))
        verdict = "met" if ratio >= 10 else "MISSED"
        print(f"bar {verdict:6}  compression: {ratio:.1f} Specs per region (bar 10)")
    return 0
