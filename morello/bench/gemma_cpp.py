"""``morello bench --gemma-cpp WORKDIR``: the peer that matters most, in place.

gemma.cpp's own bf16 MatVec against the same calls routed through our kernels by
``integrations/gemma_cpp``, in the real gemma.cpp (commit 6eeef2e), in one process: the
driver ``integrations/gemma_cpp/bench/matvec_bench.cc`` is compiled against the checkout
the way gemma.cc is (every Highway target, dispatched at run time), at Highway's choice of
target and kept to AVX2, at 1 and 2 threads. WORKDIR holds the checkout in
``WORKDIR/gemma.cpp`` (with the integration's two edits), Highway in
``WORKDIR/deps/highway`` and a configured build in ``WORKDIR/build``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from morello.bench import gemma_head
from morello.bench.gemma_checkout import BAR, INTEGRATION, TARGETS, run_step
from morello.bench.report import threads_label
from morello.errors import BuildError, SpecError
from morello.tune.harness import log

DRIVER = INTEGRATION / "bench" / "matvec_bench.cc"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    k: int
    n: int
    vec: str
    target: str  # the Highway target gemma's code ran as
    threads: int
    routed: bool  # the kernel list had the shape: our kernel ran
    gemma_ms: float
    ours_ms: float
    ratio: float  # gemma's median over ours
    ours_gbps: float
    ours_within: bool  # every output within the f32 dot-product bound
    gemma_within: bool


def _layout(workdir: Path) -> None:
    missing = [
        str(p)
        for p in (
            workdir / "gemma.cpp" / "gemma" / "ops.h",
            workdir / "deps" / "highway" / "hwy" / "highway.h",
            workdir / "build" / "build.ninja",
        )
        if not p.exists()
    ]
    if missing:
        raise SpecError(
            f"--gemma-cpp {workdir}: not a prepared gemma.cpp checkout ({missing[0]} is "
            "missing); it needs today's gemma.cpp in WORKDIR/src/gemma.cpp as "
            "../shared/gemma/head/checkout.sh prepares it, or gemma.cpp at 6eeef2e in "
            "WORKDIR/gemma.cpp with the edits of integrations/gemma_cpp/README.md, Highway in "
            "WORKDIR/deps/highway, and a Ninja build configured in WORKDIR/build"
        )
    if not DRIVER.exists():
        raise SpecError(f"--gemma-cpp needs a source checkout of morello: {DRIVER} is missing")


def build(workdir: Path) -> Path:
    """Builds Highway and the integration's kernels in the checkout's build, then the
    driver against them; returns the driver."""
    _layout(workdir)
    build_dir = workdir / "build"
    log("gemma.cpp: building Highway and the integration's kernels")
    targets = ["ninja", "-C", str(build_dir), "hwy", "morello_gemma"]
    run_step(targets, "building gemma.cpp's targets")
    libraries = []
    for name in ("libmorello_gemma.a", "libhwy.a"):
        found = sorted(build_dir.rglob(name))
        if not found:
            raise BuildError(f"{name} not found under {build_dir} after building")
        libraries.append(str(found[0]))
    binary = build_dir / "morello_matvec_bench"
    log("gemma.cpp: compiling the driver for every Highway target (a minute or two)")
    compiler = shutil.which("g++") or "g++"
    run_step(
        [
            compiler,
            "-O3",
            "-DNDEBUG",
            "-std=c++17",
            f"-I{workdir / 'gemma.cpp'}",
            f"-I{workdir / 'deps' / 'highway'}",
            f"-I{INTEGRATION}",
            f"-I{DRIVER.parent}",  # the driver includes itself once per Highway target
            str(DRIVER),
            *libraries,
            "-lpthread",
            "-o",
            str(binary),
        ],
        "compiling the gemma.cpp driver",
    )
    return binary


def parse(output: str) -> list[Row]:
    rows = []
    for line in output.splitlines():
        if not line.startswith("RESULT "):
            continue
        fields = dict(item.split("=", 1) for item in line.split()[1:])
        rows.append(
            Row(
                name=fields["name"],
                k=int(fields["k"]),
                n=int(fields["n"]),
                vec=fields["vec"],
                target=fields["target"],
                threads=int(fields["threads"]),
                routed=fields["routed"] == "1",
                gemma_ms=float(fields["gemma_ms"]),
                ours_ms=float(fields["ours_ms"]),
                ratio=float(fields["ratio"]),
                ours_gbps=float(fields["ours_gbps"]),
                ours_within=fields["ours_within"] == "1",
                gemma_within=fields["gemma_within"] == "1",
            )
        )
    return rows


def format_rows(rows: list[Row]) -> list[str]:
    header = f"{'kernel':<20} {'K→N':>12} {'vec':>4} {'target':>7} {'threads':>9} "
    header += f"{'gemma ms':>9} {'ours ms':>9} {'ours GB/s':>9} {'gemma/ours':>10}"
    lines = [header]
    for r in rows:
        wrong = "" if r.ours_within else "  WRONG"
        fallback = "" if r.routed else "  (not in the list: gemma's code on both sides)"
        lines.append(
            f"{r.name:<20} {f'{r.k}→{r.n}':>12} {r.vec:>4} {r.target:>7} "
            f"{threads_label(r.threads):>9} {r.gemma_ms:>9.3f} {r.ours_ms:>9.3f} "
            f"{r.ours_gbps:>9.1f} {r.ratio:>9.2f}x{wrong}{fallback}"
        )
    return lines


def check_bars(rows: list[Row]) -> list[str]:
    lines = []
    for r in rows:
        ok = r.routed and r.ours_within and r.ratio >= BAR
        what = f"{r.name} {r.target} {threads_label(r.threads)}: {r.ratio:.2f}x gemma's MatVec"
        lines.append(f"bar {'met' if ok else 'MISSED':6}  {what} (bar {BAR:.2f}x)")
    return lines


def run(workdir: Path, out: Path, threads: tuple[int, ...] = (1, 2), quick: bool = False) -> int:
    """Today's gemma.cpp (WORKDIR/src/gemma.cpp) or 6eeef2e (WORKDIR/gemma.cpp)."""
    if gemma_head.is_head_checkout(workdir):
        return gemma_head.run(workdir, out, threads, quick)
    binary = build(workdir)
    reps = "11" if quick else "31"
    rows: list[Row] = []
    for target in TARGETS:
        for t in threads:
            log(f"gemma.cpp: timing every shape, {target} target, {threads_label(t)}")
            rows += parse(run_step([str(binary), target, str(t), reps], "the gemma.cpp driver"))
    print(
        "gemma.cpp 6eeef2e: its own MatVec against the same calls through our kernels, "
        "one process, interleaved, weights from DRAM; medians"
    )
    print("\n".join(format_rows(rows)))
    print()
    print("\n".join(check_bars(rows)))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gemma_cpp.json"
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0 if all(r.ours_within for r in rows) else 1
