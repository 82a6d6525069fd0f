"""Rewrites: the ways a Spec decomposes into smaller Specs.

Each action is a small immutable value; ``expand`` is a pure function from (Spec, action)
to the sub-Specs it introduces, in program order. ``actions`` lists every rewrite that
applies to a Spec. Nothing here knows costs: the search combines them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

from morello.core.dtypes import Dtype
from morello.core.kernels import (
    DOT_MAX_REGISTERS,
    OUTER_FMA_TEMPORARIES,
    Kernel,
    kernels_for,
)
from morello.core.layout import CACHE_LINE, COL, EVEN_ODD, ROW, Layout, Packed
from morello.core.spec import Op, Spec, TensorSpec, runs, tile_tensor
from morello.core.target import F32_LANES, L1_WAYS, L2_SAFE_RUNS, Level, MemoryLimits

A, B, C = 0, 1, 2


class Dim(enum.Enum):
    M = "m"
    N = "n"
    K = "k"

    def extent(self, spec: Spec) -> int:
        m, k, n = spec.mkn
        return m if self is Dim.M else n if self is Dim.N else k


@dataclass(frozen=True, slots=True)
class Tile:
    """Loop over tiles of ``size`` along M or N (output tiling, serial or parallel), or K
    (reduction split). A dimension the size does not divide gets a boundary tile."""

    dim: Dim
    size: int
    parallel: bool = False

    def __str__(self) -> str:
        kind = "parallel tile" if self.parallel else ("split" if self.dim == Dim.K else "tile")
        return f"{kind} {self.dim.value}={self.size}"

    def loop(self, spec: Spec) -> Loop:
        trips, remainder = divmod(self.dim.extent(spec), self.size)
        return Loop(self.dim, self.size, self.parallel, trips, remainder)


class Loop(NamedTuple):  # a tuple: the search builds millions, and tuples build fastest
    """A Tile applied to a Spec: the loop it becomes. The one place its trip count and its
    boundary tile are derived; the search, the cost model, codegen and re-ranking read them
    here."""

    dim: Dim
    size: int
    parallel: bool
    trips: int  # iterations over full tiles
    remainder: int  # the boundary tile's extent, 0 when the size divides the extent

    @property
    def covered(self) -> int:
        """Where the full tiles end and the boundary tile starts."""
        return self.trips * self.size

    @property
    def tasks(self) -> int:
        """Tiles in all, the boundary one included: a parallel loop's task count."""
        return self.trips + (self.remainder > 0)


@dataclass(frozen=True, slots=True)
class ToAccum:
    """C = A·B becomes C = 0; C += A·B."""

    def __str__(self) -> str:
        return "to-accum"


@dataclass(frozen=True, slots=True)
class Move:
    """Copy an operand into a new buffer at a faster level, with a layout and a dtype of
    its own: packing, permuting into even/odd order, widening bf16 to f32, or holding an
    output tile in vector registers."""

    operand: int
    level: Level
    layout: Layout
    dtype: Dtype

    def __str__(self) -> str:
        return f"move {'ABC'[self.operand]} to {self.level} {self.dtype.value} {self.layout}"


@dataclass(frozen=True, slots=True)
class Promote:
    """Operands whose tiles fit a cache level are served from it from here on: their lines
    are fetched once, not at every touch below. Not a choice, to keep the space small:
    it is the only rewrite of a Spec where it applies. That prunes some programs (an
    operand resident in L1 is no longer copied into a new layout), a known limit of the
    space, not of the search."""

    def __str__(self) -> str:
        return "resident"


Action = Tile | ToAccum | Move | Promote | Kernel


