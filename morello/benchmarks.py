"""``morello bench``: the suite of synthesized kernels, timed against this machine's limits."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from morello.api import matmul_problem, synthesize_spec
from morello.bench import BenchKernel, format_report, limit_ratio, run_benchmarks
from morello.dtypes import Dtype
from morello.memo import InMemoryMemo


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


def _kernel(w: Workload, index: int, memo: InMemoryMemo) -> BenchKernel:
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


def run_suite(workdir: Path, *, quick: bool = False) -> int:
    print("synthesizing:", file=sys.stderr)
    memo = InMemoryMemo()
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
