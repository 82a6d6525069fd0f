"""``morello precompute``: every problem lands in the file, correct, through any
``concurrent.futures.Executor``, and an interrupted run resumes where it stopped."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

import pytest

from morello.core.memo import InMemoryMemo
from morello.core.rewrites import canonical
from morello.core.search import synthesize
from morello.store import precompute
from morello.store.db import MemoDB

DTYPES = ["f32,f32,f32", "bf16,bf16,f32"]


def assert_all_solved(path: Path, todo: list[precompute.Task]) -> None:
    with MemoDB(path) as db:
        for p in todo:
            spec = canonical(p.spec())
            memo = InMemoryMemo()
            synthesize(spec, threads=p.threads, memo=memo)
            assert db.get(spec, p.threads) == memo.get(spec, p.threads), p


def test_processes_fill_the_file_and_a_rerun_solves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    todo = precompute.problems(4, DTYPES, ["row,col,row"])
    assert len(todo) == 2 * 4**3
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        assert precompute.run(path, todo, executor=pool, workers=2) == len(todo)
    assert_all_solved(path, todo)
    assert precompute.pending(path, todo) == []
    assert precompute.run(path, todo, workers=2) == 0


def test_an_interrupted_run_resumes_with_what_is_left(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    todo = precompute.problems(3, DTYPES, ["row,row,row"], threads=2)
    done, rest = todo[::2], todo[1::2]  # as if the run had stopped after some batches
    precompute.run(path, done, workers=1)
    left = precompute.pending(path, todo)
    assert set(left) == set(rest)
    assert precompute.run(path, left, workers=2) == len(rest)
    assert_all_solved(path, todo)


class InlineExecutor(Executor):
    """The smallest Executor: runs each call when submitted. A cluster engine's executor
    plugs in the same way."""

    def submit(self, fn: Callable, /, *args: object, **kwargs: object) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@pytest.fixture
def inline_workers() -> Iterator[None]:
    yield
    for memo in precompute._WORKER_MEMOS.values():
        memo.close()
    precompute._WORKER_MEMOS.clear()


def test_any_executor_runs_the_batches(tmp_path: Path, inline_workers: None) -> None:
    path = tmp_path / "memo.sqlite3"
    todo = precompute.problems(3, ["f32,bf16,f32"], ["col,col,col"])
    progress: list[int] = []
    solved = precompute.run(path, todo, executor=InlineExecutor(), progress=progress.append)
    assert solved == len(todo) and sum(progress) == len(todo)
    assert_all_solved(path, todo)


def test_stages_follow_m_plus_k_plus_n_and_partition_the_problems() -> None:
    todo = precompute.problems(5, DTYPES, ["row,row,row"])
    stages = precompute.stages(todo, workers=2)
    sums = [{p.m + p.k + p.n for batch in stage for p in batch} for stage in stages]
    assert all(len(s) == 1 for s in sums)
    assert [s.pop() for s in sums] == list(range(3, 16))
    flat = [p for stage in stages for batch in stage for p in batch]
    assert sorted(flat, key=repr) == sorted(todo, key=repr)


def test_a_bad_dtype_is_named_before_any_work() -> None:
    with pytest.raises(ValueError, match="f16"):
        precompute.problems(2, ["f16,f32,f32"], ["row,row,row"])
