"""The host profile: what ``morello calibrate`` measures, how it is stored, and how the
headers use it."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from pathlib import Path

import pytest

from morello.core.rates import RATES, Rates
from morello.core.spec import matmul_problem
from morello.core.target import AVX2_LIMITS
from morello.emit import codegen
from morello.errors import BuildError, HostProfileError
from morello.front.api import synthesize_spec
from morello.front.cli import main
from morello.tune import calibrate, host

SEED = ("1x2048x16384", "bf16,bf16,f32", "row,col,row")


def test_an_uncalibrated_host_uses_the_default() -> None:
    assert host.load() == host.DEFAULT  # conftest points $MORELLO_HOST at a missing file


def test_a_saved_profile_is_read_back(tmp_path: Path) -> None:
    profile = host.HostProfile(8192, "a test")
    path = host.save(profile, tmp_path / "sub" / "host.json")
    assert host.load(path) == profile
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".host-")]


def test_a_profile_with_measured_rates_is_read_back(tmp_path: Path) -> None:
    rates = replace(RATES, loads_per_cycle=3.0, dram_line_cycles=16.0)
    fastest = replace(rates, loads_per_cycle=3.02, dram_line_cycles=15.11)
    profile = host.HostProfile(2048, "a test", rates, 1 << 20, fastest)
    assert host.load(host.save(profile, tmp_path / "host.json")) == profile
    assert profile.limits.l2 == 1 << 20 and profile.limits.l1 == AVX2_LIMITS.l1
    # A profile from before the rates were measured keeps the default model.
    old = tmp_path / "old.json"
    old.write_text('{"prefetch_bytes": 1024, "source": "old"}')
    assert host.load(old) == host.HostProfile(1024, "old")


def test_the_fastest_of_older_probes_is_forgotten(tmp_path: Path) -> None:
    """A probe that now measures something else (the loads probe feeds FMAs since version
    2): its old fastest would outrank every new measurement, so the profile keeps its rates
    and the next calibration starts its fastest afresh."""
    rates = replace(RATES, loads_per_cycle=3.0)
    path = host.save(host.HostProfile(2048, "a test", rates, fastest=rates), tmp_path / "h.json")
    data = json.loads(path.read_text())
    assert data["probes"] == host.PROBES and host.load(path).fastest == rates
    del data["probes"]
    path.write_text(json.dumps(data))
    assert host.load(path) == host.HostProfile(2048, "a test", rates)


BAD_PROFILES = [
    "{",
    "[]",
    '{"prefetch_bytes": -1}',
    '{"prefetch_bytes": "8k"}',
    "{}",
    '{"prefetch_bytes": 0, "rates": []}',
    '{"prefetch_bytes": 0, "rates": {"loads_per_cycle": 0}}',
    '{"prefetch_bytes": 0, "rates": {"loads_per_cycle": true}}',
    '{"prefetch_bytes": 0, "rates": {"ports": 3}}',
    '{"prefetch_bytes": 0, "l2_budget": 0}',
    '{"prefetch_bytes": 0, "fastest": {"l3_line_cycles": -3}}',
    '{"prefetch_bytes": 0, "fastest": {"l3_line_cycles": 3}, "probes": 3}',  # one missing
]


@pytest.mark.parametrize("text", BAD_PROFILES)
def test_a_bad_profile_is_an_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "host.json"
    path.write_text(text)
    with pytest.raises(HostProfileError, match=re.escape(str(path))):
        host.load(path)


def test_a_fastest_that_lacks_a_rate_is_refused_not_filled_with_a_default(
    tmp_path: Path,
) -> None:
    path = tmp_path / "host.json"
    path.write_text('{"prefetch_bytes": 0, "fastest": {"l3_line_cycles": 3}, "probes": 3}')
    with pytest.raises(HostProfileError, match=r"lacks the rates \['dram_line_cycles'"):
        host.load(path)
    # Older probes measured fewer rates: their fastest is dropped, not refused.
    path.write_text('{"prefetch_bytes": 0, "fastest": {"l3_line_cycles": 3}, "probes": 2}')
    assert host.load(path).fastest is None
    # The rates themselves may omit some: those keep the defaults.
    path.write_text('{"prefetch_bytes": 0, "rates": {"l3_line_cycles": 5}}')
    assert host.load(path).rates == replace(RATES, l3_line_cycles=5.0)


def test_headers_prefetch_as_far_as_the_profile_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = synthesize_spec(matmul_problem(*SEED)).to_header("gemm")
    assert f"+ {host.DEFAULT.prefetch_bytes}, _MM_HINT_T0" in default
    # Rendering reads no file: a profile on disk changes nothing until it is passed.
    path = host.save(host.HostProfile(12288, "a test"), tmp_path / "host.json")
    monkeypatch.setenv("MORELLO_HOST", str(path))
    assert synthesize_spec(matmul_problem(*SEED)).to_header("gemm") == default
    tuned = synthesize_spec(matmul_problem(*SEED), profile=host.load()).to_header("gemm")
    assert "+ 12288, _MM_HINT_T0" in tuned
    assert f"+ {host.DEFAULT.prefetch_bytes}, _MM_HINT_T0" not in tuned
    assert "prefetch B 12288 bytes ahead;" in tuned


def test_synth_searches_under_the_profiles_rates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["synth", "matmul", "48x64x64", "--dtypes", "f32,f32,f32", "--no-db", "-o"]

    def predicted() -> float:
        assert main([*argv, str(tmp_path / "k.hpp")]) == 0
        found = re.search(r"predicted cost ([\d,]+)", capsys.readouterr().out)
        assert found is not None
        return float(found.group(1).replace(",", ""))

    default = predicted()
    half_the_fmas = host.HostProfile(1024, "a test", replace(RATES, fma_per_cycle=1.0))
    monkeypatch.setenv("MORELLO_HOST", str(host.save(half_the_fmas, tmp_path / "host.json")))
    assert predicted() > 1.5 * default  # an FMA-bound kernel, priced at half the FMA rate


def test_synth_with_a_corrupt_profile_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "host.json"
    path.write_text("not json")
    monkeypatch.setenv("MORELLO_HOST", str(path))
    argv = ["synth", "matmul", "1x64x32", "--dtypes", SEED[1], "--layouts", SEED[2], "--no-db"]
    assert main(argv) == 2
    assert f"{path}: not a host profile" in capsys.readouterr().err


def test_a_measured_rate_settles_on_a_coarse_grid_or_keeps_the_saved_value() -> None:
    assert calibrate._settle(2.61, 3.0) == 2.5  # more than 10% off: the nearest grid point
    assert calibrate._settle(15.26, 10.0) == 16.0
    assert calibrate._settle(7.81, 3.0) == 8.0
    assert calibrate._settle(2.95, 3.0) == 3.0
    assert calibrate._settle(14.6, 16.0) == 16.0  # within 10% of the saved value: kept
    assert calibrate._settle(14.2, 16.0) == 14.0
    assert calibrate._settle(1.99, 2.0) == 2.0


def test_a_rate_is_the_fastest_any_calibration_measured() -> None:
    first = replace(RATES, loads_per_cycle=3.02, dram_line_cycles=15.11)
    rates, fastest, rows = calibrate.settle_rates(first, host.DEFAULT)
    assert fastest == first and (rates.loads_per_cycle, rates.dram_line_cycles) == (3.0, 16.0)
    assert rates.fma_per_cycle == RATES.fma_per_cycle  # within 10% of the default: kept
    calibrated = host.HostProfile(2048, "first", rates, fastest=fastest)
    # Busy neighbours: DRAM and the load ports measure slower. The profile does not move.
    busy = replace(first, loads_per_cycle=2.4, dram_line_cycles=19.5)
    again, still, rows = calibrate.settle_rates(busy, calibrated)
    assert (again, still) == (rates, first)
    row = next(r for r in rows if r.name == "dram_line_cycles")
    assert (row.measured, row.fastest, row.used) == (19.5, 15.11, 16.0)
    # A quieter hour measures faster than ever: that one counts.
    quiet = replace(first, l3_line_cycles=RATES.l3_line_cycles / 2, dram_line_cycles=12.1)
    better, fastest, _ = calibrate.settle_rates(quiet, calibrated)
    assert fastest == quiet and better.dram_line_cycles == 12.0
    assert better.l3_line_cycles == RATES.l3_line_cycles / 2


def test_faster_rates_are_more_per_cycle_and_fewer_cycles() -> None:
    slow = Rates(1.0, 1.0, 1.0, 20.0, 8.0, 400.0)
    fast = Rates(2.0, 3.0, 2.5, 15.0, 7.0, 300.0)
    mixed = Rates(2.0, 1.0, 2.5, 20.0, 7.0, 300.0)
    assert calibrate.faster(slow, fast) == calibrate.faster(fast, slow) == fast
    assert calibrate.faster(mixed, slow) == mixed and calibrate.faster(mixed, fast) == fast


def test_calibrate_fresh_forgets_the_saved_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = host.save(host.HostProfile(512, "old", fastest=RATES), tmp_path / "host.json")
    seen = []

    def stop(open_memo, previous, *, log):
        seen.append(previous)
        raise BuildError("stop here")

    monkeypatch.setattr(calibrate, "calibrate", stop)
    for fresh in ([], ["--fresh"]):
        assert main(["calibrate", "--no-db", "--profile", str(path), *fresh]) == 2
    assert seen == [host.load(path), host.DEFAULT]


@pytest.mark.parametrize(
    ("l2", "budget"), [("2048K", 512 << 10), ("1024K", 512 << 10), ("256K", 128 << 10), (None, 0)]
)
def test_the_l2_budget_is_half_the_l2_up_to_the_default(
    tmp_path: Path, l2: str | None, budget: int
) -> None:
    if l2 is not None:
        (tmp_path / "index2").mkdir()
        (tmp_path / "index2" / "level").write_text("2\n")
        (tmp_path / "index2" / "size").write_text(l2 + "\n")
    assert calibrate.l2_budget(tmp_path) == (budget or host.DEFAULT.l2_budget)


def test_calibrate_measures_the_rates_and_saves_the_fastest_prefetch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "host.json"
    assert main(["calibrate", "--no-db", "--profile", str(path)]) == 0
    out = capsys.readouterr().out
    saved = json.loads(path.read_text())
    grid = {q / 4 * 2.0**e for q in range(4, 9) for e in range(-3, 14)}
    assert set(saved["rates"]) == set(saved["fastest"]) == {f.name for f in fields(Rates)}
    for name, value in saved["rates"].items():
        assert value in grid or value == getattr(RATES, name), name  # or kept: close to it
        # A first calibration: what it measured is the fastest yet.
        measured = f"{saved['fastest'][name]:.2f}"
        assert re.search(rf"{name}\s+{measured}\s+{measured}\s+{value:g}\s", out), name
    # An AVX2 core: at least one 256-bit FMA and one load a cycle, DRAM slower than L3.
    assert saved["rates"]["fma_per_cycle"] >= 1 and saved["rates"]["loads_per_cycle"] >= 1
    assert saved["rates"]["dram_line_cycles"] > saved["rates"]["l3_line_cycles"]
    assert saved["l2_budget"] > 0 and re.search(r"clock \d+\.\d\d GHz", out)
    chosen = saved["prefetch_bytes"]
    assert chosen in calibrate.PREFETCH_CANDIDATES
    rows = [line for line in out.splitlines() if line.strip().endswith(("GB/s", "fastest"))]
    assert len(rows) == len(calibrate.PREFETCH_CANDIDATES)
    assert f"{chosen:>12} B" in next(r for r in rows if r.endswith("<- fastest"))


def test_a_header_of_rows_sharing_b_states_its_prefetch_distance() -> None:
    from morello.core.kernels import DotMode, Kernel, KernelKind
    from morello.core.program import Program
    from morello.emit.codegen import render_header

    spec = matmul_problem("4x64x1", "bf16,bf16,f32", "row,col,row")
    kernel = Kernel(KernelKind.DOT_BLOCK, DotMode.SPLIT_BOTH)
    header = render_header(Program(spec, kernel, (), 0.0), "gemm", prefetch_bytes=4096)
    assert "+ 4096, _MM_HINT_T0" in header
    assert "prefetch B 4096 bytes ahead;" in header


@pytest.mark.parametrize(("k", "ld", "size"), [(1024, 2048, 2), (64, 64, 2), (48, 4096, 4)])
@pytest.mark.parametrize("distance", [0, 512, 2048, 8192])
@pytest.mark.parametrize("block", [1, 4])
def test_the_dot_kernels_prefetch_what_they_read_distance_bytes_later(
    k: int, ld: int, size: int, distance: int, block: int
) -> None:
    # The kernel and its callers read each column of B down its k elements, then the column
    # ``block`` columns (ld elements each) further, which the same stream of the kernel reads
    # next: the prefetched address is the one that stream reads that many bytes later.
    ahead = codegen._b_ahead(k, ld, size, distance, block)
    columns = 2 + distance // size // k
    read_order = [column * block * ld + row for column in range(columns) for row in range(k)]
    for kk in range(0, k, 16):
        expr = ahead("br", str(kk))
        match = re.fullmatch(r"reinterpret_cast<const char\*>\(br \+ (.+?)\)(?: \+ (\d+))?", expr)
        assert match, expr
        address = eval(match[1].replace("/", "//")) * size + int(match[2] or 0)
        assert address == read_order[kk + distance // size] * size
