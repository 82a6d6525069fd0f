"""``morello bench --gemma-cpp WORKDIR`` on today's gemma.cpp (3ed403e): its own
``CallMatMul`` with one row of A against the same call through our kernels, in one process.

WORKDIR is laid out as ../shared/gemma/head/checkout.sh lays it out: gemma.cpp and its pinned
dependencies in ``WORKDIR/src``, gemma's MatMul objects built in ``WORKDIR/build``. The
shapes are every decode projection of Gemma 2 2B and 9B and Gemma 3 1B and 4B, read from the
checkout's ``gemma/configs.cc`` by ``integrations/gemma_cpp/kernel_list_from_configs.py``;
their kernels are generated with ``morello generate`` (rows padded as gemma pads weights it
reads), and ``integrations/gemma_cpp/bench/matmul_bench.cc`` is compiled for every Highway
target against the checkout, with the adapter. It runs at Highway's choice of target and
kept to AVX2, at each thread count.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from morello.bench.gemma_checkout import BAR, INTEGRATION, TARGETS, run_step
from morello.bench.report import threads_label
from morello.errors import BuildError, SpecError
from morello.tune.harness import log

DRIVER = INTEGRATION / "bench" / "matmul_bench.cc"
MODELS = ("Gemma2_2B", "Gemma2_9B", "Gemma3_1B", "Gemma3_4B")
# gemma's activations at each site: A and C types (kernel_list_from_configs.py's table).
C_TYPES = {
    "q": "f32",
    "kv": "f32",
    "attn_out": "bf16",
    "gating": "bf16",
    "down": "f32",
    "vocab": "f32",
}
LAYER_ORDER = ("q", "kv", "attn_out", "gating", "gating", "down")  # one decode layer


@dataclass(frozen=True, slots=True)
class Row:
    model: str
    site: str
    k: int
    n: int
    a: str
    c: str
    stride: int
    target: str
    isa: str  # the Highway target gemma's code ran as
    threads: int
    routed: bool  # the kernel list had the shape: our kernel ran
    kernel_threads: int  # the most threads among its listed kernels (the tuner may run fewer)
    gemma_ms: float
    ours_ms: float
    ratio: float  # gemma's median over ours
    ours_gbps: float
    gemma_gbps: float
    ours_within: bool
    gemma_within: bool


def is_head_checkout(workdir: Path) -> bool:
    return (workdir / "src" / "gemma.cpp" / "ops" / "matmul.h").exists()


def _configs_module() -> ModuleType:
    path = INTEGRATION / "kernel_list_from_configs.py"
    spec = importlib.util.spec_from_file_location("kernel_list_from_configs", path)
    if spec is None or spec.loader is None:
        raise SpecError(f"--gemma-cpp needs a source checkout of morello: {path} is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _layout(workdir: Path) -> None:
    needed = (
        workdir / "src" / "gemma.cpp" / "gemma" / "configs.cc",
        workdir / "src" / "highway" / "hwy" / "highway.h",
        workdir / "build" / "CMakeFiles" / "libgemma.dir" / "ops" / "matmul.cc.o",
    )
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise SpecError(
            f"--gemma-cpp {workdir}: not a prepared gemma.cpp checkout ({missing[0]} is "
            "missing); today's gemma.cpp needs WORKDIR/src/gemma.cpp with its dependencies "
            "beside it and gemma's MatMul objects built in WORKDIR/build "
            "(../shared/gemma/head/checkout.sh prepares one)"
        )
    if not DRIVER.exists():
        raise SpecError(f"--gemma-cpp needs a source checkout of morello: {DRIVER} is missing")


def shapes(workdir: Path) -> list[tuple[str, str, int, int, str, str]]:
    """(model, site, K, N, A, C) of every decode projection of MODELS, in gemma's order."""
    configs = _configs_module()
    text = (workdir / "src" / "gemma.cpp" / "gemma" / "configs.cc").read_text()
    found = []
    for model in configs.models_in(text):
        if model.name in MODELS:
            for site, k, n, a in configs.projections(model):
                found.append((model.name, site, k, n, a, C_TYPES[site]))
    return found


