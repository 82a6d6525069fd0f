"""Benchmark harness: compiled timing loops, and the protocol that interleaves systems.

The synthesized kernels, BLAS entry points and the probes of the machine's limits are timed
by loops in one shared library (``morello/emit/templates/bench_lib.cpp.j2``) loaded with
ctypes; peers that only exist in Python run their loops in their own compiled runtime
(TorchScript, XLA).
``measure`` then runs every system round by round, so that the slow drifts of a noisy
shared VM hit all of them alike instead of whichever ran last.
"""

from __future__ import annotations

import ctypes
import enum
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from morello.core.dtypes import Dtype
from morello.emit import TEMPLATES
from morello.errors import BuildError
from morello.tune.machine import beyond_l3

CXX_FLAGS = ("-O3", "-std=c++17", "-mavx2", "-mfma", "-mf16c", "-pthread", "-fPIC", "-shared")


BANDWIDTH_BYTES = beyond_l3(512 << 20)  # the streaming read probe's buffer
FMA_FLOPS_PER_LANE = 2 * 12 * (1 << 16)  # per unit: 2 flops x kFmaChains x kFmaIters
ALIGN = 64
# How the read probe may read: (streams read side by side, bytes of each run before the
# next chunk of runs or 0 for the whole share, software prefetch distance in bytes or 0).
# One stream is what a hardware prefetcher streams best on some hosts; several long runs
# side by side (as a kernel reading a few long weight columns at once) read up to a third
# faster on others. The limit our kernels are judged against is the fastest of these.
READ_PATTERNS = (
    (1, 0, 0),
    (2, 32768, 0),
    (4, 32768, 0),
    (4, 16384, 0),
    (4, 0, 512),
    (8, 0, 512),
)


def read_pattern_label(pattern: int) -> str:
    streams, run_bytes, ahead = READ_PATTERNS[pattern]
    if streams == 1:
        label = "1 stream"
    elif run_bytes:
        label = f"{streams} streams of {run_bytes >> 10} KiB runs side by side"
    else:
        label = f"{streams} streams, a part of the buffer each"
    return label + (f", prefetched {ahead} B ahead" if ahead else "")


class Probe(enum.Enum):
    """The throughput probes of the benchmark library, and what one unit of each does."""

    CLOCK = 0  # 16 dependent adds a step: 16 cycles
    LOADS = 1  # 24 32-byte loads from L1 a step, feeding 12 independent FMAs
    VECTOR_MIX = 2  # 6 FMAs, 4 shifts and 4 ands a step, independent
    FMA = 3  # 12 independent FMAs a step
    CACHED_READ = 4  # one pass over a 4 MiB buffer that stays in the last-level cache

    @property
    def per_unit(self) -> int:
        """Cycles, loads, vector operations, FMAs or bytes in one unit."""
        if self is Probe.CACHED_READ:
            return CACHED_READ_BYTES
        per_step = {Probe.CLOCK: 16, Probe.LOADS: 24, Probe.VECTOR_MIX: 14, Probe.FMA: 12}
        return PROBE_STEPS * per_step[self]


PROBE_STEPS = 1 << 16  # steps per unit (kProbeIters, kFmaIters)
CACHED_READ_BYTES = 4 << 20  # kL3ProbeBytes


@dataclass(frozen=True, slots=True)
class BenchKernel:
    """A synthesized kernel to compile into the library."""

    label: str
    header: str
    function: str
    a_dtype: Dtype
    b_dtype: Dtype
    c_dtype: Dtype


