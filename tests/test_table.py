"""The memo table's representation (``morello/table.py``): points, action encodings, and
regions whose merging never changes an answer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from morello.core.memo import InMemoryMemo
from morello.core.rewrites import actions, canonical
from morello.core.search import synthesize
from morello.core.spec import matmul_problem
from morello.store.table import Regions, decode_action, encode_action, locate, page_of


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Distinct points in a small box, each with one of a few actions: few actions so that
    merges happen, a small box so that neighbours exist."""
    dims = draw(st.integers(1, 4))
    extent = draw(st.integers(1, 6))
    box = list(itertools.product(range(extent), repeat=dims))
    chosen = draw(st.lists(st.sampled_from(box), min_size=1, max_size=len(box), unique=True))
    actions_ = draw(st.lists(st.integers(0, 2), min_size=len(chosen), max_size=len(chosen)))
    return np.array(chosen, np.int64).reshape(-1, dims), np.array(actions_, np.int64)


@settings(max_examples=300, deadline=None)
@given(point_sets())
def test_merging_keeps_every_answer_and_adds_none(points: tuple[np.ndarray, np.ndarray]) -> None:
    coords, acts = points
    merged = Regions.of_points(coords, acts).merged()
    assert merged.specs == len(coords)  # no point gained, none counted twice
    for c, a in zip(coords, acts, strict=True):
        assert merged.find(tuple(c)) == a
    dims = coords.shape[1]
    stored = {tuple(c) for c in coords}
    for c in itertools.product(range(7), repeat=dims):
        if c not in stored:
            assert merged.find(c) is None
    assert len(merged) <= len(coords)


@settings(max_examples=100, deadline=None)
@given(point_sets(), st.integers(0, 3))
def test_merging_in_pieces_equals_merging_at_once(
    points: tuple[np.ndarray, np.ndarray], cut: int
) -> None:
    """The file merges new points into regions already merged: the answers must not depend
    on how the points arrived."""
    coords, acts = points
    first = Regions.empty(coords.shape[1]).add(coords[cut:], acts[cut:])
    both = first.add(coords[:cut], acts[:cut])
    again = both.add(coords, acts)  # every point a second time, as from a second writer
    for c, a in zip(coords, acts, strict=True):
        assert both.find(tuple(c)) == a
        assert again.find(tuple(c)) == a
    assert both.specs == again.specs == len(coords)  # regions stay disjoint
    assert np.array_equal(both.covers(coords), np.ones(len(coords), bool))


@settings(max_examples=100, deadline=None)
@given(point_sets())
def test_regions_round_trip_through_bytes(points: tuple[np.ndarray, np.ndarray]) -> None:
    coords, acts = points
    merged = Regions.of_points(coords, acts).merged()
    back = Regions.from_bytes(merged.to_bytes(), coords.shape[1])
    assert np.array_equal(back.lo, merged.lo)
    assert np.array_equal(back.hi, merged.hi)
    assert np.array_equal(back.action, merged.action)


def test_a_dense_block_of_one_action_is_one_region() -> None:
    coords = np.array(list(itertools.product(range(5), range(3), range(4))), np.int64)
    merged = Regions.of_points(coords, np.zeros(len(coords), np.int64)).merged()
    assert len(merged) == 1
    assert merged.lo.tolist() == [[0, 0, 0]] and merged.hi.tolist() == [[4, 2, 3]]


def test_fixed_coordinates_are_never_merged_along() -> None:
    coords = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.int64)
    merged = Regions.of_points(coords, np.zeros(4, np.int64)).merged(fixed=1)
    assert sorted(merged.lo[:, 0].tolist()) == [0, 1]
    assert len(merged) == 2


@pytest.mark.parametrize(
    ("shape", "dtypes", "layouts", "threads"),
    [
        ("6x12x20", "f32,f32,f32", "row,row,row", 1),
        ("2x40x24", "bf16,bf16,f32", "row,col,row", 1),
        ("8x16x32", "f32,bf16,f32", "col,col,col", 2),
    ],
)
def test_every_action_of_a_search_round_trips_as_text(
    shape: str, dtypes: str, layouts: str, threads: int
) -> None:
    memo = InMemoryMemo()
    synthesize(
        canonical(matmul_problem(shape, dtypes, layouts, threads=threads)),
        threads=threads,
        memo=memo,
    )
    seen = 0
    for (spec, _), _sol in memo._table.items():
        for action in actions(spec, threads):
            assert decode_action(encode_action(action)) == action
            seen += 1
    assert seen > 100
    assert decode_action(encode_action(None)) is None


def test_points_separate_what_tables_must_and_share_what_they_can() -> None:
    a = canonical(matmul_problem("4x8x16", "f32,f32,f32"))
    b = canonical(matmul_problem("5x8x16", "f32,f32,f32"))
    c = canonical(matmul_problem("4x8x16", "bf16,bf16,f32"))
    d = canonical(matmul_problem("4x8x16", "f32,f32,f32", threads=2))
    pa, pb, pc, pd = locate(a, 1), locate(b, 1), locate(c, 1), locate(d, 2)
    assert pa.table == pb.table and pa.coords[1:3] == pb.coords[1:3]
    assert pb.coords[0] == pa.coords[0] + 1 == 4
    assert pc.table != pa.table and pd.table != pa.table
    assert "threads=2" in pd.table
    assert all(x >= 0 for x in pa.coords)


def test_pages_cut_only_above_64() -> None:
    assert page_of((0, 63, 17)) == page_of((5, 0, 63)) == 0
    assert page_of((64,)) != page_of((63,))
    assert page_of((64,)) == page_of((127,)) != page_of((128,))


def test_unknown_encodings_are_refused() -> None:
    for text in ("tile q 4", "kernel nope - 1", "move 0 GL wavy f32", "frobnicate"):
        with pytest.raises(ValueError):
            decode_action(text)
