"""Re-ranking by measurement, where the model cannot separate close candidates.

The candidates are the optimum's one-decision neighbours: programs that take another action
at one node that carries a real share of the predicted time, with everything below that
node re-optimized by the DP (every such sub-Spec was already solved on the way to the
optimum, so this costs lookups, not search). A few are compiled into one library with the
optimum, checked against an exact product, and timed round by round as the benchmark times
systems. They are picked by predicted cost, but each new shape of program first: the
cheapest neighbours often only resize a loop or swap two nested ones, which the model
prices alike and which measure alike, while a neighbour that drops a split or hoists a copy
differs in kind, and can be the one the model underrates even when it ranks far down by
cost (docs/results.md). The fastest median wins; the memo table keeps the model's optimum,
since the measurement belongs to this machine at this moment.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morello.core.cost import action_cost
from morello.core.layout import COL
from morello.core.memo import Memo
from morello.core.program import Program
from morello.core.rates import Rates
from morello.core.rewrites import Tile
from morello.core.search import Search
from morello.core.spec import Spec
from morello.core.target import Level
from morello.emit.codegen import render_header
from morello.errors import BuildError, SpecError
from morello.tune.harness import BenchKernel, NativeBench, aligned_empty, build_library, measure
from morello.tune.inputs import Inputs, Problem, error_bound, max_error

SHARE = 0.1  # a node must carry a tenth of the predicted time for its choice to be timed
PER_NODE = 2  # alternatives kept per such node
CLOSE = 1.1  # a new shape goes first if the model prices it within this of the optimum
ROUNDS = 7
MIN_TIME_S = 0.05


@dataclass(frozen=True, slots=True)
class Candidate:
    program: Program
    change: str  # the decision that differs from the model's optimum; "" for the optimum
    prefetch_bytes: int  # how far ahead the dot kernel prefetches B


@dataclass(frozen=True, slots=True)
class Measured:
    candidate: Candidate
    seconds: float  # median per call
    best: float  # fastest round, per call
    error: float  # max |c - exact| / (|A|·|B|)
    predicted_s: float  # the model's cost at the clock measured beside it


def neighbours(
    spec: Spec, threads: int, memo: Memo, count: int, prefetch_bytes: int
) -> list[Candidate]:
    """The model's optimum for ``spec`` and ``count - 1`` of its one-decision neighbours:
    the cheapest of each shape (see ``_shape``) priced CLOSE to the optimum, then the
    cheapest left, by predicted cost."""
    search = Search(threads, memo)
    optimum = search.program(spec)
    found: dict[Program, Candidate] = {optimum: Candidate(optimum, "", prefetch_bytes)}
    for path, node, runs in _weighty_nodes(optimum, optimum.cost):
        alternatives = [o for o in search.options(node.spec) if o[1] != node.action]
        alternatives.sort(key=lambda alt: alt[0])
        for cost, action, children in alternatives[:PER_NODE]:
            subtree = Program(node.spec, action, tuple(search.program(c) for c in children), cost)
            program = _splice(optimum, path, subtree, threads, memo.model.rates)
            change = f"{node.action} → {action}" + (f" (×{runs:,})" if runs > 1 else "")
            found.setdefault(program, Candidate(program, change, prefetch_bytes))
    ranked = sorted(found.values(), key=lambda c: (c.change != "", c.program.cost))
    shapes: set[tuple[str, ...]] = set()
    new_shapes, rest = [], []
    for candidate in ranked:
        shape = _shape(candidate.program)
        if shape not in shapes and candidate.program.cost <= CLOSE * optimum.cost:
            shapes.add(shape)
            new_shapes.append(candidate)
        else:
            rest.append(candidate)
    return (new_shapes + rest)[:count]


def _shape(program: Program) -> tuple[str, ...]:
    """The kinds of action the program takes, loop sizes left out: what one that only
    resizes or reorders loops (or adds a remainder) shares with the program it varies."""
    return tuple(sorted({re.sub(r"=\d+", "=", str(node.action)) for node in program.walk()}))


def _weighty_nodes(node: Program, total: float, path: tuple[int, ...] = (), runs: int = 1):
    """(path, node, times it runs) of every node whose runs carry SHARE of ``total``."""
    if node.cost * runs < SHARE * total:
        return
    yield path, node, runs
    for index, child in enumerate(node.children):
        times = runs
        if isinstance(node.action, Tile) and index == 0:
            times *= node.action.loop(node.spec).trips
        yield from _weighty_nodes(child, total, (*path, index), times)


def _splice(
    root: Program, path: tuple[int, ...], subtree: Program, threads: int, rates: Rates
) -> Program:
    """``root`` with the node at ``path`` replaced, its ancestors' costs recomputed."""
    if not path:
        return subtree
    index, rest = path[0], path[1:]
    children = list(root.children)
    children[index] = _splice(children[index], rest, subtree, threads, rates)
    specs = tuple(c.spec for c in children)
    costs = [c.cost for c in children]
    cost = action_cost(root.spec, root.action, specs, costs, threads, rates)
    return Program(root.spec, root.action, tuple(children), cost)


