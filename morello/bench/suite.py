"""``morello bench``: the suite, timed side by side with every peer and the machine's limits.

Each thread count runs in its own process, pinned to that many cores and with every peer's
runtime told the same count. Within it, workload by workload, our kernel, each peer and the
two limit probes (streaming read, FMA peak) are timed round by round, interleaved; the
limits are the medians over all workloads' rounds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morello.bench.models import decode_shapes
from morello.bench.peers import (
    PEERS,
    UNCAPPED,
    Contender,
    Skipped,
    peer_environment,
)
from morello.bench.report import (
    SuiteResult,
    SystemResult,
    ThreadResult,
    WorkloadResult,
    threads_label,
)
from morello.core.dtypes import Dtype
from morello.core.layout import COL, ROW
from morello.core.memo import Memo
from morello.core.search import synthesize
from morello.core.spec import matmul_problem, matmul_spec
from morello.emit.codegen import render_header
from morello.errors import SpecError
from morello.store.db import MemoDB, format_stats
from morello.tune import rerank
from morello.tune.accuracy import accuracy
from morello.tune.harness import (
    BANDWIDTH_BYTES,
    BenchKernel,
    NativeBench,
    aligned_empty,
    build_library,
    log,
    measure,
    read_pattern_label,
)
from morello.tune.host import DEFAULT, HostProfile
from morello.tune.inputs import Inputs, Problem, error_bound, max_error


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    problem: Problem
    # (threads, share of the machine's limit) the bars ask ours to reach
    limit_bars: tuple[tuple[int, float], ...] = ()

    @property
    def memory_bound(self) -> bool:
        """Judged against read bandwidth (weights streamed once per call), else FMA peak."""
        return self.problem.cold

    @property
    def bytes(self) -> int:
        p = self.problem
        return p.m * p.k * p.a_dtype.size + p.k * p.n * p.b_dtype.size + p.m * p.n * 4

    @property
    def flops(self) -> int:
        p = self.problem
        return 2 * p.m * p.k * p.n


def _decode(name: str, m: int, k: int, n: int, a: Dtype, bars=()) -> Workload:
    return Workload(name, Problem(m, k, n, a, Dtype.BF16, b_col=True, cold=True), bars)


def _f32(m: int, k: int, n: int, bars=()) -> Workload:
    problem = Problem(m, k, n, Dtype.F32, Dtype.F32, False, False)
    return Workload(f"f32 {m}x{k}x{n}", problem, bars)


def _square(n: int, bars=()) -> Workload:
    return _f32(n, n, n, bars)


BF, F = Dtype.BF16, Dtype.F32
F32_1024 = _square(1024, bars=((1, 0.90),))  # in both suites: one workload, one bar
STANDARD = (
    _decode("seed 1x2048x16384 bf16·bf16", 1, 2048, 16384, BF, bars=((1, 0.90), (2, 0.90))),
    _decode("gemma 2048→16384 f32·bf16", 1, 2048, 16384, F),
    _decode("gemma 16384→2048 f32·bf16", 1, 16384, 2048, F),
    _decode("gemma 2048→2048 f32·bf16", 1, 2048, 2048, F),
    _decode("batched 4x2048x2048 bf16·bf16", 4, 2048, 2048, BF),
    _square(256),
    _square(512),
    F32_1024,
)
DECODE_BARS = ((1, 0.90), (2, 0.85))  # share of read bandwidth, per thread count
DECODE_GEOMEAN_BAR = 0.93
# Every decode MatVec of the open models in morello/bench/models.py, with the vector in
# f32 (as an engine keeps activations) and in bf16, against bf16 weights.
DECODE = tuple(
    _decode(f"{shape.name} {a.value}·bf16", 1, shape.k, shape.n, a, DECODE_BARS)
    for shape in decode_shapes()
    for a in (F, BF)
)
# f32 matmuls as a prefill or a training step has them: squares, and shapes off powers of
# two (320 tokens through a 640→2560 projection). Judged against the FMA peak.
MATMUL = (
    _square(512),
    _square(768),
    F32_1024,
    _square(2048),
    _f32(320, 640, 2560),
)
SUITES = {"standard": STANDARD, "decode": DECODE, "matmul": MATMUL}
THREADS = (1, 2)


@dataclass(frozen=True, slots=True)
class Job:
    workload: Workload
    kernel: int  # index into the library's kernels
    predicted_cycles: float  # the cost model's price of the kernel's program
    note: str = ""  # how the kernel was chosen, if not by the model alone


@dataclass(frozen=True, slots=True)
class Protocol:
    rounds: int
    min_time_s: float
    peers: tuple[str, ...]
    settle_s: float = 0.0
    peer_isa: str = "native"  # see peer_environment; "avx2" caps the FMA probe too


def synthesize_kernels(
    workloads: tuple[Workload, ...],
    threads: tuple[int, ...],
    memo: Memo,
    measure: int = 1,
    profile: HostProfile = DEFAULT,
) -> tuple[list[BenchKernel], dict[int, list[Job]], list[list[tuple[float, float]]]]:
    """One kernel per workload and thread count; with ``measure`` > 1, the fastest of the
    model's optimum and its cheapest neighbours, timed here (see ``rerank``), and for each
    the (predicted, measured) seconds of every candidate timed."""
    kernels: list[BenchKernel] = []
    jobs: dict[int, list[Job]] = {t: [] for t in threads}
    candidates: list[list[tuple[float, float]]] = []
    for t in threads:
        for w in workloads:
            p = w.problem
            layouts = (ROW, COL if p.b_col else ROW, ROW)
            dtypes = (p.a_dtype, p.b_dtype, F)
            spec = matmul_spec(
                p.m, p.k, p.n, dtypes, layouts, threads=t, limits=profile.limits, b_from_dram=p.cold
            )
            program, stats = synthesize(spec, threads=t, memo=memo)
            log(
                f"  {w.name}, {threads_label(t)}: "
                f"{stats.specs_solved:,} Specs solved in {stats.seconds:.1f} s"
            )
            note = ""
            if measure > 1:
                ranking = rerank.rank(
                    program.spec,
                    t,
                    memo,
                    measure,
                    profile.prefetch_bytes,
                    lambda line: log(f"    {line}"),
                )
                candidates.append([(r.predicted_s, r.seconds) for r in ranking])
                chosen = ranking[0]
                optimum = next(r for r in ranking if not r.candidate.change)
                note = f"fastest of {len(ranking)} measured candidates"
                log(
                    f"    chose {chosen.candidate.change or 'the optimum'}: "
                    f"{optimum.seconds / chosen.seconds:.3f}x the model's optimum"
                )
                program = chosen.candidate.program
            name = f"bench_kernel_{len(kernels)}"
            jobs[t].append(Job(w, len(kernels), program.cost, note))
            header = render_header(program, name, threads=t, prefetch_bytes=profile.prefetch_bytes)
            kernels.append(BenchKernel(w.name, header, name, p.a_dtype, p.b_dtype, F))
    return kernels, jobs, candidates


def _worker_init(threads: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cores[:threads])


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """os.environ with `values` while the block runs: a worker spawned in it starts with them,
    before any import (OpenBLAS reads its core type when numpy loads it)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_thread_count(
    threads: int, library: Path, jobs: list[Job], protocol: Protocol
) -> ThreadResult:
    """One thread count, in a worker process set up by ``_worker_init``."""
    native = NativeBench(library, max_fma_lanes=8 if protocol.peer_isa == "avx2" else 16)
    pattern = native.fastest_read(threads)
    log(f"[{threads_label(threads)}] read probe: {read_pattern_label(pattern)} reads fastest")
    probes = [
        lambda reps: native.read(threads, reps, pattern),
        lambda reps: native.fma(threads, reps),
    ]
    hz = native.clock_hz()
    read_samples: list[float] = []
    fma_samples: list[float] = []
    results = []
    for job in jobs:
        w = job.workload
        log(f"[{threads_label(threads)}] {w.name}: preparing inputs")
        inputs = Inputs(w.problem, seed=job.kernel)
        a, b = inputs.native()
        c = aligned_empty((w.problem.m, w.problem.n), np.float32)
        ours = native.kernel(job.kernel, a, b, c)
        contenders = [Contender("morello", job.note, ours, lambda c=c: c, error_bound(w.problem.k))]
        skipped: list[tuple[str, str]] = []
        for name in protocol.peers:
            if protocol.peer_isa == "avx2" and name in UNCAPPED:
                skipped.append((name, f"cannot be kept to AVX2: {UNCAPPED[name]}"))
                continue
            try:
                contenders += PEERS[name](native, w.problem, inputs, threads)
            except Skipped as exc:
                skipped.append((name, str(exc)))
            except Exception as exc:  # a broken peer must not end the whole run
                skipped.append((name, f"failed to set up: {type(exc).__name__}: {exc}"))
        names = ", ".join(c.system for c in contenders)
        log(f"[{threads_label(threads)}] {w.name}: timing {names}")
        timings = measure(
            [c.run for c in contenders] + probes,
            rounds=protocol.rounds,
            min_time_s=protocol.min_time_s,
            settle_s=protocol.settle_s,
        )
        read_samples += timings[-2].samples
        fma_samples += timings[-1].samples
        reference, scale = inputs.reference()
        systems = []
        for contender, timing in zip(contenders, timings, strict=False):
            error = max_error(contender.output(), reference, scale)
            systems.append(
                SystemResult(
                    contender.system,
                    contender.note,
                    timing.median,
                    timing.best,
                    timing.reps,
                    len(timing.samples),
                    error,
                    error <= contender.tolerance,
                )
            )
        results.append(
            WorkloadResult(
                w.name,
                w.memory_bound,
                w.bytes,
                w.flops,
                tuple(systems),
                tuple(skipped),
                dict(w.limit_bars).get(threads),
                predicted_s=job.predicted_cycles / hz,
            )
        )
        del inputs, a, b
    return ThreadResult(
        threads,
        read_gbps=BANDWIDTH_BYTES / statistics.median(read_samples) / 1e9,
        fma_gflops=native.fma_flops_per_unit * threads / statistics.median(fma_samples) / 1e9,
        fma_isa=native.fma_isa,
        workloads=tuple(results),
        read_pattern=read_pattern_label(pattern),
        clock_ghz=hz / 1e9,
    )


