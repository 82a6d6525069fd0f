"""The persistent memo table (``morello/db.py``): answers read back equal answers computed,
warm synthesis does not search, and the file survives kills, concurrent writers and
foreign or corrupt files."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morello.core import cost
from morello.core.cost import CostModel
from morello.core.memo import InMemoryMemo
from morello.core.rates import RATES
from morello.core.rewrites import canonical
from morello.core.search import synthesize
from morello.core.spec import Spec, matmul_problem
from morello.front.api import synthesize_spec
from morello.store.db import MemoDB, MemoTableError, db_file_name


def solved_in_memory(spec: Spec, threads: int = 1) -> InMemoryMemo:
    memo = InMemoryMemo()
    synthesize(spec, threads=threads, memo=memo)
    return memo


def assert_file_agrees(path: Path, memo: InMemoryMemo, *, complete: bool) -> int:
    """Every solution the file holds equals the in-memory one, action and cost exactly;
    with ``complete``, it holds all of them. Returns how many it holds."""
    held = 0
    with MemoDB(path) as db:
        for (spec, threads), expected in memo._table.items():
            if not db.contains(spec, threads):
                assert not complete, f"{spec} missing"
                continue
            assert db.get(spec, threads) == expected, spec
            held += 1
    return held


problems = st.builds(
    lambda m, k, n, dt, lay, threads: (f"{m}x{k}x{n}", dt, lay, threads),
    st.integers(1, 12),
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(["f32,f32,f32", "bf16,bf16,f32", "f32,bf16,f32"]),
    st.sampled_from(["row,row,row", "row,col,row", "col,row,col"]),
    st.sampled_from([1, 2]),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(problems)
def test_solutions_read_back_from_the_file_equal_those_computed_without_it(
    tmp_path: Path, problem: tuple[str, str, str, int]
) -> None:
    shape, dtypes, layouts, threads = problem
    spec = canonical(matmul_problem(shape, dtypes, layouts, threads=threads))
    path = tmp_path / f"{shape}-{dtypes}-{layouts}-{threads}.sqlite3".replace(",", "_")
    with MemoDB(path, flush_every=97) as db:  # several flushes: merges into written pages
        synthesize(spec, threads=threads, memo=db)
    assert assert_file_agrees(path, solved_in_memory(spec, threads), complete=True) > 0


def test_the_table_is_named_by_the_model_version_and_rates_not_the_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An edit that prices nothing differently keeps users' tables; a version bump does not.
    before = db_file_name(CostModel())
    assert db_file_name(CostModel(limits=CostModel().limits._replace(l2=1 << 18))) == before
    monkeypatch.setattr(cost, "MODEL_VERSION", cost.MODEL_VERSION + 1)
    assert db_file_name(CostModel()) != before


def test_a_solved_spec_is_answered_without_searching(tmp_path: Path) -> None:
    spec = matmul_problem("1x256x512", "bf16,bf16,f32", "row,col,row")
    path = tmp_path / "memo.sqlite3"
    with MemoDB(path) as db:
        cold = synthesize_spec(spec, memo=db)
    with MemoDB(path) as db:
        warm = synthesize_spec(spec, memo=db)
        assert db.loaded > 0
    assert cold.stats.specs_solved > 1000
    assert warm.stats.specs_solved == 0
    assert warm.program.cost == cold.program.cost
    assert warm.to_header("gemm") == cold.to_header("gemm")


def test_a_larger_spec_reuses_the_smaller_optima(tmp_path: Path) -> None:
    small = matmul_problem("1x128x64", "bf16,bf16,f32", "row,col,row")
    large = matmul_problem("1x128x512", "bf16,bf16,f32", "row,col,row")
    path = tmp_path / "memo.sqlite3"
    with MemoDB(path) as db:
        synthesize_spec(small, memo=db)
    with MemoDB(path) as db:
        reusing = synthesize_spec(large, memo=db)
        assert db.loaded > 0
    alone = synthesize_spec(large, memo=InMemoryMemo())
    assert reusing.stats.specs_solved < alone.stats.specs_solved
    assert reusing.program.cost == alone.program.cost


WRITER = textwrap.dedent(
    """
    import sys
    from morello.core.spec import matmul_problem
    from morello.store.db import MemoDB
    from morello.core.search import synthesize
    from morello.core.rewrites import canonical

    path, shape, flush_every = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = canonical(matmul_problem(shape, "f32,f32,f32"))
    with MemoDB(path, flush_every=flush_every) as db:
        synthesize(spec, memo=db)
    """
)


def start_writer(tmp_path: Path, path: Path, shape: str, flush_every: int) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(path), shape, str(flush_every)])


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_kill_9_leaves_a_readable_file_with_every_committed_solution(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    shape = "24x64x40"
    writer = start_writer(tmp_path, path, shape, flush_every=100)
    deadline = time.monotonic() + 60
    pages = 0
    while pages < 3 and time.monotonic() < deadline:  # wait for a few commits
        time.sleep(0.05)
        if path.exists():
            try:
                conn = sqlite3.connect(path, timeout=5)
                pages = conn.execute("SELECT count(*) FROM pages").fetchone()[0]
                conn.close()
            except sqlite3.OperationalError:
                pass  # the schema is not there yet
    assert writer.poll() is None, "the writer finished before it could be killed"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert integrity(path) == "ok"
    memo = solved_in_memory(canonical(matmul_problem(shape, "f32,f32,f32")))
    held = assert_file_agrees(path, memo, complete=False)
    assert 0 < held < len(memo)
    # Synthesis picks up where the killed process stopped.
    with MemoDB(path) as db:
        resumed = synthesize(canonical(matmul_problem(shape, "f32,f32,f32")), memo=db)[1]
    assert resumed.specs_solved == len(memo) - held
    assert_file_agrees(path, memo, complete=True)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    shapes = ("24x64x48", "32x48x64")  # overlapping sub-Specs, different tops
    writers = [start_writer(tmp_path, path, s, flush_every=200) for s in shapes]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    assert integrity(path) == "ok"
    distinct = set()
    for shape in shapes:
        memo = solved_in_memory(canonical(matmul_problem(shape, "f32,f32,f32")))
        assert assert_file_agrees(path, memo, complete=True) == len(memo)
        distinct |= set(memo._table)
    with MemoDB(path) as db:  # Specs both solved are stored, and counted, once
        assert db.stats().specs == len(distinct)


def test_a_file_of_another_format_target_or_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    with MemoDB(path) as db:
        synthesize(canonical(matmul_problem("4x4x4", "f32,f32,f32")), memo=db)
    for name, words in (
        ("format", "format version"),
        ("target", "target"),
        ("model", "cost model"),
    ):
        conn = sqlite3.connect(path)
        (old,) = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        conn.execute("UPDATE meta SET value = 'other' WHERE name = ?", (name,))
        conn.commit()
        with pytest.raises(MemoTableError, match=f"another {words}"):
            MemoDB(path)
        conn.execute("UPDATE meta SET value = ? WHERE name = ?", (old, name))
        conn.commit()
        conn.close()
    MemoDB(path).close()  # restored: accepted again


def test_a_host_with_other_rates_has_a_table_of_its_own(tmp_path: Path) -> None:
    calibrated = CostModel(replace(RATES, loads_per_cycle=3.0))
    assert db_file_name(calibrated) != db_file_name(CostModel())
    path = tmp_path / "memo.sqlite3"
    with MemoDB(path) as db:
        synthesize(canonical(matmul_problem("4x4x4", "f32,f32,f32")), memo=db)
    with pytest.raises(MemoTableError, match="another cost model"):
        MemoDB(path, calibrated)
    with MemoDB(tmp_path / "calibrated.sqlite3", calibrated) as db:
        program, _ = synthesize(canonical(matmul_problem("64x64x64", "f32,f32,f32")), memo=db)
    with MemoDB(tmp_path / "calibrated.sqlite3", calibrated) as db:
        again, stats = synthesize(canonical(matmul_problem("64x64x64", "f32,f32,f32")), memo=db)
    assert again == program and stats.specs_solved == 0  # its costs, derived from its rates
    # A table is searched only by its own model: the costs in it are that model's.
    with pytest.raises(MemoTableError, match="another cost model"):
        synthesize_spec(matmul_problem("4x4x4", "f32,f32,f32"), memo=InMemoryMemo(calibrated))


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_corrupt_file_gets_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "memo.sqlite3"
    path.write_bytes(content)
    with pytest.raises(MemoTableError, match="not a readable morello memo table"):
        MemoDB(path)
    assert path.read_bytes() == content  # and it is left as it was


def test_an_interrupted_write_rolls_back_and_can_be_retried(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    spec = canonical(matmul_problem("8x8x8", "f32,f32,f32"))
    db = MemoDB(path, flush_every=10**9)
    synthesize_without_flush = InMemoryMemo()
    synthesize(spec, memo=synthesize_without_flush)
    for (s, t), sol in synthesize_without_flush._table.items():
        db.put(s, t, sol)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    original = db._write_table
    db._write_table = interrupt  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        db.flush()
    db._write_table = original  # type: ignore[method-assign]
    assert assert_file_agrees(path, synthesize_without_flush, complete=False) == 0
    db.close()  # the retry writes everything
    assert_file_agrees(path, synthesize_without_flush, complete=True)


def test_a_damaged_page_and_a_failed_write_get_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "memo.sqlite3"
    spec = canonical(matmul_problem("4x8x8", "f32,f32,f32"))
    with MemoDB(path) as db:
        synthesize(spec, memo=db)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE pages SET data = x'00ff00ff'")
    conn.commit()
    conn.close()
    with MemoDB(path) as db, pytest.raises(MemoTableError, match="not a readable morello memo"):
        db.get(spec, 1)

    # A write that cannot get the lock in time (here another connection holds it).
    fresh = tmp_path / "fresh.sqlite3"
    db = MemoDB(fresh)
    db._conn.execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(fresh, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    db.put(spec, 1, solved_in_memory(spec).get(spec, 1))  # type: ignore[arg-type]
    with pytest.raises(MemoTableError, match=r"cannot write the memo table.*locked"):
        db.flush()
    holder.execute("ROLLBACK")
    db.close()  # the pending solution is written once the lock is free
    with MemoDB(fresh) as again:
        assert again.contains(spec, 1)


def _open_at(path: Path, start: float) -> str:
    while time.time() < start:
        pass
    try:
        with MemoDB(path):
            return "ok"
    except MemoTableError as e:
        return str(e)


def test_two_processes_creating_the_file_at_the_same_instant_both_open_it(tmp_path: Path) -> None:
    # Switching a new file to WAL needs an exclusive lock; SQLite answers the loser of that
    # race "database is locked" at once instead of waiting (57 of 60 tries failed before).
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for attempt in range(10):
            path = tmp_path / f"memo-{attempt}.sqlite3"
            start = time.time() + 0.2
            assert pool.starmap(_open_at, [(path, start), (path, start)]) == ["ok", "ok"]