def measure_candidates(
    spec: Spec,
    candidates: Sequence[Candidate],
    threads: int,
    *,
    workdir: Path | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> list[Measured]:
    """Compiles the candidates into one library, checks each against the exact product and
    times them interleaved. Returns them fastest first; a wrong one raises BuildError."""
    if not spec.is_matmul:
        raise SpecError("only matmuls can be measured")
    a, b, c = spec.operands
    m, k, n = spec.mkn
    # A problem cold like the Spec: weights the model reads from DRAM rotate through copies.
    problem = Problem(m, k, n, a.dtype, b.dtype, b_col=b.layout == COL, cold=b.level == Level.GL)
    kernels = []
    for i, candidate in enumerate(candidates):
        header = render_header(
            candidate.program,
            f"candidate_{i}",
            threads=threads,
            prefetch_bytes=candidate.prefetch_bytes,
        )
        kernels.append(
            BenchKernel(f"candidate {i}", header, f"candidate_{i}", a.dtype, b.dtype, c.dtype)
        )
    with tempfile.TemporaryDirectory(prefix="morello-rerank-") as tmp:
        log(f"compiling {len(kernels)} candidates")
        native = NativeBench(build_library(kernels, workdir or Path(tmp)))
        inputs = Inputs(problem)
        a_copies, b_copies = inputs.native()
        outputs = [aligned_empty((m, n), np.float32) for _ in candidates]
        runs = [native.kernel(i, a_copies, b_copies, out) for i, out in enumerate(outputs)]
        reference, scale = inputs.reference()
        errors = []
        for run, out in zip(runs, outputs, strict=True):
            out[...] = 0.0  # C += A·B from zero is A·B, whether or not the kernel accumulates
            run(1)  # call 0 reads copy 0, the values the reference is made of
            errors.append(max_error(out, reference, scale))
        bound = error_bound(k)
        for i, error in enumerate(errors):
            if not error <= bound:
                raise BuildError(f"candidate {i} is wrong: error {error:.2e} > bound {bound:.2e}")
        log(f"timing {len(kernels)} candidates, {ROUNDS} rounds")
        timings = measure(runs, rounds=ROUNDS, min_time_s=MIN_TIME_S)
        hz = native.clock_hz()
    measured = [
        Measured(cand, t.median, t.best, error, cand.program.cost / hz)
        for cand, t, error in zip(candidates, timings, errors, strict=True)
    ]
    return sorted(measured, key=lambda r: r.seconds)


def rank(
    spec: Spec,
    threads: int,
    memo: Memo,
    count: int,
    prefetch_bytes: int,
    log: Callable[[str], None],
) -> list[Measured]:
    """``measure_candidates`` of ``neighbours``: the optimum and its neighbours, fastest first."""
    candidates = neighbours(spec, threads, memo, count, prefetch_bytes)
    return measure_candidates(spec, candidates, threads, log=log)


def format_ranking(measured: Sequence[Measured]) -> str:
    """A table of the candidates, fastest first, against the model's optimum."""
    optimum = next(r for r in measured if not r.candidate.change)
    lines = [f"{'#':>2}  {'predicted':>14}  {'measured':>10}  {'vs optimum':>10}  change"]
    for i, r in enumerate(measured, 1):
        change = r.candidate.change or "(the model's optimum)"
        lines.append(
            f"{i:>2}  {r.candidate.program.cost:>14,.0f}  {_duration(r.seconds):>10}  "
            f"{optimum.seconds / r.seconds:>9.3f}x  {change}"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"
