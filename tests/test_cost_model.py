"""The cost model's rules about memory: where the caller's tensors live, what a resident
tile's fetch costs, and which strided tiles a cache may hold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from morello.core.cost import LOOP_ITERATION_CYCLES, action_cost, kernel_cost
from morello.core.dtypes import Dtype
from morello.core.kernels import DotMode, Kernel, KernelKind, kernels_for
from morello.core.layout import COL, EVEN_ODD, ROW, Packed
from morello.core.rates import (
    COPY_CYCLES_PER_ELEMENT,
    COPY_CYCLES_PER_VECTOR,
    RATES,
    STREAM_RUN_BYTES,
    concurrent_line_cost,
    line_cost,
)
from morello.core.rewrites import Dim, Promote, Tile, expand, promotion
from morello.core.spec import Op, Spec, TensorSpec, matmul_spec, runs
from morello.core.target import AVX2_LIMITS, L1_WAYS, L2_SAFE_RUNS, L3_BYTES, Level

F32, BF16 = Dtype.F32, Dtype.BF16


def _levels(spec: Spec) -> tuple[Level, ...]:
    return tuple(t.level for t in spec.operands)


def test_small_caller_tensors_are_in_l3_and_weights_in_dram() -> None:
    # The seed: a 64 MiB weight matrix comes from DRAM; the vector and result stay cached.
    seed = matmul_spec(1, 2048, 16384, (BF16, BF16, F32), (ROW, COL, ROW))
    assert _levels(seed) == (Level.L3, Level.GL, Level.L3)
    # f32 1024³: three 4 MiB matrices; the L3 share takes the first two, smallest first.
    square = matmul_spec(1024, 1024, 1024, (F32, F32, F32))
    assert 2 * square.operands[0].bytes <= L3_BYTES < 3 * square.operands[0].bytes
    assert _levels(square) == (Level.L3, Level.L3, Level.GL)
    assert _levels(matmul_spec(64, 64, 64, (F32, F32, F32))) == (Level.L3,) * 3


def _at(spec: Spec, level: Level) -> Spec:
    return replace(spec, operands=tuple(replace(t, level=level) for t in spec.operands))


def _promote_cost(spec: Spec, child_cost: float) -> tuple[float, float]:
    """The Promote's cost with a child costing ``child_cost``, and the lines it fetches."""
    (child,) = expand(spec, Promote())
    fetched = sum(
        line_cost(t) for t, u in zip(spec.operands, child.operands, strict=True) if t != u
    )
    return action_cost(spec, Promote(), (child,), (child_cost,), 1), fetched


@pytest.mark.parametrize("source", [Level.L3, Level.L2])
def test_a_fetch_from_a_cache_overlaps_the_work(source: Level) -> None:
    spec = _at(matmul_spec(6, 64, 16, (F32, F32, F32)), source)
    cost, fetched = _promote_cost(spec, 1_000.0)
    assert 0 < fetched < 1_000.0
    assert cost == 1_000.0  # compute-bound: the lines arrive while it works
    cost, fetched = _promote_cost(spec, 1.0)
    assert cost == fetched  # bound by the fetch


def test_a_fetch_from_dram_is_charged_in_full() -> None:
    spec = _at(matmul_spec(6, 64, 16, (F32, F32, F32)), Level.GL)
    cost, fetched = _promote_cost(spec, 1_000.0)
    assert fetched > 0 and cost == fetched + 1_000.0
    assert RATES.line_cycles(Level.GL) > RATES.line_cycles(Level.L3) > 0
    assert RATES.stream_start_cycles(Level.GL) > RATES.stream_start_cycles(Level.L3) > 0


