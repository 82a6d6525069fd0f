"""Re-ranking by measurement: the candidates are real programs the model can cost, and the
measured winner is correct and is what ``synth --measure`` emits."""

from __future__ import annotations

import math
import re

import pytest

from morello.core.cost import action_cost
from morello.core.dtypes import Dtype
from morello.core.kernels import DOT_PREFETCH_BYTES
from morello.core.layout import COL, ROW
from morello.core.memo import InMemoryMemo
from morello.core.program import Program
from morello.core.rewrites import actions, canonical, expand
from morello.core.search import synthesize
from morello.core.spec import matmul_spec
from morello.front.cli import main
from morello.tune.rerank import CLOSE, _shape, format_ranking, measure_candidates, neighbours

F32, BF16 = Dtype.F32, Dtype.BF16
CASES = [
    pytest.param((24, 32, 40), (F32, F32, F32), ROW, 1, id="f32-24x32x40"),
    pytest.param((3, 64, 40), (BF16, BF16, F32), COL, 2, id="bf16-col-3x64x40-t2"),
]


def _recost(program: Program, threads: int) -> float:
    """Checks every node is a valid derivation and returns the cost recomputed."""
    assert program.action in list(actions(program.spec, threads))
    assert expand(program.spec, program.action) == tuple(c.spec for c in program.children)
    costs = [_recost(c, threads) for c in program.children]
    children = tuple(c.spec for c in program.children)
    cost = action_cost(program.spec, program.action, children, costs, threads)
    assert math.isclose(cost, program.cost, rel_tol=1e-9)
    return cost


@pytest.mark.parametrize(("shape", "dtypes", "b_layout", "threads"), CASES)
def test_neighbours_are_valid_programs_no_cheaper_than_the_optimum(
    shape, dtypes, b_layout, threads
) -> None:
    spec = canonical(matmul_spec(*shape, dtypes, (ROW, b_layout, ROW), threads=threads))
    memo = InMemoryMemo()
    optimum, _ = synthesize(spec, threads=threads, memo=memo)
    found = neighbours(spec, threads, memo, 6, DOT_PREFETCH_BYTES)
    assert 2 <= len(found) <= 6
    assert found[0].program == optimum and found[0].change == ""
    assert len({c.program for c in found}) == len(found)  # distinct
    for candidate in found[1:]:
        assert candidate.change  # says what differs
        assert candidate.program.spec == spec
        assert math.isclose(_recost(candidate.program, threads), candidate.program.cost)
        assert candidate.program.cost >= optimum.cost * (1 - 1e-9)  # the DP is exact
    # Each new shape of program first (within CLOSE of the optimum), by cost; then the rest.
    shapes = [_shape(c.program) for c in found]
    close = [c.program.cost <= CLOSE * optimum.cost for c in found]
    new = next(
        (i for i in range(1, len(found)) if shapes[i] in shapes[:i] or not close[i]), len(found)
    )
    for section in (found[1:new], found[new:]):
        assert [c.program.cost for c in section] == sorted(c.program.cost for c in section)
    assert all(shapes[i] in shapes[:new] or not close[i] for i in range(new, len(found)))


def test_a_shape_leaves_out_loop_sizes() -> None:
    spec = canonical(matmul_spec(24, 32, 40, (F32, F32, F32), (ROW, ROW, ROW), threads=1))
    optimum, _ = synthesize(spec, threads=1, memo=InMemoryMemo())
    shape = _shape(optimum)
    assert shape == tuple(sorted(set(shape)))
    assert any(s.startswith("tile") for s in shape)
    assert not any(re.search(r"=\d", s) for s in shape)


@pytest.mark.parametrize(("shape", "dtypes", "b_layout", "threads"), CASES)
def test_measure_checks_and_orders_the_candidates(shape, dtypes, b_layout, threads) -> None:
    spec = canonical(matmul_spec(*shape, dtypes, (ROW, b_layout, ROW), threads=threads))
    memo = InMemoryMemo()
    synthesize(spec, threads=threads, memo=memo)
    found = neighbours(spec, threads, memo, 3, DOT_PREFETCH_BYTES)
    ranked = measure_candidates(spec, found, threads)
    assert {r.candidate.program for r in ranked} == {c.program for c in found}
    assert len(ranked) == len(found)
    assert [r.seconds for r in ranked] == sorted(r.seconds for r in ranked)
    bound = (shape[1] + 2) * 2.0**-24
    assert all(0 < r.best <= r.seconds and r.error <= bound for r in ranked)
    table = format_ranking(ranked)
    assert "(the model's optimum)" in table and len(table.splitlines()) == len(ranked) + 1


def test_synth_measure_emits_the_fastest(tmp_path, capsys) -> None:
    out = tmp_path / "k.hpp"
    argv = ["synth", "matmul", "16x32x24", "--dtypes", "f32,f32,f32", "--no-db"]
    assert main([*argv, "--measure", "3", "-o", str(out)]) == 0
    report = capsys.readouterr().out
    assert "measured on this machine, fastest first:" in report
    rank, predicted = report.split("fastest first:\n")[1].splitlines()[1].split()[:2]
    assert rank == "1"
    assert f"Predicted cost: {predicted} " in out.read_text()  # the header is the winner's


def test_synth_measure_must_be_positive(capsys) -> None:
    argv = ["synth", "matmul", "4x4x4", "--dtypes", "f32,f32,f32", "--no-db", "--measure", "0"]
    assert main(argv) == 2
    assert "--measure must be at least 1, got 0" in capsys.readouterr().err
