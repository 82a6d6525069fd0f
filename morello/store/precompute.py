"""``morello precompute``: fill a memo table with every matmul up to given sizes.

Problems are solved in stages of equal M+K+N. Tiling shrinks a dimension, so most
sub-Specs a stage needs were solved by earlier stages. A stage is split into batches
that go to a ``concurrent.futures.Executor``: local processes, which read the file for
what earlier stages solved, or a Dask cluster's workers, which share no file system and
keep what they solved in memory. Workers hand their solutions back; the calling process
alone writes the file, one transaction per finished batch, so an interrupted run loses at
most the batches in flight, and running it again skips every problem already in the file.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from morello.core.cost import DEFAULT_MODEL, CostModel
from morello.core.memo import InMemoryMemo, Solution
from morello.core.rewrites import Action, canonical
from morello.core.search import Search
from morello.core.spec import Spec, matmul_problem
from morello.core.target import AVX2_LIMITS, MemoryLimits
from morello.errors import SpecError
from morello.store.db import MemoDB
from morello.store.table import Point, locate

BATCHES_PER_WORKER = 2  # per stage: enough to even out uneven batches, few transactions
MAX_BATCH = 512
WORKER_MEMORY_SPECS = 2_000_000  # solutions a worker keeps in memory before dropping them
CONNECT_TIMEOUT_S = 30


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


Found = list[tuple[Point, Action | None]]  # solutions as the table stores them


def solve_batch(
    run: str, db_path: str | None, model: CostModel, batch: Sequence[Task]
) -> tuple[int, Found]:
    """Solve ``batch`` in a worker. Returns how many problems needed it and every solution
    the worker found for them, sub-Specs included, children before parents, for the caller
    to write: workers never write the table. A worker that can read the file (``db_path``)
    starts from it; one that cannot (a cluster's) starts empty. Either keeps what it solved
    in memory across the batches of one run, so shared sub-Specs are solved once a worker.
    Module-level and picklable for any executor."""
    memo = _worker_memo(run, db_path, model)
    if isinstance(memo, MemoDB):
        memo.refresh()  # the caller has written other workers' batches since
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    solved = 0
    for problem in batch:
        spec = canonical(problem.spec(model.limits))
        if not memo.contains(spec, problem.threads):
            Search(problem.threads, memo, model=model).solve(spec)
            solved += 1
    found = memo.take_pending()
    if len(memo) > WORKER_MEMORY_SPECS:
        memo.trim()  # everything in it has been handed over
    return solved, found


class _RecordingMemo(InMemoryMemo):
    """A worker's memory when it cannot read the file: what it solves, recorded as the
    table's points until taken."""

    def __init__(self, model: CostModel) -> None:
        super().__init__(model)
        self._pending: Found = []

    def put(self, spec: Spec, threads: int, solution: Solution) -> None:
        super().put(spec, threads, solution)
        self._pending.append((locate(*self._key(spec, threads)), solution.action))

    def contains(self, spec: Spec, threads: int) -> bool:
        return self.get(spec, threads) is not None

    def take_pending(self) -> Found:
        taken, self._pending = self._pending, []
        return taken

    def trim(self) -> None:
        self._table.clear()


# Each worker thread's memo and the run it serves (a Dask worker may run batches on
# several threads). A new run starts a new memo: a solution kept from an earlier run may
# never have reached that run's file (its caller stopped), and a batch must hand over
# every sub-Spec its solutions need.
_WORKER = threading.local()


def _worker_memo(run: str, db_path: str | None, model: CostModel) -> MemoDB | _RecordingMemo:
    if getattr(_WORKER, "run", None) != run:
        if getattr(_WORKER, "memo", None) is not None:
            _WORKER.memo.close()
        _WORKER.memo = (
            _RecordingMemo(model)
            if db_path is None
            else MemoDB(db_path, model, flush_every=sys.maxsize)  # it hands over, never writes
        )
        _WORKER.run = run
    return _WORKER.memo


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
    workers_read_file: bool = True,
    progress: Callable[[int], None] | None = None,
    model: CostModel = DEFAULT_MODEL,
) -> int:
    """Solve ``todo`` into the file at ``db_path``; returns how many needed solving.

    ``executor`` runs the batches (default: ``workers`` local processes); the caller alone
    writes the file, a transaction per finished batch. With ``workers_read_file`` False
    (a cluster's workers, which share no file system) workers are handed no path.
    ``progress`` is called with the number of problems each finished batch covered."""
    own = executor is None
    if executor is None:
        # Spawned workers: a forked one would inherit the parent's connection and caches.
        ctx = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    run_id = uuid.uuid4().hex
    path = str(db_path) if workers_read_file else None
    memo = MemoDB(db_path, model)
    solved = 0
    try:
        for stage in stages(todo, workers):
            futures = {executor.submit(solve_batch, run_id, path, model, b): len(b) for b in stage}
            for future in as_completed(futures):
                count, found = future.result()
                memo.put_points(found)
                memo.flush()
                solved += count
                if progress is not None:
                    progress(futures[future])
    finally:
        memo.close()
        if own:
            executor.shutdown(cancel_futures=True)
    return solved


def run_on_cluster(
    db_path: Path,
    todo: Sequence[Task],
    scheduler: str,
    *,
    progress: Callable[[int], None] | None = None,
    model: CostModel = DEFAULT_MODEL,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> int:
    """``run`` on a running Dask distributed cluster (``dask scheduler`` and ``dask
    worker``s, the optional extra ``morello[dask]``). Dask reruns the batches of a worker
    that dies; this process alone writes the file, so stopping it and running again
    continues with what is left."""
    try:
        from distributed import Client
    except ImportError:
        raise SpecError("--scheduler needs Dask distributed: pip install 'morello[dask]'") from None
    try:
        client = Client(scheduler, timeout=connect_timeout_s)
    except OSError as e:
        raise SpecError(f"--scheduler {scheduler}: cannot reach the scheduler ({e})") from None
    with client:
        workers = max(1, sum(client.nthreads().values()))
        with client.get_executor(pure=False) as executor:
            return run(
                db_path,
                todo,
                executor=executor,
                workers=workers,
                workers_read_file=False,
                progress=progress,
                model=model,
            )
