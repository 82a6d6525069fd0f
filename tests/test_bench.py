"""The benchmark harness: its protocol, its compiled loops, its peers and its report.

Nothing here judges speed; it checks that every system computes what it is timed on,
that systems are interleaved, that missing peers are reported as skipped, and that the
report, JSON and bars say what the results say.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from morello.bench import suite as benchmarks
from morello.bench.peers import PEERS, peer_environment
from morello.bench.report import (
    SuiteResult,
    SystemResult,
    ThreadResult,
    WorkloadResult,
    check_bars,
    format_report,
    to_json,
)
from morello.core.dtypes import Dtype
from morello.core.memo import InMemoryMemo
from morello.errors import SpecError
from morello.front.cli import main
from morello.tune import harness as bench
from morello.tune import inputs, machine
from morello.tune.harness import NativeBench, Timing, build_library, calibrate, measure
from morello.tune.inputs import Inputs, Problem, error_bound

BF, F = Dtype.BF16, Dtype.F32
SMALL = (
    benchmarks.Workload("seed-like 1x64x40 bf16·bf16", Problem(1, 64, 40, BF, BF, True, True)),
    benchmarks.Workload("decode 3x48x24 f32·bf16", Problem(3, 48, 24, F, BF, True, True)),
    benchmarks.Workload("f32 24x40x16", Problem(24, 40, 16, F, F, False, False)),
)


def test_measure_interleaves_systems_round_by_round():
    calls: list[str] = []

    def system(name: str, seconds_per_rep: float):
        def run(reps: int) -> float:
            calls.append(name)
            return seconds_per_rep * reps

        return run

    timings = measure([system("a", 1e-3), system("b", 4e-3)], rounds=3, min_time_s=0.02)
    timed = calls[-6:]  # after calibration: one call per system per round
    assert timed == ["a", "b"] * 3
    assert [t.reps for t in timings] == [20, 5]
    assert timings[0].median == pytest.approx(1e-3) and timings[1].best == pytest.approx(4e-3)


def test_calibrate_aims_at_the_round_time():
    assert calibrate(lambda reps: reps * 2e-4, 0.1) == 500
    with pytest.raises(ValueError):
        measure([lambda reps: 0.0], rounds=0, min_time_s=0.1)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """The library with kernels for SMALL at 1 thread, and the jobs that index them."""
    kernels, jobs, _ = benchmarks.synthesize_kernels(SMALL, (1,), InMemoryMemo())
    library = build_library(kernels, tmp_path_factory.mktemp("bench"))
    return library, jobs[1]


def test_compiled_loops_compute_the_product(harness):
    library, jobs = harness
    native = NativeBench(library)
    assert native.kernels == len(SMALL)
    for job in jobs:
        p = job.workload.problem
        inputs = Inputs(p, seed=3)
        a, b = inputs.native()
        assert len(a) > 1 if p.cold else len(a) == 1  # cold inputs rotate over copies
        c = np.full((p.m, p.n), np.nan, np.float32)
        assert native.kernel(job.kernel, a, b, c)(len(a)) > 0
        reference, scale = inputs.reference()
        assert np.all(np.abs(c - reference) <= error_bound(p.k) * scale)
    assert native.read(1, 1) > 0 and native.fma(2, 1) > 0
    # The FMA peak is the machine's: its widest FMA, AVX-512 where the CPU has it.
    wide = "avx512f" in Path("/proc/cpuinfo").read_text().split()
    assert (native.fma_lanes, native.fma_isa) == ((16, "AVX-512") if wide else (8, "AVX2"))
    with pytest.raises(ValueError):
        native.kernel(len(SMALL), a, b, c)


def test_a_thread_count_times_every_system_and_checks_its_result(harness):
    library, jobs = harness
    protocol = benchmarks.Protocol(rounds=2, min_time_s=0.002, peers=tuple(PEERS))
    result = benchmarks.run_thread_count(1, library, jobs, protocol)
    assert [w.workload for w in result.workloads] == [w.name for w in SMALL]
    assert result.read_gbps > 0 and result.fma_gflops > 0
    for w in result.workloads:
        names = [s.system for s in w.systems] + [peer for peer, _ in w.skipped]
        assert names[0] == "morello"
        assert "numpy f32" in names  # numpy is a dependency: never skipped
        for peer in PEERS:  # every peer either ran or says why not
            assert any(n.startswith(peer) for n in names)
        for s in w.systems:
            assert s.correct, (w.workload, s)
            assert s.rounds == 2 and s.median_s > 0
        for _, why in w.skipped:
            assert "not installed" in why


def test_a_wrong_result_is_reported_not_hidden(harness, monkeypatch):
    library, jobs = harness

    class Wrong:
        def __init__(self, *args, **kwargs):
            self.inner = NativeBench(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def kernel(self, index, a, b, c):
            run = self.inner.kernel(index, a, b, c)
            return lambda reps: (run(reps), c.__setitem__((0, 0), c[0, 0] + 1.0))[0]

    monkeypatch.setattr(benchmarks, "NativeBench", Wrong)
    protocol = benchmarks.Protocol(rounds=1, min_time_s=0.001, peers=("numpy",))
    result = benchmarks.run_thread_count(1, library, jobs[:1], protocol)
    ours = result.workloads[0].ours()
    assert not ours.correct
    suite = SuiteResult(0.0, 1.0, 1, 0.001, {"cpu": "test"}, (result,))
    assert "morello WRONG" in format_report(suite)
    assert any(line.startswith("bar MISSED") for line in check_bars(suite))


def test_cold_data_are_sized_by_the_l3_the_kernel_reports(tmp_path):
    for index, (level, size) in enumerate([("1", "48K"), ("2", "2048K"), ("3", "491520K")]):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "level").write_text(level + "\n")
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    assert machine.l3_bytes(tmp_path) == 480 << 20
    assert machine.cache_bytes(2, tmp_path) == 2 << 20
    (tmp_path / "index0" / "type").write_text("Instruction\n")  # L1i first, then L1d
    (tmp_path / "index3").mkdir()
    for name, text in (("level", "1"), ("size", "32K"), ("type", "Data")):
        (tmp_path / "index3" / name).write_text(text + "\n")
    assert machine.cache_bytes(1, tmp_path) == 32 << 10
    assert machine.l3_bytes(tmp_path / "missing") == 0
    assert bench.BANDWIDTH_BYTES >= 512 << 20 and inputs.ROTATION_BYTES >= 128 << 20
    assert min(4 * machine.l3_bytes(), 2 << 30) <= bench.BANDWIDTH_BYTES


def test_peers_kept_to_avx2_are_told_so_at_start_up():
    env = peer_environment(1, "avx2")
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    native = peer_environment(2, "native")
    assert native["OMP_NUM_THREADS"] == "2" and "OPENBLAS_CORETYPE" not in native
    with pytest.raises(ValueError, match="'avx512' is not one of native, avx2"):
        peer_environment(1, "avx512")


def _environ(name: str) -> str | None:
    return os.environ.get(name)


def test_a_worker_starts_with_the_environment_it_was_spawned_in(monkeypatch):
    monkeypatch.setenv("MORELLO_TEST_KEPT", "before")
    monkeypatch.delenv("MORELLO_TEST_NEW", raising=False)
    values = {"MORELLO_TEST_KEPT": "during", "MORELLO_TEST_NEW": "set"}
    context = multiprocessing.get_context("spawn")
    with (
        benchmarks._environment(values),
        concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool,
    ):
        seen = [pool.submit(_environ, name).result() for name in values]
    assert seen == ["during", "set"]
    assert os.environ["MORELLO_TEST_KEPT"] == "before" and "MORELLO_TEST_NEW" not in os.environ


def test_a_run_kept_to_avx2_caps_the_fma_peak_and_skips_what_cannot_be_capped(harness):
    library, jobs = harness
    assert NativeBench(library, max_fma_lanes=8).fma_lanes == 8
    protocol = benchmarks.Protocol(
        rounds=1, min_time_s=0.001, peers=("numpy", "jax"), peer_isa="avx2"
    )
    result = benchmarks.run_thread_count(1, library, jobs[:1], protocol)
    assert result.fma_isa == "AVX2"
    (why,) = [why for peer, why in result.workloads[0].skipped if peer == "jax"]
    assert why.startswith("cannot be kept to AVX2: XLA's dots run in YNNPACK")
    assert "numpy f32" in [s.system for s in result.workloads[0].systems]
    suite = SuiteResult(0.0, 1.0, 1, 0.001, {"cpu": "test"}, (result,), peer_isa="avx2")
    assert "peers and the FMA peak kept to AVX2 (--peer-isa avx2)" in format_report(suite)


def _system(name: str, ms: float, note: str = "") -> SystemResult:
    return SystemResult(name, note, ms / 1e3, ms / 1e3, 10, 5, 0.0, True)


def test_report_ratios_and_bars():
    systems = (
        _system("morello", 1.0),
        _system("torch bf16", 1.5, "A narrowed"),
        _system("numpy f32", 1.2),
    )
    skipped = (("jax", "jax is not installed"),)
    seed = WorkloadResult(
        "seed 1x2048x16384 bf16·bf16", True, 20 << 20, 1, systems, skipped, 0.9, 1.5e-3
    )
    systems = (_system("morello", 30.0), _system("numpy f32", 20.0))
    square = WorkloadResult("f32 1024x1024x1024", False, 1, 2 * 1024**3, systems, (), 0.8)
    tr = ThreadResult(1, read_gbps=22.0, fma_gflops=100.0, workloads=(seed, square))
    suite = SuiteResult(0.0, 1.0, 5, 0.25, {"cpu": "test"}, (tr,), geomean_bar=0.9)
    assert seed.fastest_peer().system == "numpy f32"
    report = format_report(suite)
    assert "1.20x" in report and "1.50x" in report and "0.67x" in report
    assert "jax: skipped, jax is not installed" in report
    assert "* A narrowed" in report
    bars = "\n".join(check_bars(suite))
    # 20 MiB in 1 ms is 21.0 GB/s: 95% of 22 GB/s.
    assert "bar met     seed 1x2048x16384 bf16·bf16, 1 thread: 95.3% of read bandwidth" in bars
    assert "bar met     seed 1x2048x16384 bf16·bf16, 1 thread: 1.20x the fastest peer" in bars
    assert "bar MISSED  f32 1024x1024x1024, 1 thread: 71.6% of FMA peak" in bars
    assert "bar MISSED  f32 1024x1024x1024, 1 thread: 0.67x the fastest peer" in bars
    # sqrt(95.3% x 71.6%) and sqrt(1.2 x 0.667): the geometric means over the workloads.
    assert "bar MISSED  geometric mean, 1 thread: 82.6% of the limit (bar 90%)" in bars
    assert "geometric mean of ours: 82.6% of the limit, 0.89x the fastest peer" in report
    # The model said 1.5 ms for the seed, measured 1 ms; the square has no prediction.
    assert "median |predicted/measured - 1| 50% over 1 programs" in report
    data = json.loads(json.dumps(to_json(suite)))
    workload = data["threads"][0]["workloads"][0]
    assert workload["ours_vs_fastest_peer"] == pytest.approx(1.2)
    assert workload["systems"][0]["of_limit"] == pytest.approx(20 * 2**20 / 1e-3 / 1e9 / 22.0)


def test_timing_statistics():
    t = Timing((3.0, 1.0, 2.0), reps=4)
    assert (t.median, t.best) == (2.0, 1.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peers", "numpy,mkl"], "unknown peer 'mkl'"),
        (["--threads", "1,x"], "must be comma-separated integers"),
        (["--threads", "0"], "at least 1"),
        (["--workload", "no such workload"], "no workload matches"),
        (["--gemma-cpp", "/nonexistent/gemma"], "not a prepared gemma.cpp checkout"),
    ],
)
def test_bench_options_are_checked(argv, message, capsys):
    assert main(["bench", "--no-db", *argv]) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_peer_isa_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--no-db", "--peer-isa", "avx512"])
    assert "--peer-isa: invalid choice: 'avx512'" in capsys.readouterr().err


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from morello.bench.report import plot

    systems = (_system("morello", 1.0), _system("numpy f32", 2.0))
    w = WorkloadResult("w", True, 1 << 20, 1, systems, ())
    suite = SuiteResult(0.0, 1.0, 5, 0.25, {"cpu": "test"}, (ThreadResult(1, 20.0, 100.0, (w,)),))
    assert plot(suite, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")


def test_suite_covers_the_issue_workloads():
    names = [w.name for w in benchmarks.STANDARD]
    assert names[0].startswith("seed 1x2048x16384")
    shapes = {(w.problem.m, w.problem.k, w.problem.n) for w in benchmarks.STANDARD}
    assert {(1, 2048, 16384), (1, 16384, 2048), (1, 2048, 2048), (4, 2048, 2048)} <= shapes
    assert {(256,) * 3, (512,) * 3, (1024,) * 3} <= shapes
    assert benchmarks.THREADS == (1, 2)
    matmuls = {(w.problem.m, w.problem.k, w.problem.n) for w in benchmarks.MATMUL}
    assert {(512,) * 3, (768,) * 3, (1024,) * 3, (2048,) * 3, (320, 640, 2560)} <= matmuls
    assert all(not w.memory_bound for w in benchmarks.MATMUL)
    assert benchmarks.SUITES["matmul"] is benchmarks.MATMUL


def test_peer_inputs_share_values_across_dtypes():
    inputs = Inputs(Problem(2, 32, 8, Dtype.F32, Dtype.BF16, True, False))
    a32, b32 = inputs.copies(Dtype.F32, Dtype.F32)
    a, b = inputs.native()
    assert np.array_equal(b32[0], b[0].astype(np.float32))  # widening is exact
    assert np.array_equal(a32[0], a[0])


def test_the_decode_suite_has_every_projection_of_six_model_families() -> None:
    from morello.bench.models import MODELS, decode_shapes

    families = {m.name.rsplit(" ", 1)[0] for m in MODELS}
    assert len(families) >= 6
    shapes = decode_shapes()
    covered = {use for s in shapes for use in s.uses}
    for model in MODELS:
        for projection, _, _ in model.projections():
            assert f"{model.name} {projection}" in covered
    assert len({(s.k, s.n) for s in shapes}) == len(shapes)  # each shape once
    decode = benchmarks.SUITES["decode"]
    assert {(w.problem.k, w.problem.n) for w in decode} == {(s.k, s.n) for s in shapes}
    assert all(w.problem.m == 1 and w.problem.cold and w.problem.b_col for w in decode)
    assert {w.problem.a_dtype.value for w in decode} == {"f32", "bf16"}


def test_the_gemma_cpp_driver_output_is_read_and_judged() -> None:
    from morello.bench import gemma_cpp

    output = "\n".join(
        [
            "some build noise",
            "RESULT name=gemma2b_q k=2048 n=2048 vec=f32 target=AVX2 threads=1 reps=31 routed=1 "
            "gemma_ms=0.4000 ours_ms=0.3000 ratio=1.3333 gemma_gbps=21.0 ours_gbps=28.0 "
            "ours_error=1.0e-08 ours_within=1 gemma_error=2.0e-08 gemma_within=1",
            "RESULT name=gemma2b_kv k=2048 n=512 vec=f32 target=AVX2 threads=2 reps=31 routed=1 "
            "gemma_ms=0.0500 ours_ms=0.0490 ratio=1.0204 gemma_gbps=21.0 ours_gbps=21.4 "
            "ours_error=1.0e-08 ours_within=1 gemma_error=2.0e-08 gemma_within=1",
        ]
    )
    rows = gemma_cpp.parse(output)
    assert [(r.name, r.threads, r.routed) for r in rows] == [
        ("gemma2b_q", 1, True),
        ("gemma2b_kv", 2, True),
    ]
    bars = gemma_cpp.check_bars(rows)
    assert bars[0].startswith("bar met") and "1.33x" in bars[0]
    assert bars[1].startswith("bar MISSED") and "(bar 1.05x)" in bars[1]
    table = "\n".join(gemma_cpp.format_rows(rows))
    assert "2048→512" in table and "1.02x" in table


def test_synthesis_suite_times_each_case_and_checks_the_bars(monkeypatch, tmp_path, capsys):
    tiny = benchmarks.SynthesisCase("tiny 4x8x16", "4x8x16", "f32,f32,f32", "row,row,row", 2, 1)
    monkeypatch.setattr(benchmarks, "SYNTHESIS_SUITE", (tiny,))
    monkeypatch.setattr(benchmarks, "WARM_RUNS", 1)
    table = tmp_path / "table.sqlite3"
    precompute = ["precompute", "--max-size", "3", "--jobs", "1", "--quiet", "--db", str(table)]
    assert main(precompute) == 0
    assert benchmarks.run_synthesis_suite(table, only=("tiny",)) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("tiny 4x8x16"))
    specs = int(row.split()[2].replace(",", ""))
    assert specs > 0
    assert "bar met     cold tiny 4x8x16" in out
    assert "warm tiny 4x8x16" in out
    assert "compression:" in out and "(bar 20x)" in out
    with pytest.raises(SpecError, match="no synthesis case matches"):
        benchmarks.run_synthesis_suite(None, only=("no such case",))