def run_suite(
    workdir: Path,
    memo: Memo,
    out: Path,
    *,
    quick: bool = False,
    peers: tuple[str, ...] = tuple(PEERS),
    threads: tuple[int, ...] = THREADS,
    only: tuple[str, ...] = (),
    measure: int = 1,
    peer_isa: str = "native",
    profile: HostProfile = DEFAULT,
    suite: str = "standard",
) -> int:
    from morello.bench.report import check_bars, format_report, plot, versions, write_json

    if suite not in SUITES:
        raise SpecError(f"--suite {suite!r}: unknown suite (known: {', '.join(SUITES)})")
    workloads = tuple(w for w in SUITES[suite] if not only or any(o in w.name for o in only))
    if not workloads:
        raise SpecError(f"no workload matches {', '.join(only)}")
    cores = len(os.sched_getaffinity(0))
    if max(threads) > cores:
        raise SpecError(f"{max(threads)} threads asked for, but this process has {cores} cores")
    log(f"dot kernels prefetch {profile.prefetch_bytes} B ahead ({profile.source})")
    log("synthesizing:")
    kernels, jobs, candidates = synthesize_kernels(workloads, threads, memo, measure, profile)
    log("compiling the benchmark library")
    library = build_library(kernels, workdir)
    # OpenBLAS's threads spin ~2^28 cycles (about 0.1 s) after a call: the pause outlasts it.
    protocol = Protocol(
        rounds=5 if quick else 11,
        min_time_s=0.1 if quick else 0.25,
        peers=peers,
        settle_s=0.15,
        peer_isa=peer_isa,
    )
    started = time.time()
    per_thread = []
    context = multiprocessing.get_context("spawn")
    for t in threads:
        with (
            _environment(peer_environment(t, peer_isa)),
            concurrent.futures.ProcessPoolExecutor(
                1, mp_context=context, initializer=_worker_init, initargs=(t,)
            ) as pool,
        ):
            per_thread.append(pool.submit(run_thread_count, t, library, jobs[t], protocol).result())
    result = SuiteResult(
        started=started,
        seconds=time.time() - started,
        rounds=protocol.rounds,
        min_time_s=protocol.min_time_s,
        versions={
            **versions(peers),
            "dot prefetch": f"{profile.prefetch_bytes} B",
            "cost model": f"{profile.rates}, L2 budget {profile.l2_budget >> 10} KiB",
        },
        threads=tuple(per_thread),
        peer_isa=peer_isa,
        name=suite,
        geomean_bar=DECODE_GEOMEAN_BAR if suite == "decode" else None,
        neighbours=str(accuracy(candidates)) if candidates else "",
    )
    print(format_report(result))
    print()
    bars = check_bars(result)
    for line in bars:
        print(line)
    out.mkdir(parents=True, exist_ok=True)
    write_json(result, out / "bench.json")
    written = [out / "bench.json"]
    if plot(result, out / "bench.png"):
        written.append(out / "bench.png")
    print(f"\nwrote {', '.join(map(str, written))}")
    return 0


