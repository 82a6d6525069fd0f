"""Layouts: offset formulas, their C expressions, and which tiles keep them relative."""

from __future__ import annotations

import itertools

import pytest

from morello.core.layout import COL, EVEN_ODD, ROW, Packed, RowMajor, add, mul

LAYOUTS = [ROW, COL, EVEN_ODD, Packed(8), Packed(16)]


def _ld(layout, shape):
    return layout.dense_ld(shape)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_dense_buffer_is_a_bijection(layout) -> None:
    shape = (5, 40)
    ld = _ld(layout, shape)
    offsets = {layout.offset(i, j, ld) for i in range(shape[0]) for j in range(shape[1])}
    assert len(offsets) == shape[0] * shape[1]
    assert min(offsets) == 0 and max(offsets) < layout.buffer_elems(shape)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_expression_matches_formula(layout) -> None:
    ld = _ld(layout, (6, 48))
    for i, j in itertools.product(range(6), range(48)):
        for i_text, j_text in ((str(i), str(j)), ("i", "j")):
            expr = layout.offset_expr(i_text, j_text, str(ld))
            value = eval(expr.replace("/", "//"), {"i": i, "j": j})  # C integer division
            assert value == layout.offset(i, j, ld), (expr, i, j)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("step", [1, 4, 8, 16, 32])
def test_tiles_are_translation_invariant(layout, step: int) -> None:
    """A tile at column j0 (a multiple of the step) addresses (i, j) at
    offset(i0, j0) + tile_layout.offset(i, j), whenever ``tile`` allows it."""
    shape = (4, 64)
    ld = _ld(layout, shape)
    tile_layout = layout.tile(step, step)
    if tile_layout is None:
        return
    tile_ld = (
        layout.width if isinstance(tile_layout, RowMajor) and isinstance(layout, Packed) else ld
    )
    for i0, j0 in itertools.product(range(0, 4, 2), range(0, 64, step)):
        base = layout.offset(i0, j0, ld)
        for i, j in itertools.product(range(2), range(step)):
            assert layout.offset(i0 + i, j0 + j, ld) == base + tile_layout.offset(i, j, tile_ld)


def test_even_odd_interleaves_blocks_of_sixteen() -> None:
    row = [EVEN_ODD.offset(0, j, 16) for j in range(16)]
    assert row == [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15]
    assert EVEN_ODD.tile(8, 8) is None  # a tile would split a block
    assert EVEN_ODD.dense_ld((1, 20)) == 32  # rows pad to whole blocks


def test_expression_folding() -> None:
    assert mul("0", "n") == "0" and mul("1", "n") == "n" and mul("3", "4") == "12"
    assert mul("a + b", "4") == "(a + b) * 4"
    assert add("0", "k", "8", "8") == "k + 16" and add("0", "0") == "0"