@dataclass(frozen=True, slots=True)
class Refused:
    """Why ``expand`` cannot apply an action to a Spec (``actions`` offers a few such)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


# Refusals are constants: the search meets them millions of times.
NO_TILE = Refused("the tile cuts an operand's layout across its blocks or packed panels")
NO_BOUNDARY = Refused("the boundary tile cuts an operand's layout across its blocks")
NOTHING_TO_PROMOTE = Refused("no operand fits a faster cache than the one it is in")


MAX_THIRDS_TILE = 48  # beyond register blocks, powers of two serve caches as well


@lru_cache(maxsize=4096)
def tile_sizes(extent: int, *, thirds: bool = True) -> tuple[int, ...]:
    """Candidate tile sizes below ``extent``: powers of two and, for output dimensions,
    three times powers of two (register blocks of 3 or 6 rows, of 3 vectors)."""
    sizes = set()
    p = 1
    while p < extent:
        sizes.add(p)
        if thirds and 3 * p < min(extent, MAX_THIRDS_TILE):
            sizes.add(3 * p)
        p *= 2
    return tuple(sorted(sizes))


def _tile_operands(
    spec: Spec, dim: Dim, size: int, step: int
) -> tuple[TensorSpec, TensorSpec, TensorSpec] | None:
    a, b, c = spec.operands
    m, k, n = spec.mkn
    match dim:
        case Dim.M:
            new = (tile_tensor(a, size, k, k), b, tile_tensor(c, size, n, n))
        case Dim.N:
            new = (a, tile_tensor(b, k, size, step), tile_tensor(c, m, size, step))
        case Dim.K:
            new = (tile_tensor(a, m, size, step), tile_tensor(b, size, n, n), c)
    if None in new:
        return None
    return new  # type: ignore[return-value]


def _tile_children(
    spec: Spec, tile: Tile, limits: Callable[[tuple[TensorSpec, ...], MemoryLimits], MemoryLimits]
) -> tuple[Spec, ...] | Refused:
    """A Tile's sub-Specs (the full tile's, then the boundary tile's), each with the
    budget ``limits`` gives its operands: the parent's, or capped."""
    dim, size = tile.dim, tile.size
    full = _tile_operands(spec, dim, size, size)
    if full is None:
        return NO_TILE
    serial = spec.serial or tile.parallel
    op = spec.op
    body = Spec(op, full, limits(full, spec.limits), serial)
    remainder = dim.extent(spec) % size
    if not remainder:
        return (body,)
    boundary = _tile_operands(spec, dim, remainder, size)
    if boundary is None:
        return NO_BOUNDARY
    return (body, Spec(op, boundary, limits(boundary, spec.limits), serial))


def expand(spec: Spec, action: Action) -> tuple[Spec, ...] | Refused:
    """The sub-Specs ``action`` decomposes ``spec`` into, in program order, or why it
    cannot; each sub-Spec ``canonical``, as the search memoizes it."""
    if type(action) is Tile:  # most rewrites: built capped at once
        return _tile_children(spec, action, _capped)
    children = expand_raw(spec, action)
    if isinstance(children, Refused):
        return children
    return tuple(map(canonical, children))


def canonical(spec: Spec) -> Spec:
    """Cap the budgets at what the Spec's subtree could ever use, so that Specs reached
    with more room than they can use share one memo entry.

    Each cap is a budget under which every check of that level anywhere below ``spec``
    passes: ``_cap`` of every buffer that can be placed in the level below it, each as
    large as it can get. At or above its cap no check tells two budgets apart, and a
    budget below its cap is left as it is, so capping changes no rewrite offered anywhere
    below (tests/test_canonical.py walks both spaces in lockstep). Registers: C's tile
    once moved into them, and the kernels' own (``_vrf_need``).
    """
    if not spec.is_matmul:
        # Zero and Move are single kernels that allocate nothing.
        return spec if spec.limits == NO_BUDGET else replace(spec, limits=NO_BUDGET)
    limits = _capped(spec.operands, spec.limits)
    return spec if limits is spec.limits else Spec(spec.op, spec.operands, limits, spec.serial)


def _capped(operands: tuple[TensorSpec, ...], limits: MemoryLimits) -> MemoryLimits:
    """``limits`` capped for a matmul of these operands (``canonical``); the same object
    when no cap applies."""
    vrf, l1, l2_without_copies, l2_with_copies = _caps(operands)
    # ``_moves`` puts a copy in L2 only when L1 cannot take it. With L1 at or above its
    # cap no L1 check below fails (the first to fail would follow only allocations the
    # cap counts), so no copy goes to L2. Below its cap L1 is left as it is, and a copy
    # may go to L2: count it there.
    l2 = l2_without_copies if limits.l1 >= l1 else l2_with_copies
    if limits.vrf <= vrf and limits.l1 <= l1 and limits.l2 <= l2:
        return limits
    return MemoryLimits(min(limits.vrf, vrf), min(limits.l1, l1), min(limits.l2, l2))


@lru_cache(maxsize=1 << 16)
def _caps(operands: tuple[TensorSpec, ...]) -> tuple[int, int, int, int]:
    """The caps of a matmul's budgets, which depend on its operands alone: registers,
    L1, and L2 when L1 is at its cap or below it (``canonical``)."""
    copies, promotions, working_set = _allocations(operands)
    return (
        _vrf_need(operands[C]),
        _cap([*copies, working_set]),
        _cap(promotions),
        _cap([*promotions, *copies]),
    )


NO_BUDGET = MemoryLimits(0, 0, 0)


