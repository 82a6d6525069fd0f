"""Results of ``morello bench``: the data, the table, the plot, the JSON and the bars."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from morello.tune.accuracy import Accuracy, accuracy

OURS = "morello"


@dataclass(frozen=True, slots=True)
class SystemResult:
    system: str
    note: str  # how its inputs were prepared, when not in the workload's dtypes
    median_s: float  # per call
    best_s: float
    reps: int  # calls per round
    rounds: int
    max_error: float  # against the exact product, relative to |A|·|B|
    correct: bool  # max_error within the system's own dtype bound


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    workload: str
    memory_bound: bool
    bytes: int  # A, B and C in the workload's dtypes: the same for every system
    flops: int
    systems: tuple[SystemResult, ...]
    skipped: tuple[tuple[str, str], ...]  # (peer, why)
    limit_bar: float | None = None  # the share of the limit ours must reach, if any
    predicted_s: float | None = None  # the cost model's time for ours, at the measured clock

    def ours(self) -> SystemResult:
        return next(s for s in self.systems if s.system == OURS)

    def fastest_peer(self) -> SystemResult | None:
        peers = [s for s in self.systems if s.system != OURS and s.correct]
        return min(peers, key=lambda s: s.median_s, default=None)


@dataclass(frozen=True, slots=True)
class ThreadResult:
    threads: int
    read_gbps: float  # streaming read bandwidth measured at this thread count
    fma_gflops: float  # f32 FMA peak at this thread count, with the host's widest FMA
    workloads: tuple[WorkloadResult, ...]
    fma_isa: str = "AVX2"  # that widest FMA: AVX2 or AVX-512
    read_pattern: str = "1 stream"  # how the read probe read: the fastest pattern here
    clock_ghz: float = 0.0  # the core clock, measured: what the model's cycles are worth

    def rate(self, w: WorkloadResult, s: SystemResult) -> float:
        """GB/s for memory-bound workloads, else GFLOP/s."""
        return (w.bytes if w.memory_bound else w.flops) / s.median_s / 1e9

    def of_limit(self, w: WorkloadResult, s: SystemResult) -> float:
        return self.rate(w, s) / (self.read_gbps if w.memory_bound else self.fma_gflops)

    def geomeans(self) -> tuple[float, float | None]:
        """Over the workloads: the geometric mean of ours' share of the limit, and of the
        fastest peer's time over ours (None without peers)."""
        shares = [self.of_limit(w, w.ours()) for w in self.workloads]
        ratios = [p.median_s / w.ours().median_s for w in self.workloads if (p := w.fastest_peer())]
        return _geomean(shares), _geomean(ratios) if ratios else None


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


@dataclass(frozen=True, slots=True)
class SuiteResult:
    started: float  # Unix time
    seconds: float
    rounds: int
    min_time_s: float
    versions: dict[str, str]
    threads: tuple[ThreadResult, ...]
    peer_isa: str = "native"  # "avx2": peers and the FMA probe were kept to AVX2
    name: str = "standard"  # which suite (morello/bench/suite.py SUITES)
    geomean_bar: float | None = None  # the share of the limit the geometric mean must reach
    neighbours: str = ""  # the model's accuracy over the optima and neighbours re-ranked

    def optima_accuracy(self) -> Accuracy | None:
        """The model's time for each of our kernels against its measured median."""
        pairs = [
            [(w.predicted_s, w.ours().median_s)]
            for tr in self.threads
            for w in tr.workloads
            if w.predicted_s
        ]
        return accuracy(pairs) if pairs else None


def versions(peers: Iterable[str]) -> dict[str, str]:
    found = {"python": platform.python_version(), "cpu": _cpu_model()}
    for package in ("morello", "numpy", *peers):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def threads_label(t: int) -> str:
    return f"{t} thread{'s' * (t > 1)}"


