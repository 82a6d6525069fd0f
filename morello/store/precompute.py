"""``morello precompute``: fill a memo table with every matmul up to given sizes.

Problems are solved in stages of equal M+K+N. Tiling shrinks a dimension, so the
sub-Specs a stage needs from tiling were written by earlier stages, and the processes of
one stage find them in the file instead of solving them again. A stage is split into
batches that go to a ``concurrent.futures.Executor``: a process pool here, or a cluster
engine's executor (Dask's ``Client.get_executor()``, Ray's) when every worker sees the
file. A batch is one transaction, so an interrupted run loses at most the batches in
flight, and running it again skips every problem already in the file.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from morello.core.cost import DEFAULT_MODEL, CostModel
from morello.core.rewrites import canonical
from morello.core.search import Search
from morello.core.spec import Spec, matmul_problem
from morello.core.target import AVX2_LIMITS, MemoryLimits
from morello.store.db import MemoDB

BATCHES_PER_WORKER = 2  # per stage: enough to even out uneven batches, few transactions
MAX_BATCH = 512
WORKER_MEMORY_SPECS = 2_000_000  # solutions a worker keeps in memory before dropping them


@dataclass(frozen=True, slots=True)
class Task:
    """A top-level matmul, as plain values that pickle the same in any process (a Spec's
    cached hashes are per process)."""

    m: int
    k: int
    n: int
    dtypes: str
    layouts: str
    threads: int

    def spec(self, limits: MemoryLimits = AVX2_LIMITS) -> Spec:
        shape = f"{self.m}x{self.k}x{self.n}"
        return matmul_problem(shape, self.dtypes, self.layouts, threads=self.threads, limits=limits)


def problems(
    max_size: int, dtypes: Sequence[str], layouts: Sequence[str], threads: int = 1
) -> list[Task]:
    """Every matmul with M, K and N from 1 to ``max_size``, for each dtypes and layouts."""
    sizes = range(1, max_size + 1)
    found = [
        Task(m, k, n, d, lay, threads)
        for d, lay in itertools.product(dtypes, layouts)
        for m, k, n in itertools.product(sizes, sizes, sizes)
    ]
    for p in found[:1]:
        p.spec()  # a bad dtype or layout fails here, in the caller, with its message
    return found


def solve_batch(db_path: str, model: CostModel, batch: Sequence[Task]) -> int:
    """Solve ``batch`` into the file and commit; the number of problems that needed it.
    Runs in a worker: module-level and picklable for any executor."""
    memo = _worker_memo(db_path, model)
    memo.refresh()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    solved = 0
    for problem in batch:
        spec = canonical(problem.spec(model.limits))
        if not memo.contains(spec, problem.threads):
            Search(problem.threads, memo, model=model).solve(spec)
            solved += 1
    if len(memo) > WORKER_MEMORY_SPECS:
        memo.trim()
    memo.flush()
    return solved


_WORKER_MEMOS: dict[str, MemoDB] = {}


def _worker_memo(db_path: str, model: CostModel) -> MemoDB:
    # One connection per worker process, kept across batches with what it has read.
    if db_path not in _WORKER_MEMOS:
        _WORKER_MEMOS[db_path] = MemoDB(db_path, model)
    return _WORKER_MEMOS[db_path]


def pending(db_path: Path, todo: Sequence[Task], model: CostModel = DEFAULT_MODEL) -> list[Task]:
    """The problems not yet in the file."""
    memo = MemoDB(db_path, model)
    try:
        return [p for p in todo if not memo.contains(canonical(p.spec(model.limits)), p.threads)]
    finally:
        memo.close()


def stages(todo: Sequence[Task], workers: int) -> list[list[list[Task]]]:
    """Problems by M+K+N, each stage cut into batches for ``workers`` workers."""
    by_sum: dict[int, list[Task]] = {}
    for p in todo:
        by_sum.setdefault(p.m + p.k + p.n, []).append(p)
    result = []
    for total in sorted(by_sum):
        stage = by_sum[total]
        size = min(MAX_BATCH, max(1, -(-len(stage) // (workers * BATCHES_PER_WORKER))))
        result.append([stage[i : i + size] for i in range(0, len(stage), size)])
    return result


def run(
    db_path: Path,
    todo: Sequence[Task],
    *,
    executor: Executor | None = None,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    model: CostModel = DEFAULT_MODEL,
) -> int:
    """Solve ``todo`` into the file at ``db_path``; returns how many needed solving.
    ``progress`` is called with the number of problems each finished batch covered."""
    own = executor is None
    if executor is None:
        # Spawned workers: a forked one would inherit the parent's connection and caches.
        ctx = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    solved = 0
    try:
        for stage in stages(todo, workers):
            futures = {executor.submit(solve_batch, str(db_path), model, b): len(b) for b in stage}
            for future in as_completed(futures):
                solved += future.result()
                if progress is not None:
                    progress(futures[future])
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    return solved