def _allocations(operands: tuple[TensorSpec, ...]) -> tuple[list[int], list[int], int]:
    """The buffers a path below ``spec`` may allocate in a cache, at most one of each,
    in bytes as large as they can get there (tiles only shrink; ``_largest_footprint``):

    - copies: one per input ``_moves`` may copy, in L1 or L2, the largest of ``_copies``;
    - promotions: into L2, each operand not yet in L2, one by one;
    - the working set: into L1 at once, every operand not yet in L1 (as at most: an input
      copied to L1 leaves it; one copied to L2, which happens only while L1 is short of
      this cap, joins it as its copy, see ``canonical``).
    """
    copies, promotions = [], []
    working_set = 0
    for index, t in enumerate(operands):
        if t.level >= Level.L1:
            continue
        if index != C and _copyable(t):
            copies.append(max(new.bytes for new in _copies(index, t, operands[B].dtype)))
        if t.level < Level.L2:
            promotions.append(_largest_footprint(t))
        working_set += _largest_footprint(t)
    return copies, promotions, working_set


def _cap(allocations: list[int]) -> int:
    """The least budget that takes these allocations one after another, in any order,
    each checked against what is left (``MemoryLimits.minus`` rounds that down to a power
    of two: every allocation can halve a budget). Allocating the largest last needs most,
    and a subset needs no more than the whole."""
    need = 0
    for amount in sorted(allocations, reverse=True):
        if amount > 0:
            need = _ceil_pow2(amount + need)
    return need


def _largest_footprint(t: TensorSpec) -> int:
    """The most cache any tile of ``t`` occupies: a strided tile spans whole lines per
    run, which can be more than a dense one's."""
    return t.layout.lines(t.shape, t.dtype.size, False) * CACHE_LINE


