"""Rewrites name what they build: a Tile's loop, and why an action cannot apply."""

from __future__ import annotations

from dataclasses import replace

from morello.core.dtypes import Dtype
from morello.core.layout import ROW, Packed
from morello.core.rewrites import NO_TILE, Dim, Refused, Tile, expand
from morello.core.spec import matmul_spec

F32 = (Dtype.F32, Dtype.F32, Dtype.F32)


def test_a_tile_s_loop_has_its_trips_boundary_and_tasks() -> None:
    spec = matmul_spec(4, 8, 40, F32)
    loop = Tile(Dim.N, 16, parallel=True).loop(spec)
    assert (loop.trips, loop.covered, loop.remainder, loop.tasks) == (2, 32, 8, 3)
    even = Tile(Dim.N, 8).loop(spec)
    assert (even.trips, even.remainder, even.tasks) == (5, 0, 5)
    # expand builds exactly the loop's children: a full tile, then the boundary tile.
    full, boundary = expand(spec, Tile(Dim.N, 16))
    assert full.mkn == (4, 8, 16) and boundary.mkn == (4, 8, loop.remainder)
    assert len(expand(spec, Tile(Dim.N, 8))) == 1


def test_expand_says_why_it_refuses() -> None:
    spec = matmul_spec(4, 8, 48, F32)
    b = spec.operands[1]
    packed = spec.with_operand(1, replace(b, layout=Packed(16), owned=True))
    # A 24-column tile of 16-column panels straddles a panel boundary.
    refused = expand(packed, Tile(Dim.N, 24))
    assert isinstance(refused, Refused) and refused == NO_TILE
    assert "panels" in str(refused)
    assert not isinstance(expand(packed, Tile(Dim.N, 32)), Refused)
    assert spec.operands[0].layout == ROW