def build(workdir: Path, threads: tuple[int, ...]) -> Path:
    """Generates the kernels, compiles the adapter and the driver against the checkout;
    returns the driver."""
    _layout(workdir)
    configs = _configs_module()
    out = workdir / "morello_bench"
    kernels = out / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    text = (workdir / "src" / "gemma.cpp" / "gemma" / "configs.cc").read_text()
    models = [m for m in configs.models_in(text) if m.name in MODELS]
    listing = out / "kernels.toml"
    listing.write_text(configs.kernel_list(models, list(threads), padded_only=True))
    log("gemma.cpp: synthesizing the kernels (once; later runs read the memo table)")
    run_step(
        [
            sys.executable,
            "-m",
            "morello",
            "generate",
            str(listing),
            "-o",
            str(kernels),
            "--umbrella",
            "morello_gemma_kernels.hpp",
            "--quiet",
        ],
        "generating the kernels",
    )
    compiler = shutil.which("g++") or "g++"
    log("gemma.cpp: compiling the adapter and the driver (every Highway target)")
    adapter = out / "morello_gemma.o"
    run_step(
        [
            compiler,
            "-O3",
            "-mavx2",
            "-mfma",
            "-std=c++17",
            f"-I{kernels}",
            f"-I{INTEGRATION}",
            "-c",
            str(INTEGRATION / "morello_gemma.cc"),
            "-o",
            str(adapter),
        ],
        "compiling the adapter",
    )
    src, objects = workdir / "src", workdir / "build" / "CMakeFiles" / "libgemma.dir"
    driver = out / "matmul_bench.o"
    run_step(
        [
            compiler,
            "-O3",
            "-DNDEBUG",
            "-std=gnu++17",
            "-DHWY_STATIC_DEFINE",
            "-DTOOLCHAIN_MISS_ASM_HWCAP_H",
            f"-I{INTEGRATION}",
            f"-I{DRIVER.parent}",
            f"-I{src / 'gemma.cpp'}",
            f"-I{src / 'highway'}",
            "-c",
            str(DRIVER),
            "-o",
            str(driver),
        ],
        "compiling the gemma.cpp driver",
    )
    gemma_objects = sorted(
        str(p)
        for p in [
            *objects.glob("ops/*.o"),
            *objects.glob("util/*.o"),
            objects / "io" / "fields.cc.o",
            objects / "compression" / "compress.cc.o",
        ]
    )
    libraries = []
    for name in ("libhwy_contrib.a", "libhwy.a"):
        found = sorted((workdir / "build").rglob(name))
        if not found:
            raise BuildError(f"{name} not found under {workdir / 'build'}")
        libraries.append(str(found[0]))
    binary = out / "matmul_bench"
    run_step(
        [
            compiler,
            "-O3",
            "-o",
            str(binary),
            str(driver),
            str(adapter),
            *gemma_objects,
            *libraries,
            "-lpthread",
        ],
        "linking the gemma.cpp driver",
    )
    return binary


def parse(output: str, sites: dict[tuple[int, int, str, str], tuple[str, str]]) -> list[Row]:
    rows = []
    for line in output.splitlines():
        if not line.startswith("RESULT "):
            continue
        f = dict(item.split("=", 1) for item in line.split()[1:])
        k, n = int(f["k"]), int(f["n"])
        model, site = sites[(k, n, f["a"], f["c"])]
        rows.append(
            Row(
                model,
                site,
                k,
                n,
                f["a"],
                f["c"],
                int(f["stride"]),
                f["target"],
                f["isa"],
                int(f["threads"]),
                f["routed"] == "1",
                int(f["kernel_threads"]),
                float(f["gemma_ms"]),
                float(f["ours_ms"]),
                float(f["ratio"]),
                float(f["ours_gbps"]),
                float(f["gemma_gbps"]),
                f["ours_within"] == "1",
                f["gemma_within"] == "1",
            )
        )
    return rows