def _vrf_need(c: TensorSpec) -> int:
    """The most vector registers any check below ``spec`` asks for, allocations included:
    holding C (or a tile of it) in registers, then the outer-product kernel's row of C
    and its broadcast; or the dot kernel's accumulators and temporaries."""
    row = -(-c.shape[1] // F32_LANES) + OUTER_FMA_TEMPORARIES
    if c.level == Level.VRF:
        return row
    return max(c.registers + row, DOT_MAX_REGISTERS)


def _ceil_pow2(x: int) -> int:
    return 0 if x <= 0 else 1 << (x - 1).bit_length()


def expand_raw(spec: Spec, action: Action) -> tuple[Spec, ...] | Refused:
    """``expand`` without ``canonical``: the sub-Specs with the budgets the rewrite leaves
    them, as a reference that does not depend on the caps."""
    match action:
        case Kernel():
            return ()
        case Tile():
            return _tile_children(spec, action, _as_given)
        case ToAccum():
            c = spec.operands[C]
            zero = Spec(Op.ZERO, (c,), spec.limits, spec.serial)
            return (zero, replace(spec, op=Op.MATMUL_ACCUM))
        case Promote():
            promoted = promotion(spec)
            return NOTHING_TO_PROMOTE if promoted is None else (promoted,)
        case Move(index, level, layout, dtype):
            t = spec.operands[index]
            new = TensorSpec(t.shape, dtype, layout, level, contiguous=True, owned=True)
            amount = new.registers if level == Level.VRF else new.bytes
            body = replace(spec.with_operand(index, new), limits=spec.limits.minus(level, amount))
            steps = []
            if index != C or spec.op == Op.MATMUL_ACCUM:
                steps.append(Spec(Op.MOVE, (t, new), body.limits, spec.serial))
            steps.append(body)
            if index == C:
                steps.append(Spec(Op.MOVE, (new, t), body.limits, spec.serial))
            return tuple(steps)
    raise AssertionError(action)


@lru_cache(maxsize=1 << 14)
def _tiles(m: int, n: int, k: int, parallel: bool) -> tuple[Tile, ...]:
    """The tilings of a matmul: of M and N if ``m`` is not 0 (C is not in registers yet),
    each also in parallel if ``parallel``; splits of K if ``k`` is not 0 (accumulating)."""
    tiles = []
    if m:
        for dim, extent in ((Dim.M, m), (Dim.N, n)):
            for size in tile_sizes(extent):
                tiles.append(Tile(dim, size))
                if parallel:
                    tiles.append(Tile(dim, size, parallel=True))
    if k:
        tiles.extend(Tile(Dim.K, size) for size in tile_sizes(k, thirds=False))
    return tuple(tiles)


def _as_given(operands: tuple[TensorSpec, ...], limits: MemoryLimits) -> MemoryLimits:
    return limits


def actions(spec: Spec, threads: int) -> Iterator[Action]:
    """Every rewrite applicable to ``spec``; ``expand`` may still refuse a tiling that the
    operands' layouts cannot express."""
    if not spec.is_matmul:
        yield from kernels_for(spec)
        return
    if promotion(spec) is not None:
        yield Promote()
        return
    yield from kernels_for(spec)
    if spec.op == Op.MATMUL:
        yield ToAccum()
    m, k, n = spec.mkn
    c_in_registers = spec.operands[C].level == Level.VRF
    accumulates = spec.op == Op.MATMUL_ACCUM
    parallel = threads > 1 and not spec.serial
    yield from _tiles(0 if c_in_registers else m, n, k if accumulates else 0, parallel)
    yield from _moves(spec)


def footprint(t: TensorSpec) -> int:
    """Bytes of cache a tile occupies: whole lines."""
    return t.lines() * CACHE_LINE


def promotion(spec: Spec) -> Spec | None:
    """``spec`` with its operands moved to the caches they fit, or None if nothing moves.

    L1 takes the whole working set or nothing: a tile that fits only beside nothing else
    would be evicted by the others' traffic. L2 takes operands one by one, smallest first.
    Registers are never promoted into: that takes a Move.
    """
    operands = list(spec.operands)
    limits = spec.limits
    outside = [i for i, t in enumerate(operands) if t.level < Level.L1]
    working_set = sum(footprint(operands[i]) for i in outside)
    if outside and working_set <= limits.l1 and all(runs(operands[i]) <= L1_WAYS for i in outside):
        limits = limits.minus(Level.L1, working_set)
        for i in outside:
            operands[i] = _resident(operands[i], Level.L1)
    for index in sorted(range(len(operands)), key=lambda i: footprint(operands[i])):
        t = operands[index]
        if t.level < Level.L2 and footprint(t) <= limits.l2 and runs(t) <= L2_SAFE_RUNS:
            limits = limits.minus(Level.L2, footprint(t))
            operands[index] = _resident(t, Level.L2)
    if operands == list(spec.operands):
        return None
    return replace(spec, operands=tuple(operands), limits=limits)


def _resident(t: TensorSpec, level: Level) -> TensorSpec:
    """``t`` served from a cache level; a tile of DRAM is fetched as the code touches it."""
    return replace(t, level=level, from_dram=t.from_dram or t.level == Level.GL)


def _moves(spec: Spec) -> Iterator[Move]:
    room = spec.limits.capacity(Level.L1)
    l2_room = spec.limits.capacity(Level.L2)
    for index in (A, B):
        t = spec.operands[index]
        if not _copyable(t):
            continue
        for new in _copies(index, t, spec.operands[B].dtype):
            changes = type(new.layout) is not type(t.layout) or new.dtype != t.dtype
            if t.contiguous and not changes:
                continue  # nothing to gain from a plain copy of a dense tile
            if new.bytes <= room:
                yield Move(index, Level.L1, new.layout, new.dtype)
            elif new.bytes <= l2_room:
                # Too big for L1, e.g. a whole even/odd vector of a long K: a buffer
                # in L2 beats splitting K into strided passes over B.
                yield Move(index, Level.L2, new.layout, new.dtype)
    c = spec.operands[C]
    if c.level != Level.VRF and c.dtype == Dtype.F32 and c.registers <= spec.limits.vrf:
        yield Move(C, Level.VRF, ROW, Dtype.F32)


def _copyable(t: TensorSpec) -> bool:
    """An input ``_moves`` may copy: the caller's tensor, and only what is not in L1."""
    return not t.owned and t.level < Level.L1


def _copies(index: int, t: TensorSpec, b_dtype: Dtype) -> Iterator[TensorSpec]:
    """Every buffer ``_moves`` may copy input ``index`` (tile ``t``) into, as an L1 buffer
    (the Move picks L1 or L2): its layouts, in its own dtype or widened to f32."""
    for layout in _copy_layouts(index, t):
        for dtype in (t.dtype,) if t.dtype == Dtype.F32 else (t.dtype, Dtype.F32):
            # Only the dot kernel reads even/odd A, and only against bf16 B.
            if layout is EVEN_ODD and (dtype != Dtype.F32 or b_dtype != Dtype.BF16):
                continue
            yield TensorSpec(t.shape, dtype, layout, Level.L1)


def _copy_layouts(index: int, t: TensorSpec) -> tuple[Layout, ...]:
    if index == A:
        return (ROW, COL, EVEN_ODD)
    return (ROW, COL, Packed(16)) if t.shape[1] > 16 else (ROW, COL)