def render_library(kernels: Sequence[BenchKernel], workdir: Path) -> Path:
    """Writes each kernel header and the library source into workdir; returns the source."""
    workdir.mkdir(parents=True, exist_ok=True)
    entries = []
    files: dict[str, str] = {}  # header text -> file; one file each, so #pragma once holds
    for i, kernel in enumerate(kernels):
        if not re.fullmatch(r"[A-Za-z_]\w*", kernel.function):
            raise ValueError(f"{kernel.label}: {kernel.function!r} is not a C++ identifier")
        header_file = files.setdefault(kernel.header, f"kernel_{i}_{kernel.function}.hpp")
        (workdir / header_file).write_text(kernel.header)
        entries.append(
            {
                "label": kernel.label.replace("\n", " "),
                "header_file": header_file,
                "function": kernel.function,
                "a_type": kernel.a_dtype.c_type,
                "b_type": kernel.b_dtype.c_type,
                "c_type": kernel.c_dtype.c_type,
            }
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    source = env.get_template("bench_lib.cpp.j2").render(
        kernels=entries, bandwidth_bytes=BANDWIDTH_BYTES, read_patterns=READ_PATTERNS
    )
    path = workdir / "bench_lib.cpp"
    path.write_text(source)
    return path


def build_library(kernels: Sequence[BenchKernel], workdir: Path) -> Path:
    """Compiles the kernels and timing loops into ``workdir/libmorello_bench.so``."""
    source = render_library(kernels, workdir)
    compiler = shutil.which("g++")
    if compiler is None:
        raise BuildError("g++ not found on PATH; it is needed to build the benchmark")
    library = workdir / "libmorello_bench.so"
    cmd = [compiler, *CXX_FLAGS, "-I", str(workdir), str(source), "-o", str(library)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-40:])
        raise BuildError(f"compiling {source} failed:\n{tail}")
    return library


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a cache line."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    offset = -raw.ctypes.data % ALIGN
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


def _pointers(arrays: Sequence[np.ndarray]) -> ctypes.Array:
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError("benchmark inputs must be C-contiguous")
    return (ctypes.c_void_p * len(arrays))(*(a.ctypes.data for a in arrays))


class NativeBench:
    """The compiled timing loops. Each returns the seconds its loop took."""

    def __init__(self, library: Path, max_fma_lanes: int = 16) -> None:
        self._lib = ctypes.CDLL(str(library))
        p, i, long, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
        signatures = {
            "morello_bench_kernels": ([], i),
            "morello_bench_read": ([i, long, i], d),
            "morello_bench_fma": ([i, long, i], d),
            "morello_bench_fma_lanes": ([], i),
            "morello_bench_probe": ([i, long], d),
            "morello_bench_runs": ([long, long], d),
            "morello_bench_kernel": ([i, p, p, p, long, long], d),
            "morello_bench_sgemm": ([p, i, long, long, long, p, p, p, long, long], d),
            "morello_bench_sgemv": ([p, long, long, p, p, p, long, long], d),
        }
        for name, (args, result) in signatures.items():
            fn = getattr(self._lib, name)
            fn.argtypes, fn.restype = args, result
        self.kernels = self._lib.morello_bench_kernels()
        # The FMA probe runs the widest FMA the host has, 8 lanes (AVX2) or 16 (AVX-512),
        # unless capped to emulate an AVX2 machine.
        self.fma_lanes = min(max_fma_lanes, self._lib.morello_bench_fma_lanes())
        self.fma_flops_per_unit = FMA_FLOPS_PER_LANE * self.fma_lanes
        self.fma_isa = "AVX-512" if self.fma_lanes == 16 else "AVX2"

    def read(self, threads: int, passes: int, pattern: int = 0) -> float:
        """Streams BANDWIDTH_BYTES `passes` times over `threads` threads, each reading its
        share in ``READ_PATTERNS[pattern]``."""
        return self._lib.morello_bench_read(threads, passes, pattern)

    def clock_hz(self) -> float:
        """The core's clock, from a chain of dependent adds (one a cycle on every x86 core):
        what the cost model's cycles are worth here and now."""
        (timing,) = measure([lambda reps: self.probe(Probe.CLOCK, reps)], rounds=3, min_time_s=0.02)
        return Probe.CLOCK.per_unit / timing.best

    def fastest_read(self, threads: int, rounds: int = 3) -> int:
        """The read pattern that streams fastest here: the one the read probe times."""
        runs = [lambda reps, p=p: self.read(threads, reps, p) for p in range(len(READ_PATTERNS))]
        timings = measure(runs, rounds=rounds, min_time_s=0.05)
        return min(range(len(timings)), key=lambda p: timings[p].median)

    def fma(self, threads: int, units: int) -> float:
        """fma_flops_per_unit x `units` flops on each of `threads` threads."""
        return self._lib.morello_bench_fma(threads, units, self.fma_lanes)

    def probe(self, probe: Probe, units: int) -> float:
        """Runs ``units`` units of one of the core's throughput probes on one thread."""
        return self._lib.morello_bench_probe(probe.value, units)

    def runs(self, run_bytes: int, passes: int) -> float:
        """Streams BANDWIDTH_BYTES `passes` times on one thread, in runs of ``run_bytes``
        read every other one first, then the ones between."""
        return self._lib.morello_bench_runs(run_bytes, passes)

    def kernel(
        self, index: int, a: Sequence[np.ndarray], b: Sequence[np.ndarray], c: np.ndarray
    ) -> Callable[[int], float]:
        """A timer of kernel `index`, call r reading copy r mod len(a) of the inputs."""
        if not 0 <= index < self.kernels or len(a) != len(b) or not a:
            raise ValueError(f"kernel {index}: bad index or input copies")
        pa, pb, copies = _pointers(a), _pointers(b), len(a)
        return lambda reps: self._lib.morello_bench_kernel(
            index, pa, pb, c.ctypes.data, copies, reps
        )

    def sgemm(
        self,
        address: int,
        b_col: bool,
        mkn: tuple[int, int, int],
        a: Sequence[np.ndarray],
        b: Sequence[np.ndarray],
        c: np.ndarray,
    ) -> Callable[[int], float]:
        pa, pb, copies = _pointers(a), _pointers(b), len(a)
        return lambda reps: self._lib.morello_bench_sgemm(
            address, int(b_col), *mkn, pa, pb, c.ctypes.data, copies, reps
        )

    def sgemv(
        self, address: int, w: Sequence[np.ndarray], x: Sequence[np.ndarray], y: np.ndarray
    ) -> Callable[[int], float]:
        rows, cols = w[0].shape
        pw, px, copies = _pointers(w), _pointers(x), len(w)
        return lambda reps: self._lib.morello_bench_sgemv(
            address, rows, cols, pw, px, y.ctypes.data, copies, reps
        )


