"""``canonical`` caps a Spec's budgets for memo sharing; capping must drop no legal rewrite.

Each test walks the whole rewrite space below a Spec twice in lockstep: once with the
budgets the rewrites leave (``expand_raw``, never capped), once as the search walks it
(``canonical`` at the root, ``expand`` canonicalizing every child). At every node the two
must offer the same actions and, for each, sub-Specs that differ in their budgets at most.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from morello.core.dtypes import Dtype
from morello.core.layout import COL, EVEN_ODD, ROW, Layout
from morello.core.rewrites import A, Move, Refused, actions, canonical, expand, expand_raw
from morello.core.spec import Spec, matmul_spec
from morello.core.target import AVX2_LIMITS, Level, MemoryLimits

F32, BF16 = Dtype.F32, Dtype.BF16
DTYPES = {"f32": (F32, F32, F32), "bf16": (BF16, BF16, F32), "mixed": (F32, BF16, F32)}
# A budget-limited L1 (a 32-element f32 copy does not fit, so it goes to L2), a small L2,
# and budgets that are not powers of two (as a host profile may give).
LIMITS = {
    "avx2": AVX2_LIMITS,
    "small": MemoryLimits(vrf=16, l1=64, l2=4096),
    "odd": MemoryLimits(vrf=12, l1=3000, l2=20000),
}


def spec_of(
    shape: tuple[int, int, int],
    dtypes: str,
    b: Layout,
    threads: int,
    level: Level | None,
    limits: str,
) -> Spec:
    spec = matmul_spec(*shape, DTYPES[dtypes], (ROW, b, ROW), threads=threads)
    if level is not None:
        spec = replace(spec, operands=tuple(replace(t, level=level) for t in spec.operands))
    return replace(spec, limits=LIMITS[limits])


def same_space(raw: Spec, capped: Spec, threads: int, seen: set[tuple[Spec, Spec]]) -> None:
    if (raw, capped) in seen:
        return
    seen.add((raw, capped))
    assert replace(raw, limits=capped.limits) == capped, (raw, capped)
    offered = list(actions(raw, threads))
    assert list(actions(capped, threads)) == offered, (raw, capped.limits)
    for action in offered:
        raw_children = expand_raw(raw, action)
        children = expand(capped, action)
        refused = isinstance(raw_children, Refused), isinstance(children, Refused)
        assert refused[0] == refused[1], (raw, action)
        if any(refused):
            continue
        assert len(raw_children) == len(children)
        for r, c in zip(raw_children, children, strict=True):
            same_space(r, c, threads, seen)


def check(spec: Spec, threads: int) -> int:
    seen: set[tuple[Spec, Spec]] = set()
    same_space(spec, canonical(spec), threads, seen)
    return len(seen)


def test_resident_operands_keep_their_copies_to_l2() -> None:
    """The issue's case: A, B and C resident in L2 still leave room for copies in L2."""
    spec = spec_of((1, 16384, 1), "bf16", COL, 1, Level.L2, "avx2")
    move = Move(A, Level.L2, EVEN_ODD, F32)
    assert move in list(actions(spec, 1))
    assert move in list(actions(canonical(spec), 1))


@pytest.mark.parametrize("limits", sorted(LIMITS))
@pytest.mark.parametrize("level", [Level.L2, Level.L3, Level.GL], ids=str)
@pytest.mark.parametrize("dtypes", sorted(DTYPES))
def test_capping_drops_no_rewrite(dtypes: str, level: Level, limits: str) -> None:
    # Budget-limited spaces share few sub-Specs across paths: the walk is far larger.
    small = limits == "small"
    shapes = [(1, 32, 2), (3, 4, 2)] if small else [(1, 32, 2), (2, 16, 3), (3, 4, 2), (1, 2, 17)]
    for shape, b, threads in itertools.product(shapes, (ROW, COL), (1,) if small else (1, 2)):
        check(spec_of(shape, dtypes, b, threads, level, limits), threads)


@pytest.mark.parametrize("dtypes", ["bf16", "f32"])
def test_capping_drops_no_rewrite_for_a_long_k(dtypes: str) -> None:
    """K long enough that a copy of A exceeds L1 under the default budgets."""
    for level in (Level.L2, Level.GL):
        check(spec_of((1, 16384, 1), dtypes, COL, 1, level, "avx2"), 1)