def format_report(suite: SuiteResult) -> str:
    lines = [
        f"{suite.versions['cpu']}; medians of {suite.rounds} interleaved rounds of "
        f"~{suite.min_time_s:g} s per system; GB/s counts A, B and C once in the workload's "
        "dtypes, for every system"
    ]
    if suite.peer_isa == "avx2":
        lines.append(
            "peers and the FMA peak kept to AVX2 (--peer-isa avx2), as on the machine class "
            "our kernels target"
        )
    header = [
        "workload",
        "system",
        "median ms",
        "min ms",
        "model ms",
        "rate",
        "of limit",
        "ours vs it",
    ]
    for tr in suite.threads:
        lines += [
            "",
            f"{threads_label(tr.threads)}: streaming read {tr.read_gbps:.1f} GB/s "
            f"({tr.read_pattern}), f32 FMA peak {tr.fma_gflops:.1f} GFLOP/s ({tr.fma_isa}), "
            f"clock {tr.clock_ghz:.2f} GHz",
        ]
        rows = [header]
        notes: dict[str, int] = {}
        for w in tr.workloads:
            ours = w.ours()
            for i, s in enumerate(sorted(w.systems, key=lambda s: s.median_s)):
                mark = ""
                if s.note:
                    mark = "*" * notes.setdefault(s.note, len(notes) + 1)
                unit = "GB/s" if w.memory_bound else "GFLOP/s"
                rows.append(
                    [
                        w.workload if i == 0 else "",
                        s.system + mark + ("" if s.correct else " WRONG"),
                        f"{s.median_s * 1e3:.3f}",
                        f"{s.best_s * 1e3:.3f}",
                        f"{w.predicted_s * 1e3:.3f}" if s is ours and w.predicted_s else "",
                        f"{tr.rate(w, s):.1f} {unit}",
                        f"{tr.of_limit(w, s):.0%}",
                        "" if s is ours else f"{s.median_s / ours.median_s:.2f}x",
                    ]
                )
            for peer, why in w.skipped:
                rows.append(["" if w.systems else w.workload, f"{peer}: skipped, {why}"])
        lines += _align(rows)
        lines += [f"  {'*' * n} {note}" for note, n in notes.items()]
        if len(tr.workloads) > 1:
            share, ratio = tr.geomeans()
            versus = f", {ratio:.2f}x the fastest peer" if ratio is not None else ""
            lines.append(f"geometric mean of ours: {share:.1%} of the limit{versus}")
    optima = suite.optima_accuracy()
    if optima is not None:
        lines += ["", f"cost model, our kernels: {optima}"]
    if suite.neighbours:
        lines.append(f"cost model, optima and their neighbours (--measure): {suite.neighbours}")
    return "\n".join(lines)