def format_rows(rows: list[Row]) -> list[str]:
    header = (
        f"{'model':<10} {'site':<9} {'K→N':>13} {'A→C':>9} {'target':>16} "
        f"{'threads':>9} {'gemma ms':>9} {'ours ms':>9} {'ours GB/s':>9} {'gemma/ours':>10}"
    )
    lines = [header]
    for r in rows:
        notes = "" if r.ours_within else "  WRONG"
        notes += "" if r.routed else "  (not routed: gemma's code on both sides)"
        lines.append(
            f"{r.model:<10} {r.site:<9} {f'{r.k}→{r.n}':>13} {f'{r.a}→{r.c}':>9} "
            f"{f'{r.target} {r.isa}':>16} {threads_label(r.threads):>9} {r.gemma_ms:>9.3f} "
            f"{r.ours_ms:>9.3f} {r.ours_gbps:>9.1f} {r.ratio:>9.2f}x{notes}"
        )
    return lines


def layer_totals(
    rows: list[Row],
    projections: list[tuple[str, str, int, int, str, str]],
    model: str = "Gemma2_2B",
) -> list[str]:
    """One decode layer's projections of ``model`` in gemma's order, with and without the
    adapter. The FFW gating runs fused in gemma's CallTwoMatMul by default, which the adapter
    leaves to gemma: counted here as gemma's two one-row MatMuls on both sides."""
    shape_of = {site: (k, n, a, c) for m, site, k, n, a, c in projections if m == model}
    lines = []
    for target in TARGETS:
        for t in sorted({r.threads for r in rows}):
            timed = {(r.k, r.n, r.a, r.c): r for r in rows if r.target == target and r.threads == t}
            if not all(shape_of.get(s) in timed for s in LAYER_ORDER):
                continue
            by_site = {s: timed[shape_of[s]] for s in LAYER_ORDER}
            gemma = sum(by_site[s].gemma_ms for s in LAYER_ORDER)
            ours = sum(
                by_site[s].gemma_ms if s == "gating" else by_site[s].ours_ms for s in LAYER_ORDER
            )
            lines.append(
                f"{model} one layer (q, kv, attention output, gating x2, down), {target}, "
                f"{threads_label(t)}: gemma {gemma:.3f} ms, with the adapter {ours:.3f} ms "
                f"({gemma / ours:.2f}x)"
            )
    return lines


def run(workdir: Path, out: Path, threads: tuple[int, ...] = (1, 2), quick: bool = False) -> int:
    binary = build(workdir, threads)
    sites: dict[tuple[int, int, str, str], tuple[str, str]] = {}
    arguments = []
    projections = shapes(workdir)
    for model, site, k, n, a, c in projections:
        if (k, n, a, c) not in sites:
            sites[(k, n, a, c)] = (model, site)
            arguments.append(f"{model}_{site}:{k}:{n}:{a}:{c}")
    reps = "11" if quick else "31"
    rows: list[Row] = []
    for target in TARGETS:
        for t in threads:
            log(f"gemma.cpp: timing {len(arguments)} shapes, {target} target, {threads_label(t)}")
            command = [str(binary), target, str(t), reps, *arguments]
            output = run_step(command, "the gemma.cpp driver")
            rows += parse(output, sites)
    print(
        "gemma.cpp 3ed403e: its CallMatMul with one row of A against the same call through our "
        "kernels; one process, interleaved, bf16 weights (rows padded as gemma pads them) from "
        "DRAM; medians"
    )
    print("\n".join(format_rows(rows)))
    print()
    print("\n".join(layer_totals(rows, projections)))
    routed = [r for r in rows if r.routed]
    missed = [r for r in routed if r.ratio < BAR]
    for r in missed:
        print(
            f"bar MISSED  {r.model} {r.site} {r.target} {threads_label(r.threads)}: "
            f"{r.ratio:.2f}x (bar {BAR:.2f}x)"
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gemma_cpp_head.json"
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    print(f"\nwrote {path}")
    if routed:
        print(f"min ratio {min(r.ratio for r in routed):.2f} over {len(routed)} shapes")
    else:
        print("min ratio n/a over 0 shapes (none routed)")
    return 0 if all(r.ours_within for r in rows) and len(routed) == len(rows) else 1
