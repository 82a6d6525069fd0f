"""Exact dynamic programming over the rewrite space.

The optimum of a Spec is the cheapest, over every applicable rewrite, of the rewrite's
cost composed from the optima of its sub-Specs. Sub-Specs recur across rewrites and
across Specs, so each is solved once and memoized.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from morello.core.cost import DEFAULT_MODEL, PARALLEL_FLOOR, CostModel
from morello.core.memo import InMemoryMemo, Memo, Solution
from morello.core.program import Program
from morello.core.rewrites import Action, Refused, actions, canonical, expand
from morello.core.spec import Spec
from morello.errors import MemoTableError, SpecError

NO_PROGRAM = Solution(None, math.inf)


@dataclass(frozen=True, slots=True)
class SearchStats:
    specs_solved: int
    seconds: float


class Search:
    """The DP of one cost model at one thread count. The memo must be of the same model
    (its costs are compared with the ones computed here); by default it is in memory."""

    def __init__(
        self,
        threads: int = 1,
        memo: Memo | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        model: CostModel | None = None,
    ) -> None:
        if model is None:
            model = memo.model if memo is not None else DEFAULT_MODEL
        if memo is not None and memo.model.key != model.key:
            raise MemoTableError(
                f"the memo table was opened for another cost model ({memo.model.key}) than "
                f"the search's ({model.key})"
            )
        self.model = model
        self.threads = threads
        self.memo: Memo = memo if memo is not None else InMemoryMemo(model)
        self.solved = 0
        self._progress = progress

    def solve(self, spec: Spec) -> Solution:
        hit = self.memo.get(spec, self.threads)
        if hit is not None:
            return hit
        best = NO_PROGRAM
        if not spec.serial:
            # A Spec that may still run in parallel: if its best serial program costs no
            # more than any program with a parallel loop can, that program is optimal, and
            # so, recursively, for its sub-Specs (each costs no more than it). Most small
            # tiles below the parallel loops end here instead of in a search of their own.
            serial = self.solve(Spec(spec.op, spec.operands, spec.limits, True))
            if serial.cost <= PARALLEL_FLOOR:
                best = serial
                # Its sub-Specs as this Spec has them (not serial), solved the same way, so
                # that the memo holds the program it names, as for any other solution.
                children = expand(spec, serial.action)
                assert not isinstance(children, Refused), children
                for child in children:
                    self.solve(child)
        if best is NO_PROGRAM:
            for cost, action, _ in self.options(spec):
                if cost < best.cost:
                    best = Solution(action, cost)
        self.memo.put(spec, self.threads, best)
        self.solved += 1
        if self._progress is not None and self.solved % 1000 == 0:
            self._progress(self.solved)
        return best

    def options(self, spec: Spec) -> Iterator[tuple[float, Action, tuple[Spec, ...]]]:
        """(cost, action, sub-Specs) of every rewrite of ``spec`` whose sub-Specs all have
        programs, each sub-Spec solved optimally."""
        for action in actions(spec, self.threads):
            children = expand(spec, action)
            if isinstance(children, Refused):
                continue
            costs = []
            for child in children:
                sol = self.solve(child)
                if sol.action is None:
                    break
                costs.append(sol.cost)
            else:
                cost = self.model.cost(spec, action, children, costs, self.threads)
                yield cost, action, children

    def program(self, spec: Spec) -> Program:
        """The optimal program for ``spec``: the memoized actions, re-expanded."""
        sol = self.solve(spec)
        if sol.action is None:
            raise SpecError(f"no program implements {spec}: no kernel path for these dtypes")
        children = expand(spec, sol.action)
        assert not isinstance(children, Refused), children
        return Program(spec, sol.action, tuple(self.program(c) for c in children), sol.cost)


def synthesize(
    spec: Spec,
    *,
    threads: int = 1,
    memo: Memo | None = None,
    progress: Callable[[int], None] | None = None,
    model: CostModel | None = None,
) -> tuple[Program, SearchStats]:
    """Find the cheapest program for ``spec`` in the rewrite space, by ``model`` (default:
    the memo's, else the built-in rates)."""
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 20_000))
    start = time.perf_counter()
    search = Search(threads, memo, progress, model=model)
    try:
        program = search.program(canonical(spec))
    finally:
        # Also on an interrupt: what was solved is kept (children before parents).
        search.memo.flush()
        sys.setrecursionlimit(old_limit)
    return program, SearchStats(search.solved, time.perf_counter() - start)