def _align(rows: list[list[str]]) -> list[str]:
    full = [r for r in rows if len(r) == len(rows[0])]
    widths = [max(len(r[c]) for r in full) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        if len(r) != len(widths):
            out.append("  ".join([r[0].ljust(widths[0]), *r[1:]]).rstrip())
            continue
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(wd) for c, wd in zip(r[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


def check_bars(suite: SuiteResult) -> list[str]:
    """The issue's bars, each a line saying met or missed and by how much."""
    lines = []

    def bar(ok: bool, text: str) -> None:
        lines.append(f"bar {'met' if ok else 'MISSED':6}  {text}")

    for tr in suite.threads:
        for w in tr.workloads:
            ours = w.ours()
            if w.limit_bar is not None:
                share = tr.of_limit(w, ours)
                limit = "read bandwidth" if w.memory_bound else "FMA peak"
                what = f"{w.workload}, {threads_label(tr.threads)}: {share:.1%} of {limit}"
                bar(share >= w.limit_bar, f"{what} (bar {w.limit_bar:.0%})")
            peer = w.fastest_peer()
            if peer is not None:
                ratio = peer.median_s / ours.median_s
                bar(
                    ratio >= 1.0 and ours.correct,
                    f"{w.workload}, {threads_label(tr.threads)}: {ratio:.2f}x the fastest peer "
                    f"({peer.system})",
                )
        if suite.geomean_bar is not None and tr.workloads:
            share, _ = tr.geomeans()
            bar(
                share >= suite.geomean_bar,
                f"geometric mean, {threads_label(tr.threads)}: {share:.1%} of the limit "
                f"(bar {suite.geomean_bar:.0%})",
            )
    return lines


def to_json(suite: SuiteResult) -> dict:
    data = dataclasses.asdict(suite)
    for tr, tr_data in zip(suite.threads, data["threads"], strict=True):
        for w, w_data in zip(tr.workloads, tr_data["workloads"], strict=True):
            peer = w.fastest_peer()
            for s, s_data in zip(w.systems, w_data["systems"], strict=True):
                s_data["rate"] = tr.rate(w, s)
                s_data["of_limit"] = tr.of_limit(w, s)
            w_data["ours_vs_fastest_peer"] = peer.median_s / w.ours().median_s if peer else None
        if tr.workloads:
            tr_data["geomean_of_limit"], tr_data["geomean_vs_fastest_peer"] = tr.geomeans()
    return data


def write_json(suite: SuiteResult, path: Path) -> None:
    path.write_text(json.dumps(to_json(suite), indent=1) + "\n")


def plot(suite: SuiteResult, path: Path) -> bool:
    """Bars of each system's share of the machine's limit, a panel per thread count.
    Returns False (and says why) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is not installed (pip install -e '.[bench]')")
        return False
    systems = sorted(
        {s.system for tr in suite.threads for w in tr.workloads for s in w.systems},
        key=lambda name: (name != OURS, name),
    )
    colors = dict(zip(systems, plt.get_cmap("tab10").colors, strict=False))
    workloads = [w.workload for w in suite.threads[0].workloads]
    size = (7 * len(suite.threads), 0.16 * len(workloads) * len(systems) + 1.5)
    fig, axes = plt.subplots(1, len(suite.threads), figsize=size, sharey=True, squeeze=False)
    height = 0.8 / len(systems)
    for ax, tr in zip(axes[0], suite.threads, strict=True):
        for wi, w in enumerate(tr.workloads):
            present = [s for name in systems for s in w.systems if s.system == name]
            for si, s in enumerate(present):
                name = s.system
                y = wi + (si - (len(present) - 1) / 2) * height
                share = tr.of_limit(w, s)
                ax.barh(
                    y,
                    share * 100,
                    height,
                    color=colors[name],
                    label=name if wi == 0 else None,
                    edgecolor="black" if name == OURS else "none",
                    hatch="" if s.correct else "xx",  # a wrong result is marked, not hidden
                )
                unit = "GB/s" if w.memory_bound else "GF/s"
                ax.text(share * 100 + 1, y, f"{tr.rate(w, s):.0f} {unit}", va="center", fontsize=6)
        ax.axvline(100, color="black", linewidth=0.8)
        for wi, w in enumerate(tr.workloads):
            if w.limit_bar is not None:  # the share ours must reach, as a tick on its row
                ax.vlines(w.limit_bar * 100, wi - 0.45, wi + 0.45, colors="red", linewidth=0.8)
        compute = [wi for wi, w in enumerate(tr.workloads) if not w.memory_bound]
        if tr.fma_isa == "AVX-512" and compute:
            # Our kernels are AVX2: half the lanes, so at best half of this machine's peak.
            top, bottom = min(compute) - 0.5, max(compute) + 0.5
            ax.vlines(50, top, bottom, colors="black", linestyles="dashed", linewidth=0.8)
            ax.text(50, bottom, " AVX2 FMA peak", fontsize=6, va="bottom")
        limits = f"read {tr.read_gbps:.1f} GB/s, FMA {tr.fma_gflops:.0f} GFLOP/s ({tr.fma_isa})"
        ax.set_title(f"{threads_label(tr.threads)}: {limits}")
        ax.set_xlabel("% of the measured limit (read bandwidth or FMA peak)")
        ax.set_yticks(range(len(workloads)), workloads)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # the suite's order, top down (the axes share y: once)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(systems), fontsize=8)
    capped = ", peers kept to AVX2" if suite.peer_isa == "avx2" else ""
    fig.suptitle(f"morello bench: {suite.versions['cpu']}{capped}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