# --- Synthesis speed: how long the search takes with an empty and with a full memo table.


@dataclass(frozen=True, slots=True)
class SynthesisCase:
    label: str
    shape: str
    dtypes: str
    layouts: str
    threads: int
    cold_runs: int  # repeated only where a run is short enough to repeat
    warm_bar_s: float = 1.0  # the bar for a warm command


SYNTHESIS_SUITE = (
    SynthesisCase(
        "seed 1x2048x16384 bf16, B col", "1x2048x16384", "bf16,bf16,f32", "row,col,row", 1, 3, 0.5
    ),
    SynthesisCase("f32 768x768x768", "768x768x768", "f32,f32,f32", "row,row,row", 1, 1),
    SynthesisCase(
        "f32 320x640x2560, 2 threads", "320x640x2560", "f32,f32,f32", "row,row,row", 2, 1
    ),
    SynthesisCase(
        "f32 1024x1024x1024, 2 threads", "1024x1024x1024", "f32,f32,f32", "row,row,row", 2, 1
    ),
    # A prefill of 256 tokens through a gate projection of a 7-8B model.
    SynthesisCase(
        "prefill 256x4096x11008 bf16, B col", "256x4096x11008", "bf16,bf16,f32", "row,col,row", 1, 1
    ),
)
WARM_RUNS = 5
COLD_BAR_S = 60.0  # any matmul up to 4096 a side, cold, on a 2-core machine
COMPRESSION_BAR = 20.0  # bytes on disk against one row per Spec, on a precomputed table


