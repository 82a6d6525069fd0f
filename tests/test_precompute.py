"""``morello precompute``: every problem lands in the file, correct, through any
``concurrent.futures.Executor``, and an interrupted run resumes where it stopped."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

import pytest

from morello.core.memo import InMemoryMemo
from morello.core.rewrites import canonical
from morello.core.search import synthesize
from morello.errors import SpecError
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
    memo = getattr(precompute._WORKER, "memo", None)
    if memo is not None:
        memo.close()
    precompute._WORKER.__dict__.clear()


@pytest.mark.parametrize("reads_file", [True, False], ids=["reads-file", "no-file"])
def test_any_executor_runs_the_batches(
    tmp_path: Path, inline_workers: None, reads_file: bool
) -> None:
    path = tmp_path / "memo.sqlite3"
    todo = precompute.problems(3, ["f32,bf16,f32"], ["col,col,col"])
    progress: list[int] = []
    solved = precompute.run(
        path,
        todo,
        executor=InlineExecutor(),
        workers_read_file=reads_file,
        progress=progress.append,
    )
    assert solved == len(todo) and sum(progress) == len(todo)
    assert_all_solved(path, todo)


def test_a_new_run_hands_over_every_sub_spec_again(tmp_path: Path, inline_workers: None) -> None:
    """A worker that outlives its caller (a cluster's) keeps solutions the caller may never
    have written: the next run must not take them for written."""
    todo = precompute.problems(3, ["f32,f32,f32"], ["row,row,row"])
    precompute.run(
        tmp_path / "lost.sqlite3", todo, executor=InlineExecutor(), workers_read_file=False
    )
    path = tmp_path / "memo.sqlite3"
    precompute.run(path, todo, executor=InlineExecutor(), workers_read_file=False)
    assert_all_solved(path, todo)
    with MemoDB(path) as db:
        assert db.stats().specs > len(todo)  # the sub-Specs came too


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


# --- On a Dask distributed cluster: a scheduler and two workers on localhost, each worker
# in a directory of its own (no shared file system is assumed).


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    pytest.importorskip("distributed")
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")  # the command-line tool, as users run it
    address = f"tcp://127.0.0.1:{_free_port()}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            address.rsplit(":", 1)[1],
            "--dashboard-address",
            ":0",
        ],
        cwd=tmp_path,
        **quiet,
    )
    workers = []
    for name in ("w1", "w2"):
        own = tmp_path / name
        own.mkdir()
        workers.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--no-nanny",
                    "--nthreads",
                    "1",
                    "--local-directory",
                    str(own),
                    "--dashboard-address",
                    ":0",
                ],
                cwd=own,
                **quiet,
            )
        )
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in [*workers, scheduler]:
            p.kill()
            p.wait()


def test_the_command_runs_on_a_cluster(tmp_path: Path, cluster) -> None:
    address, _ = cluster
    path = tmp_path / "memo.sqlite3"
    command = [sys.executable, "-m", "morello", "precompute", "--max-size", "3"]
    done = subprocess.run(
        [*command, "--scheduler", address, "--db", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"solving 54 on the cluster at {address}" in done.stderr
    assert_all_solved(path, precompute.problems(3, DTYPES, ["row,row,row"]))


def test_a_worker_killed_mid_run_loses_nothing(tmp_path: Path, cluster) -> None:
    address, workers = cluster
    path = tmp_path / "memo.sqlite3"
    todo = precompute.problems(4, DTYPES, ["row,col,row"])
    finished: list[int] = []

    def kill_one_worker(count: int) -> None:
        if not finished:
            workers[0].kill()  # after the first batch: the rest of the run has one worker
        finished.append(count)

    solved = precompute.run_on_cluster(path, todo, address, progress=kill_one_worker)
    assert workers[0].poll() is not None
    assert solved == len(todo) == sum(finished)
    assert_all_solved(path, todo)


def test_an_unreachable_scheduler_is_named() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(SpecError, match="cannot reach the scheduler"):
        precompute.run_on_cluster(
            Path("unused.sqlite3"), [], f"tcp://127.0.0.1:{_free_port()}", connect_timeout_s=2
        )