# --- The protocol: calibrate each system, then round-robin rounds over all of them.


@dataclass(frozen=True, slots=True)
class Timing:
    samples: tuple[float, ...]  # seconds per unit of work, one per round
    reps: int  # units per round

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)


def calibrate(run: Callable[[int], float], min_time_s: float) -> int:
    """Warms up, then finds a repetition count that makes one round last about min_time_s."""
    run(1)
    reps = 1
    while True:
        elapsed = run(reps)
        if elapsed >= min(0.05, min_time_s) or reps >= 1 << 30:
            return max(1, round(min_time_s * reps / max(elapsed, 1e-9)))
        reps *= 2


def measure(
    runs: Sequence[Callable[[int], float]],
    *,
    rounds: int,
    min_time_s: float,
    settle_s: float = 0.0,
) -> list[Timing]:
    """Times every system `rounds` times, interleaved round by round, pausing `settle_s`
    before each: thread pools (OpenBLAS, OpenMP) spin for a while after their last call,
    and would otherwise take cores from whichever system comes next."""
    if rounds < 1 or min_time_s <= 0:
        raise ValueError("rounds and min_time_s must be positive")
    reps = [calibrate(run, min_time_s) for run in runs]
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, n, out in zip(runs, reps, samples, strict=True):
            time.sleep(settle_s)
            out.append(run(n) / n)
    return [Timing(tuple(s), n) for s, n in zip(samples, reps, strict=True)]


def python_timer(call: Callable[[int], object]) -> Callable[[int], float]:
    """Times a call that runs its own compiled loop of `reps` units and blocks until done."""

    def run(reps: int) -> float:
        start = time.perf_counter()
        call(reps)
        return time.perf_counter() - start

    return run


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
