"""Benchmark harness: times generated kernels next to the machine's read-bandwidth and FMA limits.

All kernels and limit probes go into one C++ program whose rounds run round-robin over every
system, so on a noisy shared VM they all see the same conditions.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from morello.codegen import TEMPLATES
from morello.dtypes import Dtype

CXX_FLAGS = ("-O3", "-std=c++17", "-mavx2", "-mfma", "-mf16c", "-pthread")
BANDWIDTH_BYTES = 512 << 20  # must match kBandwidthBytes in bench_main.cpp.j2
FMA_FLOPS_PER_UNIT = 2 * 8 * 12 * (1 << 16)  # 2 flops x 8 lanes x kFmaChains x kFmaIters


class BenchError(RuntimeError):
    """The benchmark program failed to compile or to run."""


@dataclass(frozen=True, slots=True)
class BenchKernel:
    label: str
    header: str
    function: str
    m: int
    k: int
    n: int
    a_dtype: Dtype
    b_dtype: Dtype
    c_dtype: Dtype
    threads: int

    @property
    def bytes_moved(self) -> int:
        """Bytes of A, B and C, each touched once per call."""
        sizes = (
            (self.m * self.k, self.a_dtype),
            (self.k * self.n, self.b_dtype),
            (self.m * self.n, self.c_dtype),
        )
        return sum(count * dtype.size for count, dtype in sizes)


@dataclass(frozen=True, slots=True)
class BenchResult:
    label: str
    threads: int
    median_s: float
    min_s: float
    repetitions: int  # calls timed in total, over all rounds
    gbytes_per_s: float
    gflops: float


@dataclass(frozen=True, slots=True)
class MachineLimits:
    read_gbps_1t: float
    read_gbps_2t: float
    fma_gflops_1t: float


def _check(kernel: BenchKernel) -> None:
    if not re.fullmatch(r"[A-Za-z_]\w*", kernel.function):
        raise ValueError(f"{kernel.label}: {kernel.function!r} is not a C++ identifier")
    if min(kernel.m, kernel.k, kernel.n, kernel.threads) < 1:
        raise ValueError(f"{kernel.label}: sizes and thread count must be positive")


def render_program(
    kernels: Sequence[BenchKernel],
    *,
    workdir: Path,
    min_time_s: float,
    rounds: int,
    huge_pages: bool = False,
) -> Path:
    """Writes each kernel header and the benchmark source into workdir; returns the source."""
    workdir.mkdir(parents=True, exist_ok=True)
    entries = []
    files: dict[str, str] = {}  # header text -> file; one file each, so #pragma once holds
    for i, kernel in enumerate(kernels):
        _check(kernel)
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
                "a_n": kernel.m * kernel.k,
                "b_n": kernel.k * kernel.n,
                "c_n": kernel.m * kernel.n,
                "a_bf16": str(kernel.a_dtype == Dtype.BF16).lower(),
                "b_bf16": str(kernel.b_dtype == Dtype.BF16).lower(),
                "c_bf16": str(kernel.c_dtype == Dtype.BF16).lower(),
            }
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    source = env.get_template("bench_main.cpp.j2").render(
        kernels=entries, min_time_s=repr(float(min_time_s)), rounds=rounds, huge_pages=huge_pages
    )
    path = workdir / "bench_main.cpp"
    path.write_text(source)
    return path


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _compile(source: Path) -> Path:
    compiler = shutil.which("g++")
    if compiler is None:
        raise BenchError("g++ not found on PATH; it is needed to build the benchmark")
    binary = source.with_suffix("")
    cmd = [compiler, *CXX_FLAGS, "-I", str(source.parent), str(source), "-o", str(binary)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"compiling {source} failed:\n{_tail(proc.stderr)}")
    return binary


def _run(binary: Path, progress: Callable[[str], None] | None) -> dict[str, Any]:
    # stdout goes to a file so a chatty stderr (progress) can never block on a full pipe.
    out_path = binary.with_suffix(".json")
    err_lines: list[str] = []
    with out_path.open("w") as out:
        proc = subprocess.Popen([str(binary)], stdout=out, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            if progress is not None:
                progress(line.rstrip())
        code = proc.wait()
    if code != 0:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        raise BenchError(f"{binary} {how}:\n{_tail(''.join(err_lines))}")
    try:
        return json.loads(out_path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{binary} printed invalid JSON ({exc}); see {out_path}") from exc


def run_benchmarks(
    kernels: Sequence[BenchKernel],
    *,
    workdir: Path,
    min_time_s: float = 0.5,
    progress: Callable[[str], None] | None = None,
    rounds: int = 15,
    huge_pages: bool = False,
) -> tuple[MachineLimits, list[BenchResult]]:
    """Builds and runs one benchmark program over all kernels and the machine-limit probes.

    Each of `rounds` rounds runs every system for about `min_time_s`; a sample is the mean time
    per call within one round. `huge_pages` madvises every buffer (kernels and the bandwidth
    probe alike) for transparent huge pages.
    """
    if rounds < 1 or min_time_s <= 0:
        raise ValueError("rounds and min_time_s must be positive")
    labels = [kernel.label for kernel in kernels]
    if len(set(labels)) != len(labels):
        raise ValueError("kernel labels must be unique")
    source = render_program(
        kernels, workdir=Path(workdir), min_time_s=min_time_s, rounds=rounds, huge_pages=huge_pages
    )
    if progress is not None:
        progress(f"compiling {source}")
    data = _run(_compile(source), progress)
    systems = {system["name"]: system for system in data["systems"]}

    def median(name: str) -> float:
        return statistics.median(systems[name]["samples"])

    limits = MachineLimits(
        read_gbps_1t=BANDWIDTH_BYTES / median("read_1t") / 1e9,
        read_gbps_2t=BANDWIDTH_BYTES / median("read_2t") / 1e9,
        fma_gflops_1t=FMA_FLOPS_PER_UNIT / median("fma_1t") / 1e9,
    )
    results = []
    for i, kernel in enumerate(kernels):
        system = systems[f"kernel_{i}"]
        med = median(f"kernel_{i}")
        results.append(
            BenchResult(
                label=kernel.label,
                threads=kernel.threads,
                median_s=med,
                min_s=min(system["samples"]),
                repetitions=system["reps"] * len(system["samples"]),
                gbytes_per_s=kernel.bytes_moved / med / 1e9,
                gflops=2 * kernel.m * kernel.k * kernel.n / med / 1e9,
            )
        )
    return limits, results


def limit_ratio(limits: MachineLimits, result: BenchResult, memory_bound: bool) -> float:
    """The fraction of the machine's limit a kernel reaches: read bandwidth at its thread
    count when memory-bound, else the single-core FMA peak times its threads."""
    if memory_bound:
        limit = limits.read_gbps_1t if result.threads <= 1 else limits.read_gbps_2t
        return result.gbytes_per_s / limit
    return result.gflops / (limits.fma_gflops_1t * result.threads)


def format_report(
    limits: MachineLimits, results: Sequence[BenchResult], memory_bound: Sequence[bool]
) -> str:
    """An aligned table; ``ratio`` is ``limit_ratio`` of each result."""
    lines = [
        f"read bandwidth: {limits.read_gbps_1t:.1f} GB/s (1 thread), "
        f"{limits.read_gbps_2t:.1f} GB/s (2 threads)",
        f"f32 FMA peak:   {limits.fma_gflops_1t:.1f} GFLOP/s (1 thread)",
    ]
    rows = [["kernel", "median ms", "min ms", "GB/s", "GFLOP/s", "ratio"]]
    for r, memory in zip(results, memory_bound, strict=True):
        rows.append(
            [
                r.label,
                f"{r.median_s * 1e3:.3f}",
                f"{r.min_s * 1e3:.3f}",
                f"{r.gbytes_per_s:.1f}",
                f"{r.gflops:.1f}",
                f"{limit_ratio(limits, r, memory):.0%}",
            ]
        )
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