def test_short_runs_pay_their_stream_starts_in_proportion() -> None:
    # Runs as long as the ones calibration measures pay a whole start each.
    rows = STREAM_RUN_BYTES // 4
    long_runs = TensorSpec((4, rows), F32, ROW, Level.GL, contiguous=False)
    starts = RATES.dram_stream_start_cycles
    assert line_cost(long_runs) == pytest.approx(
        4 * (rows // 16) * RATES.dram_line_cycles + 4 * starts
    )
    # A 6x16 tile of a wide f32 matrix, the output of a register block: six one-line runs
    # in flight together pay six 32nds of a start, not six starts.
    block = TensorSpec((6, 16), F32, ROW, Level.GL, contiguous=False)
    assert runs(block) == 6 and block.lines() == 6
    assert line_cost(block) == pytest.approx(6 * RATES.dram_line_cycles + 6 / 32 * starts)
    # Fewer runs of the same lines never cost more.
    assert line_cost(TensorSpec((1, 96), F32, ROW, Level.GL)) <= line_cost(block)


def _split_cost(spec: Spec, tile: Tile) -> float:
    """What the loop ``tile`` adds over its bodies, each body costing nothing."""
    children = expand(spec, tile)
    assert children is not None
    return action_cost(spec, tile, children, [0.0] * len(children), 1)


def test_cutting_a_block_of_dram_across_its_runs_pays_a_stream_per_piece() -> None:
    # A block of 32 columns of B (col-major, each column one run of 2048 bf16) made
    # resident from DRAM: the Promote prices it read front to back, as one stream.
    spec = matmul_spec(4, 2048, 32, (BF16, BF16, F32), (ROW, COL, ROW), accumulate=True)
    resident = promotion(spec.with_operand(1, replace(spec.operands[1], level=Level.GL)))
    assert resident is not None
    block = resident.operands[1]
    assert block.level == Level.L2 and block.from_dram and runs(block) == 1
    assert "L2<-GL" in str(block)
    # Halving K reads half a column at a time: 2 x 32 streams where there was one.
    halves = _split_cost(resident, Tile(Dim.K, 1024))
    assert halves == 1 * LOOP_ITERATION_CYCLES * 2 + 63 * RATES.dram_stream_start_cycles
    # Column tiles follow each other in memory: the one stream goes on.
    assert _split_cost(resident, Tile(Dim.N, 2)) == 16 * LOOP_ITERATION_CYCLES
    # A tile already in a cache costs no streams however it is cut.
    cached = replace(
        resident, operands=tuple(replace(t, from_dram=False) for t in resident.operands)
    )
    assert _split_cost(cached, Tile(Dim.K, 1024)) == 2 * LOOP_ITERATION_CYCLES


def _b_tile(rows: int) -> Spec:
    """A 6 x rows x 16 matmul whose B is a strided tile (16 of a wider row-major matrix's
    columns): ``rows`` runs of one line each."""
    a = TensorSpec((6, rows), F32, ROW, Level.L2)
    b = TensorSpec((rows, 16), F32, ROW, Level.L3, contiguous=False)
    c = TensorSpec((6, 16), F32, ROW, Level.L2, contiguous=False)
    limits = AVX2_LIMITS._replace(l1=0)  # only L2 is on offer
    return Spec(Op.MATMUL, (a, b, c), limits, True)


def test_l2_holds_a_strided_tile_only_up_to_its_safe_runs() -> None:
    fits = promotion(_b_tile(L2_SAFE_RUNS))
    assert fits is not None and fits.operands[1].level == Level.L2
    assert promotion(_b_tile(2 * L2_SAFE_RUNS)) is None  # it must be packed by a Move


def test_l1_holds_a_strided_tile_only_up_to_its_ways() -> None:
    def spec(rows: int) -> Spec:
        a = TensorSpec((rows, 8), F32, ROW, Level.L3, contiguous=False)
        b = TensorSpec((8, 8), F32, ROW, Level.L3)
        c = TensorSpec((rows, 8), F32, ROW, Level.L3, contiguous=False)
        return Spec(Op.MATMUL, (a, b, c), AVX2_LIMITS, True)

    assert _levels(promotion(spec(L1_WAYS))) == (Level.L1,) * 3
    assert Level.L1 not in _levels(promotion(spec(L1_WAYS + 1)))


def test_packing_rows_into_panels_moves_vectors_and_a_transpose_moves_elements() -> None:
    def copy_cycles(src_layout) -> float:
        src = TensorSpec((64, 32), F32, src_layout, Level.L2)
        dst = TensorSpec((64, 32), F32, Packed(16), Level.L1)
        spec = Spec(Op.MOVE, (src, dst), AVX2_LIMITS, True)
        return kernel_cost(Kernel(KernelKind.COPY), spec) - line_cost(src) - line_cost(dst)

    assert copy_cycles(ROW) == 64 * 32 / 8 * COPY_CYCLES_PER_VECTOR  # panel by panel
    assert copy_cycles(COL) == 64 * 32 * COPY_CYCLES_PER_ELEMENT


def test_rows_sharing_each_block_of_b_cost_less_than_a_dot_per_row() -> None:
    a = TensorSpec((4, 2048), F32, EVEN_ODD, Level.L1)
    b = TensorSpec((2048, 1), BF16, COL, Level.L1)
    c = TensorSpec((4, 1), F32, ROW, Level.L1, contiguous=False)
    spec = Spec(Op.MATMUL, (a, b, c), AVX2_LIMITS, True)
    rows = kernel_cost(Kernel(KernelKind.DOT_BLOCK, DotMode.EVEN_ODD), spec)
    each = kernel_cost(Kernel(KernelKind.DOT, DotMode.EVEN_ODD, 4), spec)
    assert rows < each  # B is loaded and split once per block for all four rows
    assert rows >= 2048 / 16 * 2 * 4 / RATES.fma_per_cycle  # never faster than the FMA pipes


def test_weights_from_dram_are_never_taken_to_stay_in_l3() -> None:
    kv = (1, 2048, 256)  # 1 MiB of bf16 weights: fits the L3 share
    assert _levels(matmul_spec(*kv, (F32, BF16, F32), (ROW, COL, ROW)))[1] == Level.L3
    cold = matmul_spec(*kv, (F32, BF16, F32), (ROW, COL, ROW), b_from_dram=True)
    assert _levels(cold) == (Level.L3, Level.GL, Level.L3)


def _matvec(k: int, n: int, a_level: Level) -> Spec:
    a = TensorSpec((1, k), F32, EVEN_ODD, a_level)
    b = TensorSpec((k, n), BF16, COL, Level.GL)
    c = TensorSpec((1, n), F32, ROW, Level.L1)
    return Spec(Op.MATMUL, (a, b, c), AVX2_LIMITS, True)


def test_a_dot_per_output_pays_for_re_reading_a_long_vector_from_l2() -> None:
    dot = Kernel(KernelKind.DOT, DotMode.EVEN_ODD, 2)
    long, short = _matvec(16384, 4, Level.L2), _matvec(1024, 4, Level.L2)
    # 64 KiB of A read 4 times: 3 re-reads of its lines from L2; 4 KiB stays in L1.
    lines = long.operands[0].lines()
    in_l1 = kernel_cost(dot, replace(long, operands=(_at_l1(long.operands[0]), *long.operands[1:])))
    assert kernel_cost(dot, long) - in_l1 == pytest.approx(lines * 2.0 + 3 * lines * 2.0)
    in_l1 = kernel_cost(
        dot, replace(short, operands=(_at_l1(short.operands[0]), *short.operands[1:]))
    )
    assert kernel_cost(dot, short) - in_l1 == pytest.approx(line_cost(short.operands[0]))
    # A dot block reads A once for its four columns, and costs less.
    assert kernel_cost(Kernel(KernelKind.DOT_BLOCK, DotMode.EVEN_ODD), long) < kernel_cost(
        dot, long
    )


def _at_l1(t: TensorSpec) -> TensorSpec:
    return replace(t, level=Level.L1)


def test_several_long_streams_from_dram_are_priced_at_their_own_rate() -> None:
    rates = replace(RATES, dram_line_cycles=10.0, dram_streams_line_cycles=8.0)
    b = TensorSpec((2048, 64), BF16, COL, Level.GL)
    one = concurrent_line_cost(b, 1, 1 << 20, rates)
    assert one == line_cost(b, rates)
    assert concurrent_line_cost(b, 4, 16 * 1024, rates) == pytest.approx(one - 2.0 * b.lines())
    assert concurrent_line_cost(b, 4, 4 * 1024, rates) == one  # runs too short to ramp up
    cached = replace(b, level=Level.L2)
    assert concurrent_line_cost(cached, 4, 1 << 20, rates) == line_cost(cached, rates)
    fetched = replace(cached, from_dram=True)  # resident, but read from DRAM under it
    assert concurrent_line_cost(fetched, 4, 1 << 20, rates) < line_cost(fetched, rates)


def test_a_dot_block_in_streams_reads_runs_of_columns_side_by_side() -> None:
    spec = _matvec(2048, 64, Level.L1)
    streams = Kernel(KernelKind.DOT_BLOCK, DotMode.EVEN_ODD, streams=4)
    offered = kernels_for(spec)
    assert streams in offered
    assert Kernel(KernelKind.DOT_BLOCK, DotMode.EVEN_ODD) not in offered  # 64 outputs at once
    # 4 streams of 16 consecutive 4 KiB columns: 64 KiB runs, priced as concurrent streams.
    assert kernel_cost(streams, spec) < kernel_cost(
        Kernel(KernelKind.DOT, DotMode.EVEN_ODD, 4), spec
    )
