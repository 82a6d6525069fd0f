"""The memo table's representation: Specs are points, solutions are rectangles.

A Spec splits into a discrete part and an integer part. The discrete part (operation,
serial or its thread count, and each operand's dtype, layout, level and flags) names a
*table*. The integer part (dimension sizes and memory budgets) is a *point* in that
table, with non-negative coordinates:

    Matmul:     (m-1, k-1, n-1, vrf, l1, l2)
    Zero, Move: (rows-1, cols-1, vrf, l1, l2)

where vrf counts free vector registers and l1, l2 are the cache budgets as exponents
(0 for no budget, else log2(bytes) + 1; budgets are powers of two, see ``target.py``).

A solution is stored as its action alone, and an action names no absolute tensor: a
tile size, an operand index, a kernel. So the same action is often optimal at many
neighbouring points (tile N by 16 for every N from 17 to 64, whatever the budgets), and
a run of equal actions along a coordinate is one interval; runs with equal extents in
the other coordinates stack into a rectangle. A table is a set of rectangles
(*regions*), each ``lo <= point <= hi`` with one action, and a lookup is a point query.
The cost is not stored: it is a pure function of the action and the costs of the
sub-Specs it expands into, which are in the table too (the search solves them first),
so storing it would only make every point unique.

Regions never cross a *page*: pages cut the dimension coordinates at powers of two
above 64 (sizes 1-64, 65-128, 129-256, ...), so that a lookup reads one page and a write
rewrites one, however large the table grows. The budgets are not cut.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from morello.core.dtypes import Dtype
from morello.core.kernels import DotMode, Kernel, KernelKind
from morello.core.layout import COL, EVEN_ODD, ROW, Layout, Packed
from morello.core.rewrites import Action, Dim, Move, Promote, Tile, ToAccum
from morello.core.spec import Op, Spec, TensorSpec
from morello.core.target import Level, MemoryLimits

# Bump on any change to what a point, a key, a page or an action encoding means.
FORMAT_VERSION = 3  # 3: operand keys lost the alignment flag, which no rewrite read

LIMIT_COORDS = 3  # vrf, l1, l2


@dataclass(frozen=True, slots=True)
class Point:
    table: str
    coords: tuple[int, ...]

    @property
    def dims(self) -> int:
        """How many leading coordinates are dimension sizes (the rest are budgets)."""
        return len(self.coords) - LIMIT_COORDS

    @property
    def page(self) -> int:
        return page_of(self.coords[: self.dims])


@lru_cache(maxsize=1 << 18)
def locate(spec: Spec, threads: int) -> Point:
    """The table and the point of ``spec``, synthesized for ``threads`` threads."""
    parallel = "serial" if spec.serial else f"threads={threads}"
    key = "|".join((spec.op.value, parallel, *(_operand_key(t) for t in spec.operands)))
    if spec.is_matmul:
        m, k, n = spec.mkn
        sizes: tuple[int, ...] = (m, k, n)
    else:
        sizes = spec.operands[0].shape
    return Point(key, (*(s - 1 for s in sizes), *_limit_coords(spec.limits)))


@lru_cache(maxsize=1 << 14)
def _operand_key(t: TensorSpec) -> str:
    named = (("c", t.contiguous), ("o", t.owned), ("d", t.from_dram))
    flags = "".join(f for f, on in named if on)
    return f"{t.dtype.value} {t.layout} {t.level.name} {flags or '-'}"


def _limit_coords(limits: MemoryLimits) -> tuple[int, int, int]:
    return limits.vrf, _exponent(limits.l1), _exponent(limits.l2)


def _exponent(budget: int) -> int:
    if budget & (budget - 1):
        raise ValueError(f"cache budget {budget} is not a power of two")
    return budget.bit_length()


PAGE_SPAN = 64  # sizes 1..64 share a page; above, each octave is a page


def page_of(dim_coords: tuple[int, ...]) -> int:
    """The page of a point, from each dimension coordinate's octave above ``PAGE_SPAN``,
    packed into one integer (coordinates are below 2**30: 5 bits each)."""
    page = 0
    for c in dim_coords:
        page = (page << 5) | max(0, c.bit_length() - PAGE_SPAN.bit_length() + 1)
    return page


# --- Actions as text: stable across processes and versions of Python, unlike hashes.


def encode_action(action: Action | None) -> str:
    match action:
        case None:
            return "none"
        case Tile(dim, size, parallel):
            return f"{'ptile' if parallel else 'tile'} {dim.value} {size}"
        case ToAccum():
            return "accum"
        case Promote():
            return "resident"
        case Move(operand, level, layout, dtype):
            return f"move {operand} {level.name} {layout} {dtype.value}"
        case Kernel(kind, mode, unroll, streams):
            return f"kernel {kind.value} {mode.value if mode else '-'} {unroll} {streams}"
    raise ValueError(f"no encoding for action {action!r}")


@lru_cache(maxsize=4096)
def decode_action(text: str) -> Action | None:
    match text.split():
        case ["none"]:
            return None
        case [("tile" | "ptile") as kind, dim, size]:
            return Tile(Dim(dim), int(size), parallel=kind == "ptile")
        case ["accum"]:
            return ToAccum()
        case ["resident"]:
            return Promote()
        case ["move", operand, level, layout, dtype]:
            return Move(int(operand), Level[level], _layout(layout), Dtype(dtype))
        case ["kernel", kind, mode, unroll, streams]:
            dot = None if mode == "-" else DotMode(mode)
            return Kernel(KernelKind(kind), dot, int(unroll), int(streams))
    raise ValueError(f"unknown action encoding {text!r}")


def _layout(text: str) -> Layout:
    named: dict[str, Layout] = {"row": ROW, "col": COL, "evenodd": EVEN_ODD}
    if text in named:
        return named[text]
    if text.startswith("packed") and text[6:].isdigit():
        return Packed(int(text[6:]))
    raise ValueError(f"unknown layout {text!r}")


# --- Regions.


@dataclass(frozen=True, slots=True, eq=False)
class Regions:
    """Rectangles ``lo[i] <= point <= hi[i]`` (inclusive), each with an action id."""

    lo: np.ndarray  # (R, D) int64
    hi: np.ndarray  # (R, D) int64
    action: np.ndarray  # (R,) int64

    @staticmethod
    def empty(dims: int) -> Regions:
        z = np.zeros((0, dims), np.int64)
        return Regions(z, z, np.zeros(0, np.int64))

    @staticmethod
    def of_points(coords: np.ndarray, actions: np.ndarray) -> Regions:
        coords = np.asarray(coords, np.int64)
        return Regions(coords, coords, np.asarray(actions, np.int64))

    def __len__(self) -> int:
        return len(self.action)

    @property
    def specs(self) -> int:
        """Points covered: regions built by ``add`` never overlap."""
        return int(np.prod(self.hi - self.lo + 1, axis=1).sum())

    def find(self, point: tuple[int, ...]) -> int | None:
        """The action id at ``point``, or None where nothing is stored."""
        if not len(self.action):
            return None
        p = np.asarray(point, np.int64)
        inside = np.flatnonzero(((self.lo <= p) & (p <= self.hi)).all(axis=1))
        return int(self.action[inside[0]]) if len(inside) else None

    def covers(self, points: np.ndarray) -> np.ndarray:
        """For each row of ``points``, whether some region holds it."""
        found = np.zeros(len(points), bool)
        if not len(self.action):
            return found
        step = max(1, (1 << 22) // (len(self.action) * self.lo.shape[1]))  # bounded memory
        for start in range(0, len(points), step):
            p = points[start : start + step, None, :]
            inside = ((self.lo <= p) & (p <= self.hi)).all(axis=2)
            found[start : start + step] = inside.any(axis=1)
        return found

    def add(self, coords: np.ndarray, actions: np.ndarray) -> Regions:
        """These regions with the points they do not hold yet, merged. Regions stay
        disjoint, so ``specs`` stays exact when the same point arrives twice (two
        processes solving the same Spec)."""
        coords = np.asarray(coords, np.int64).reshape(-1, self.lo.shape[1])
        rows = np.unique(np.column_stack((coords, actions)).astype(np.int64), axis=0)
        rows = rows[~self.covers(rows[:, :-1])]
        return Regions.concatenate([self, Regions.of_points(rows[:, :-1], rows[:, -1])]).merged()

    @staticmethod
    def concatenate(parts: list[Regions]) -> Regions:
        return Regions(
            np.concatenate([p.lo for p in parts]),
            np.concatenate([p.hi for p in parts]),
            np.concatenate([p.action for p in parts]),
        )

    def merged(self, fixed: int = 0) -> Regions:
        """Equal actions at adjacent (or overlapping) rectangles that agree in every other
        coordinate become one rectangle, along each coordinate in turn, until nothing
        changes. Every point keeps its action: only the way it is stored changes.

        The first ``fixed`` coordinates are never merged along: a caller merging many
        pages at once puts the page there."""
        regions = self
        while True:
            before = len(regions)
            for axis in range(fixed, regions.lo.shape[1]):
                regions = regions._merged_along(axis)
            if len(regions) == before:
                return regions

    def _merged_along(self, axis: int) -> Regions:
        if len(self) < 2:
            return self
        others = [c for c in range(self.lo.shape[1]) if c != axis]
        group_cols = [
            self.action,
            *(self.lo[:, c] for c in others),
            *(self.hi[:, c] for c in others),
        ]
        order = np.lexsort([self.lo[:, axis], *group_cols])
        lo, hi, action = self.lo[order], self.hi[order], self.action[order]
        keys = np.column_stack([col[order] for col in group_cols])
        new_group = np.ones(len(action), bool)
        new_group[1:] = (keys[1:] != keys[:-1]).any(axis=1)
        # The furthest a run reaches so far, per group: offset groups so a running maximum
        # over the whole array never carries from one group into the next.
        group = np.cumsum(new_group)
        reach = np.maximum.accumulate(hi[:, axis] + (group << 32)) - (group << 32)
        starts = new_group.copy()
        starts[1:] |= lo[1:, axis] > reach[:-1] + 1
        first = np.flatnonzero(starts)
        new_lo, new_hi = lo[first], hi[first]
        new_hi[:, axis] = np.maximum.reduceat(hi[:, axis], first)
        return Regions(new_lo, new_hi, action[first])

    def to_bytes(self) -> bytes:
        table = np.column_stack((self.lo, self.hi, self.action)).astype("<i4")
        return zlib.compress(table.tobytes(), 6)

    @staticmethod
    def from_bytes(data: bytes, dims: int) -> Regions:
        table = np.frombuffer(zlib.decompress(data), "<i4").reshape(-1, 2 * dims + 1)
        table = table.astype(np.int64)
        return Regions(table[:, :dims], table[:, dims : 2 * dims], table[:, 2 * dims])


def coordinate_count(op: Op) -> int:
    return (3 if op in (Op.MATMUL, Op.MATMUL_ACCUM) else 2) + LIMIT_COORDS
