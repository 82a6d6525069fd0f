"""The DP search against brute force that shares none of its machinery (no ``Search``, no
``Memo``, no ``canonical``): only ``actions``, ``expand_raw`` and ``action_cost``.

The brute force walks the rewrite space with the budgets the rewrites leave, never capped,
from the caller's Spec: if ``canonical`` (which the search applies to every Spec it
memoizes) dropped a legal rewrite, the optimum over that space could be lower than the
DP's and tiers 1 and 2 would fail.

Program counts grow too fast for literal enumeration of every shape, so three tiers:

1. ``programs``: every complete program tree, literally, each costed bottom-up with
   ``action_cost`` (no caching at all), for shapes in {1,2}^3. The minimum must equal the
   DP's cost, and the DP's tree must be among them.
2. ``cost_set``: the exact set of distinct costs of all programs of a Spec: for every
   action, ``action_cost`` of every combination of every child's cost set. This makes no
   assumption about the cost model (not even that it is monotone in children's costs, as
   the DP's optimal substructure needs); caching sets per Spec is sound because a Spec's
   programs do not depend on where it occurs. Shapes in {1..4}^3 with M*K*N up to
   ``SET_MAX_VOLUME`` (the sets grow quickly beyond; 4x4x4 takes minutes); under short
   budgets, up to 16 with M*N <= 4 (which covers the 1x4x4 and 4x4x1 whose optimum
   capping once hid).
3. Every shape in {1..4}^3: the DP's program is re-checked node by node (each action is
   offered by ``actions``, its children are exactly ``expand``'s, the cost re-computed
   bottom-up equals the stated one) and is finite, i.e. no Spec is left without a program.
   This tier checks the DP's own derivation, so it goes through ``canonical``;
   tests/test_canonical.py checks that capping drops no rewrite.

All tiers cover f32,f32,f32 and bf16,bf16,f32 with B row- and column-major, at threads 1
and 2, with the caller's operands in L3 (as small ones are) and, for f32 with B row-major,
also in DRAM (as a large weight matrix is; its fetches cost differently); and, at thread 1
with B column-major, budgets short enough to bind (``SHORT``): f32 from DRAM, and bf16
with every operand resident in L2 (where copies of A and B can only go to L2).
Runtime on a 2-core machine: ~40 s, and ~30 s more for the short budgets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterator
from dataclasses import replace
from functools import cache

import pytest

from morello.core.cost import action_cost
from morello.core.dtypes import Dtype
from morello.core.layout import COL, ROW, Layout
from morello.core.memo import InMemoryMemo
from morello.core.program import Program
from morello.core.rewrites import Refused, actions, canonical, expand, expand_raw
from morello.core.search import synthesize
from morello.core.spec import Spec, matmul_spec
from morello.core.target import Level, MemoryLimits

F32, BF16 = Dtype.F32, Dtype.BF16
# Budgets short enough to bind: a 64-byte L1 takes no 4x4 f32 tile, so copies go to L2.
# The brute force must still find every program the search finds, and no cheaper one.
SHORT = MemoryLimits(vrf=16, l1=64, l2=4096)
CONFIGS = (
    [
        pytest.param(
            dtypes, b_layout, threads, None, None, id=f"{dtypes[0].value}-B{b_layout}-t{threads}"
        )
        for threads in (1, 2)
        for dtypes in ((F32, F32, F32), (BF16, BF16, F32))
        for b_layout in (ROW, COL)
    ]
    + [
        pytest.param((F32, F32, F32), ROW, threads, Level.GL, None, id=f"f32-Brow-t{threads}-dram")
        for threads in (1, 2)
    ]
    + [
        pytest.param((F32, F32, F32), COL, 1, Level.GL, SHORT, id="f32-Bcol-t1-dram-short"),
        pytest.param((BF16, BF16, F32), COL, 1, Level.L2, SHORT, id="bf16-Bcol-t1-inL2-short"),
    ]
)
ALL_SHAPES = list(itertools.product(range(1, 5), repeat=3))
TINY_SHAPES = list(itertools.product(range(1, 3), repeat=3))
SET_MAX_VOLUME = {1: 32, 2: 24}  # tier 2: M*K*N bound by thread count (16, M*N <= 4 if short)

Tree = tuple[Hashable, tuple["Tree", ...]]  # (action, children)


def root(
    shape: tuple[int, int, int],
    dtypes: tuple[Dtype, Dtype, Dtype],
    b: Layout,
    threads: int,
    caller: Level | None = None,
    limits: MemoryLimits | None = None,
) -> Spec:
    spec = matmul_spec(*shape, dtypes, (ROW, b, ROW), threads=threads)
    if limits is not None:
        spec = replace(spec, limits=limits)
    if caller is not None:
        spec = replace(spec, operands=tuple(replace(t, level=caller) for t in spec.operands))
    return spec


@pytest.fixture(scope="module")
def memo() -> InMemoryMemo:
    """One memo for every DP run, as a long-lived user would share it."""
    return InMemoryMemo()


def dp(spec: Spec, threads: int, memo: InMemoryMemo) -> Program:
    program, _ = synthesize(spec, threads=threads, memo=memo)
    assert program.spec == canonical(spec)
    return program


def programs(spec: Spec, threads: int) -> Iterator[tuple[float, Tree]]:
    """Every complete program for ``spec``: (cost, tree). No caching, no pruning, no caps."""
    for action in actions(spec, threads):
        children = expand_raw(spec, action)
        if isinstance(children, Refused):
            continue
        subs = [list(programs(child, threads)) for child in children]
        for combo in itertools.product(*subs):
            costs = [cost for cost, _ in combo]
            cost = action_cost(spec, action, children, costs, threads)
            yield cost, (action, tuple(tree for _, tree in combo))


def tree_of(program: Program) -> Tree:
    return program.action, tuple(tree_of(c) for c in program.children)


@cache
def cost_set(spec: Spec, threads: int) -> frozenset[float]:
    """The costs of all programs for ``spec``, exactly (as a set: duplicates merged)."""
    out: set[float] = set()
    for action in actions(spec, threads):
        children = expand_raw(spec, action)
        if isinstance(children, Refused):
            continue
        for costs in itertools.product(*(cost_set(c, threads) for c in children)):
            out.add(action_cost(spec, action, children, costs, threads))
    return frozenset(out)


def recost(program: Program, threads: int) -> float:
    """Check ``program`` is a valid derivation and return its cost, recomputed."""
    spec, action = program.spec, program.action
    assert action in list(actions(spec, threads)), (spec, action)
    children = expand(spec, action)
    assert children == tuple(c.spec for c in program.children), (spec, action)
    costs = [recost(c, threads) for c in program.children]
    cost = action_cost(spec, action, children, costs, threads)
    assert math.isclose(cost, program.cost, rel_tol=1e-9), (spec, action, cost, program.cost)
    return cost


@pytest.mark.parametrize(("dtypes", "b_layout", "threads", "caller", "limits"), CONFIGS)
def test_dp_is_min_over_every_program(dtypes, b_layout, threads, memo, caller, limits) -> None:
    for shape in TINY_SHAPES:
        spec = root(shape, dtypes, b_layout, threads, caller, limits)
        best = dp(spec, threads, memo)
        target = tree_of(best)
        count, low, found = 0, math.inf, False
        for cost, tree in programs(spec, threads):
            count += 1
            low = min(low, cost)
            if tree == target:
                found = True
                assert math.isclose(cost, best.cost, rel_tol=1e-9), (shape, cost, best.cost)
        assert count > 0, shape
        assert math.isclose(low, best.cost, rel_tol=1e-9), (shape, low, best.cost)
        assert found, f"{shape}: the DP's program is not among the {count} enumerated"


@pytest.mark.parametrize(("dtypes", "b_layout", "threads", "caller", "limits"), CONFIGS)
def test_dp_is_min_of_exact_cost_set(dtypes, b_layout, threads, memo, caller, limits) -> None:
    for shape in ALL_SHAPES:
        if math.prod(shape) > SET_MAX_VOLUME[threads]:
            continue
        m, _, n = shape
        if limits is not None and (math.prod(shape) > 16 or m * n > 4):
            continue  # short budgets share little across paths: sets take minutes beyond
        spec = root(shape, dtypes, b_layout, threads, caller, limits)
        costs = cost_set(spec, threads)
        best = dp(spec, threads, memo).cost
        assert costs, shape
        assert math.isclose(min(costs), best, rel_tol=1e-9), (shape, min(costs), best)


@pytest.mark.parametrize(("dtypes", "b_layout", "threads", "caller", "limits"), CONFIGS)
def test_dp_program_is_valid_and_finite(dtypes, b_layout, threads, memo, caller, limits) -> None:
    for shape in ALL_SHAPES:
        program = dp(root(shape, dtypes, b_layout, threads, caller, limits), threads, memo)
        assert math.isfinite(program.cost), shape
        assert math.isclose(recost(program, threads), program.cost, rel_tol=1e-9)
