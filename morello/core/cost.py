"""The affine cost model: every constant the search weighs programs by, and why.

Units are approximate core cycles. A program's cost is built bottom-up: a kernel costs
what its formula says (compute throughput bounds, plus the cache lines it touches priced
by the level they come from); a loop costs its trip count times its body plus a small
per-iteration overhead; a parallel loop divides the trips among threads and pays a
dispatch overhead; a move costs by the lines moved and the level they come from; making
tiles resident in a cache costs their lines once, after which touching them is cheap.

That last fetch is not a phase of its own when it comes from a cache (L3 or L2): the code
below a resident tile reads its lines as it computes and the hardware prefetchers stream
them meanwhile, so the fetch costs only where it is longer than that work (a roofline per
resident tile). Charging it on top made the search pack A into L1 to save an L2 stream that
in fact costs nothing, and split K short to fit that copy. A fetch from DRAM is charged in
full: it is what a memory-bound kernel's time is made of, and the search must see the
order it reads in. That order is the code's below the Promote, not the tile's layout: a
loop that cuts the resident tile across its runs pays their extra streams (``restreams``).
A Move is a copy loop of its own and is charged in full.

The prices everything is built from (``Rates``: what a core does per cycle, measured on
the host by ``morello calibrate``, and the cycles of the code's own steps) are in
rates.py; each kernel family's cost formula sits with its preconditions in kernels.py.
Exactness of the search does not depend on any of the values, only its taste.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from morello.core.kernels import Kernel, family
from morello.core.layout import COL, ROW
from morello.core.rates import RATES, Rates, line_cost
from morello.core.rewrites import Action, Promote, Tile
from morello.core.spec import Spec, TensorSpec, runs
from morello.core.target import AVX2_LIMITS, Level, MemoryLimits

# The model's version. Bump it with any edit that makes some program cost differently or
# changes which programs exist (a rewrite, a kernel, a cost term, the table's encoding of
# actions): memo tables are keyed by it, so a bump starts new tables and an edit that prices
# nothing differently keeps users' tables. tests/test_model_version.py records the optima
# of a set of Specs at this version and fails when they move without a bump.
MODEL_VERSION = 5  # 5: a run shorter than the measured ones pays its stream start in proportion


LOOP_ITERATION_CYCLES = 1.0  # increment, compare, branch; usually hidden, never free
PARALLEL_DISPATCH_CYCLES = 4000.0  # waking pool threads and joining them (~1-2 µs)
PARALLEL_TASK_CYCLES = 100.0  # handing one task to a thread
# No program with a parallel loop costs less: the loop's dispatch and its tasks (at least
# two), and every cost composing a program is at least its parts' (loops, sums, maxima).
PARALLEL_FLOOR = PARALLEL_DISPATCH_CYCLES + 2 * PARALLEL_TASK_CYCLES


@dataclass(frozen=True, slots=True)
class CostModel:
    """The model the search ranks programs by: the host's rates, and the memory a program
    may allocate at each level (the root Spec's budget)."""

    rates: Rates = RATES
    limits: MemoryLimits = AVX2_LIMITS

    @property
    def key(self) -> str:
        """What a solution's cost depends on beyond its Spec (which carries the budget):
        the version of the model and the rates."""
        return f"model {MODEL_VERSION}; {self.rates!r}"

    def cost(
        self,
        spec: Spec,
        action: Action,
        children: Sequence[Spec],
        costs: Sequence[float],
        threads: int,
    ) -> float:
        """The cost of ``spec`` implemented by ``action`` given its children's costs."""
        return action_cost(spec, action, children, costs, threads, self.rates)


DEFAULT_MODEL = CostModel()  # the built-in rates and the AVX2 target's memory


def kernel_cost(kernel: Kernel, spec: Spec, rates: Rates = RATES) -> float:
    return family(kernel).cost(spec, kernel, rates)


def restreams(whole: TensorSpec, piece: TensorSpec, tasks: int) -> int:
    """The DRAM streams a loop adds by cutting a tile that is resident but not yet fetched
    (``from_dram``) into ``tasks`` pieces across its runs: K halves of a block of columns
    are read half a column at a time, each a stream of its own, where the Promote that made
    the block resident priced it as read front to back. Pieces along the runs follow each
    other in memory and add none."""
    if not whole.from_dram or piece.shape == whole.shape:
        return 0
    across = 1 if whole.layout == ROW else 0 if whole.layout == COL else None
    if across is None or piece.shape[across] == whole.shape[across]:
        return 0
    return max(0, tasks * runs(piece) - runs(whole))


def loop_cost(trips: int, body: float, remainder: float | None, parallel_threads: int) -> float:
    """``trips`` full-tile iterations of ``body``, then one remainder body if the tile does
    not divide the dimension. A parallel loop runs its tasks on ``parallel_threads``."""
    tasks = trips + (remainder is not None)
    if parallel_threads > 1:
        rounds = math.ceil(tasks / parallel_threads)
        # Conservatively, every round takes as long as its slowest possible task.
        per_round = max(body, remainder or 0.0)
        return (
            rounds * (per_round + LOOP_ITERATION_CYCLES)
            + PARALLEL_DISPATCH_CYCLES
            + tasks * PARALLEL_TASK_CYCLES
        )
    total = trips * (body + LOOP_ITERATION_CYCLES)
    return total + (remainder or 0.0)


def action_cost(
    spec: Spec,
    action: Action,
    children: Sequence[Spec],
    costs: Sequence[float],
    threads: int,
    rates: Rates = RATES,
) -> float:
    """The cost of ``spec`` implemented by ``action`` given its children's costs."""
    match action:
        case Kernel():
            return kernel_cost(action, spec, rates)
        case Tile():
            loop = action.loop(spec)
            remainder = costs[1] if loop.remainder else None
            tasks = loop.tasks
            body = loop_cost(loop.trips, costs[0], remainder, threads if loop.parallel else 1)
            pieces = children[0].operands
            streams = 0
            for i, whole in enumerate(spec.operands):
                if whole.from_dram:
                    streams += restreams(whole, pieces[i], tasks)
            return body + streams * rates.dram_stream_start_cycles if streams else body
        case Promote():
            (child,) = children
            moved = [t for t, u in zip(spec.operands, child.operands, strict=True) if t != u]
            from_dram = sum(line_cost(t, rates) for t in moved if t.level == Level.GL)
            from_cache = sum(line_cost(t, rates) for t in moved if t.level != Level.GL)
            return from_dram + max(from_cache, costs[0])
    return sum(costs)