def run_synthesis_suite(
    precomputed: Path | None, profile: HostProfile = DEFAULT, only: tuple[str, ...] = ()
) -> int:
    """Cold: a new, empty file. Warm: the same file in a new process, the whole command
    timed (start-up, imports, lookups, code generation). Medians over repeated runs.
    ``profile`` must be the one the ``morello synth`` commands timed here load. ``only``:
    the cases whose label contains one of these."""
    cases = [c for c in SYNTHESIS_SUITE if not only or any(o in c.label for o in only)]
    if not cases:
        raise SpecError(f"--workload {', '.join(only)}: no synthesis case matches")
    rows = []
    with tempfile.TemporaryDirectory(prefix="morello-synth-bench-") as tmp:
        for case in cases:
            spec = matmul_problem(
                case.shape, case.dtypes, case.layouts, threads=case.threads, limits=profile.limits
            )
            cold = []
            for run in range(case.cold_runs):
                path = Path(tmp) / f"{case.shape}-{case.threads}-{run}.sqlite3"
                with MemoDB(path, profile.model) as memo:
                    print(
                        f"  {case.label}: cold run {run + 1}/{case.cold_runs} ...", file=sys.stderr
                    )
                    _, stats = synthesize(spec, threads=case.threads, memo=memo)
                cold.append(stats)
            command = [sys.executable, "-m", "morello", "synth", "matmul", case.shape]
            command += ["--dtypes", case.dtypes, "--layouts", case.layouts]
            command += ["--threads", str(case.threads), "--db", str(path)]
            warm = []
            for _ in range(WARM_RUNS):
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                warm.append(time.perf_counter() - start)
            seconds = statistics.median(s.seconds for s in cold)
            rows.append((case, cold[0].specs_solved, seconds, statistics.median(warm)))
    print(f"{'kernel':36} {'Specs':>10} {'cold':>9} {'Specs/s':>9} {'warm (command)':>15}")
    for case, specs, cold_s, warm_s in rows:
        print(
            f"{case.label:36} {specs:>10,} {cold_s:>8.1f}s {specs / cold_s:>9,.0f} {warm_s:>14.2f}s"
        )
    print()
    # The bars: every case cold within a minute, and warm within its own bar.
    bars = [(f"cold {case.label}", cold_s, COLD_BAR_S) for case, _, cold_s, _ in rows]
    bars += [(f"warm {case.label}", warm_s, case.warm_bar_s) for case, _, _, warm_s in rows]
    for what, value, bar in bars:
        print(f"bar {'met' if value <= bar else 'MISSED':6}  {what}: {value:.2f} s (bar {bar:g} s)")
    if precomputed is not None:
        with MemoDB(precomputed, profile.model) as memo:
            stats = memo.stats()
        ratio = stats.row_per_spec_bytes / max(stats.file_bytes, 1)
        print(format_stats(stats, 0))
        verdict = "met" if ratio >= COMPRESSION_BAR else "MISSED"
        print(
            f"bar {verdict:6}  compression: {ratio:.1f}x fewer bytes on disk than one row per "
            f"Spec (bar {COMPRESSION_BAR:g}x)"
        )
    return 0
