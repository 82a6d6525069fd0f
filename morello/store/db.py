"""The persistent memo table: ``table.py``'s regions in an SQLite file.

One row per page holds that page's regions, compressed. Every write is one transaction
that re-reads the pages it touches, merges the new points into them and writes them
back, so a crash or a ``kill -9`` leaves the last committed state (SQLite's write-ahead
log), and two processes writing at once serialize on SQLite's write lock instead of
overwriting each other. Solutions are written in the order the search finds them,
children before parents, so a solution in the file always has its sub-Specs' solutions
there too, which is what recomputing its cost needs.

The file records the format version, the target and the cost model (its explicit
version and the host's rates); a file that disagrees on any of them is refused rather
than misread.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sqlite3
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morello.core.cost import DEFAULT_MODEL, CostModel
from morello.core.memo import Solution
from morello.core.rewrites import Action, Refused, expand
from morello.core.spec import Spec
from morello.core.target import AVX2_LIMITS
from morello.errors import FileAccessError, MemoTableError
from morello.store import cache_dir, table
from morello.store.table import Point, Regions, decode_action, encode_action, locate

TARGET = f"avx2 {AVX2_LIMITS}"

FLUSH_EVERY = 50_000  # solutions kept in memory before a write; bounds loss on a crash
LOCK_TIMEOUT_S = 300.0  # waiting for another process's write is normal, not an error

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
                                  coords INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS actions(id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS pages(table_id INTEGER NOT NULL REFERENCES tables(id),
                                 page INTEGER NOT NULL, regions INTEGER NOT NULL,
                                 specs INTEGER NOT NULL, data BLOB NOT NULL,
                                 PRIMARY KEY(table_id, page)) WITHOUT ROWID;
"""


def model_fingerprint(model: CostModel) -> str:
    """The model: the table's format, the target, the cost model's version and rates."""
    text = f"format {table.FORMAT_VERSION}\n{TARGET}\n{model.key}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def db_file_name(model: CostModel = DEFAULT_MODEL) -> str:
    """The file name of this model's memo table: named by its fingerprint, so a new version
    of the model, or another host's rates, starts its own file instead of meeting an
    incompatible one."""
    return f"memo-{model_fingerprint(model)[:16]}.sqlite3"


def default_db_path(model: CostModel = DEFAULT_MODEL) -> Path:
    """$MORELLO_DB, else in the user's cache directory, named by the model fingerprint."""
    if os.environ.get("MORELLO_DB"):
        return Path(os.environ["MORELLO_DB"])
    return cache_dir() / db_file_name(model)


@dataclass(frozen=True, slots=True)
class TableStats:
    key: str
    pages: int
    regions: int
    specs: int


@dataclass(frozen=True, slots=True)
class DBStats:
    path: Path
    tables: tuple[TableStats, ...]
    file_bytes: int
    region_bytes: int  # compressed region data alone
    row_per_spec_bytes: int  # the same solutions as one row per Spec: coordinates + action

    @property
    def specs(self) -> int:
        return sum(t.specs for t in self.tables)

    @property
    def regions(self) -> int:
        return sum(t.regions for t in self.tables)


class MemoDB:
    """A ``Memo`` backed by a file. Lookups read pages once per process; new solutions
    are kept in memory and written every ``flush_every`` solutions and by ``flush()``."""

    def __init__(
        self,
        path: Path | str,
        model: CostModel = DEFAULT_MODEL,
        *,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.flush_every = flush_every
        self.loaded = 0  # solutions answered from the file
        self._solved: dict[tuple[Spec, int], Solution] = {}
        self._pending: list[tuple[Point, Action | None]] = []
        self._pages: dict[tuple[int, int], Regions] = {}
        self._tables: dict[str, tuple[int, int]] = {}  # key -> (id, coordinates)
        self._actions: dict[str, int] = {}
        self._action_text: dict[int, str] = {}
        self._version = -1
        self._conn = self._open()

    # --- Opening and checking.

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FileAccessError(f"cannot create {self.path.parent}: {e.strerror or e}") from None
        try:
            conn = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise FileAccessError(f"cannot open memo table {self.path}: {e}") from None
        try:
            _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process crashes
            with _transaction(conn):
                for statement in _SCHEMA.split(";"):
                    conn.execute(statement)
                self._check_meta(conn)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise MemoTableError(
                f"{self.path} is not a readable morello memo table ({e}); "
                "delete it or pass another --db"
            ) from None
        except MemoTableError:
            conn.close()
            raise
        return conn

    def _check_meta(self, conn: sqlite3.Connection) -> None:
        expected = {
            "format": str(table.FORMAT_VERSION),
            "target": TARGET,
            "model": model_fingerprint(self.model),
        }
        found = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if not found:
            conn.executemany("INSERT INTO meta VALUES (?, ?)", expected.items())
            return
        what = {"format": "format version", "target": "target", "model": "cost model"}
        for name, value in expected.items():
            if found.get(name) != value:
                raise MemoTableError(
                    f"{self.path} was written for another {what[name]} "
                    f"({_short(found.get(name, 'none'))}, this morello has {_short(value)}); "
                    "its solutions would be misread: delete it or pass another --db"
                )

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._conn.close()

    def __enter__(self) -> MemoDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- The Memo interface.

    def get(self, spec: Spec, threads: int) -> Solution | None:
        key = (spec, 1 if spec.serial else threads)
        found = self._solved.get(key)
        if found is not None:
            return found
        action_id = self._find(locate(*key))
        if action_id is None:
            return None
        solution = self._derive(spec, threads, self._action(action_id))
        if solution is not None:
            self._solved[key] = solution
            self.loaded += 1
        return solution

    def put(self, spec: Spec, threads: int, solution: Solution) -> None:
        key = (spec, 1 if spec.serial else threads)
        self._solved[key] = solution
        self._pending.append((locate(*key), solution.action))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def __len__(self) -> int:
        return len(self._solved)

    def contains(self, spec: Spec, threads: int) -> bool:
        """Whether ``spec`` is solved, without recomputing its cost."""
        key = (spec, 1 if spec.serial else threads)
        return key in self._solved or self._find(locate(*key)) is not None

    def _derive(self, spec: Spec, threads: int, action: Action | None) -> Solution | None:
        """The stored action's cost, from its sub-Specs' solutions (also stored)."""
        if action is None:
            return Solution(None, math.inf)
        children = expand(spec, action)
        if isinstance(children, Refused):
            return None  # an action of another model: solve the Spec again
        costs = []
        for child in children:
            sol = self.get(child, threads)
            if sol is None or sol.action is None:
                return None  # not written by a search of this model: solve it again
            costs.append(sol.cost)
        return Solution(action, self.model.cost(spec, action, children, costs, threads))

    # --- Reading.

    def refresh(self) -> None:
        """Forget cached pages if another process has written since they were read."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            self._pages.clear()
            self._tables = {
                key: (tid, coords)
                for tid, key, coords in self._conn.execute("SELECT id, key, coords FROM tables")
            }
            self._load_actions()

    def _load_actions(self) -> None:
        for aid, text in self._conn.execute("SELECT id, text FROM actions"):
            self._actions[text] = aid
            self._action_text[aid] = text

    def _action(self, action_id: int) -> Action | None:
        if action_id not in self._action_text:  # written by another process since we looked
            self._load_actions()
        return decode_action(self._action_text[action_id])

    def _find(self, point: Point) -> int | None:
        if self._version < 0:
            self.refresh()
        entry = self._tables.get(point.table)
        if entry is None:
            return None
        page = self._page(entry[0], point.page, entry[1])
        return page.find(point.coords)

    def _page(self, table_id: int, page: int, coords: int) -> Regions:
        cached = self._pages.get((table_id, page))
        if cached is None:
            try:
                row = self._conn.execute(
                    "SELECT data FROM pages WHERE table_id = ? AND page = ?", (table_id, page)
                ).fetchone()
                cached = (
                    Regions.empty(coords) if row is None else Regions.from_bytes(row[0], coords)
                )
            except (sqlite3.Error, zlib.error, ValueError) as e:
                raise MemoTableError(
                    f"{self.path} is not a readable morello memo table (page {page} of table "
                    f"{table_id}: {e}); delete it or pass another --db"
                ) from None
            self._pages[(table_id, page)] = cached
        return cached

    # --- Writing.

    def flush(self) -> None:
        """Write every pending solution in one transaction."""
        if not self._pending:
            return
        pending = self._pending
        written: dict[tuple[int, int], Regions] = {}
        try:
            self._write(pending, written)
        except BaseException as e:
            self._version = -1  # ids handed out in the rolled-back transaction are void
            self._tables.clear()
            self._actions.clear()
            if isinstance(e, sqlite3.Error):
                raise MemoTableError(f"cannot write the memo table {self.path}: {e}") from None
            raise
        self._pending = []
        self._pages.update(written)

    def _write(
        self, pending: list[tuple[Point, Action | None]], written: dict[tuple[int, int], Regions]
    ) -> None:
        with _transaction(self._conn):
            table_ids = {p.table: self._table_id(p) for p, _ in pending}
            action_ids = {
                text: self._action_id(text) for text in {encode_action(a) for _, a in pending}
            }
            by_table: dict[int, list[tuple[int, tuple[int, ...], int]]] = defaultdict(list)
            for point, action in pending:
                by_table[table_ids[point.table]].append(
                    (point.page, point.coords, action_ids[encode_action(action)])
                )
            for tid, points in by_table.items():
                written.update(self._write_table(tid, points))

    def _write_table(
        self, tid: int, points: list[tuple[int, tuple[int, ...], int]]
    ) -> dict[tuple[int, int], Regions]:
        """Merge new points into their pages of one table: all pages in one vectorized
        merge, with the page as a leading coordinate that is never merged along.

        Regions stay disjoint (so a page's Spec count is the sum of its regions' volumes):
        a point another process or an earlier search already wrote is not added again."""
        rows = np.unique(np.array([(page, *c, a) for page, c, a in points], np.int64), axis=0)
        dims = rows.shape[1] - 2
        parts = []
        for page in np.unique(rows[:, 0]).tolist():
            new = rows[rows[:, 0] == page]
            row = self._conn.execute(
                "SELECT data FROM pages WHERE table_id = ? AND page = ?", (tid, page)
            ).fetchone()
            if row is not None:
                old = Regions.from_bytes(row[0], dims)
                new = new[~old.covers(new[:, 1:-1])]
                tag = np.full((len(old), 1), page, np.int64)
                parts.append(
                    Regions(np.hstack((tag, old.lo)), np.hstack((tag, old.hi)), old.action)
                )
            parts.append(Regions.of_points(new[:, :-1], new[:, -1]))
        regions = Regions.concatenate(parts).merged(fixed=1)
        written = {}
        for page in np.unique(rows[:, 0]).tolist():
            here = regions.lo[:, 0] == page
            merged = Regions(regions.lo[here, 1:], regions.hi[here, 1:], regions.action[here])
            self._conn.execute(
                "INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                (tid, page, len(merged), merged.specs, merged.to_bytes()),
            )
            written[(tid, page)] = merged
        return written

    # Ids are handed out inside the caller's transaction, so never twice for one value.

    def _table_id(self, point: Point) -> int:
        if point.table not in self._tables:
            self._conn.execute(
                "INSERT OR IGNORE INTO tables(key, coords) VALUES (?, ?)",
                (point.table, len(point.coords)),
            )
            row = self._conn.execute("SELECT id FROM tables WHERE key = ?", (point.table,))
            self._tables[point.table] = (row.fetchone()[0], len(point.coords))
        return self._tables[point.table][0]

    def _action_id(self, text: str) -> int:
        if text not in self._actions:
            self._conn.execute("INSERT OR IGNORE INTO actions(text) VALUES (?)", (text,))
            (aid,) = self._conn.execute("SELECT id FROM actions WHERE text = ?", (text,)).fetchone()
            self._actions[text] = aid
            self._action_text[aid] = text
        return self._actions[text]

    def trim(self) -> None:
        """Drop solutions held in memory once they are written; the file answers them."""
        self.flush()
        self._solved.clear()

    def take_pending(self) -> list[tuple[Point, Action | None]]:
        """The solutions put since the last flush or take, handed over instead of written:
        a precompute worker's, which the process that owns the file writes."""
        taken, self._pending = self._pending, []
        return taken

    def put_points(self, points: list[tuple[Point, Action | None]]) -> None:
        """Solutions another process found: written by the next flush."""
        self._pending.extend(points)

    # --- Reporting.

    def stats(self) -> DBStats:
        self.flush()
        rows = self._conn.execute(
            "SELECT t.key, t.coords, count(*), sum(p.regions), sum(p.specs), "
            "sum(length(p.data)) FROM pages p JOIN tables t ON t.id = p.table_id "
            "GROUP BY t.id ORDER BY sum(p.specs) DESC"
        ).fetchall()
        tables = tuple(
            TableStats(key, pages, regions, specs) for key, _, pages, regions, specs, _ in rows
        )
        # One row per Spec would hold its table id, its coordinates and its action id.
        per_spec = sum(specs * 4 * (coords + 2) for _, coords, _, _, specs, _ in rows)
        files = [self.path, Path(f"{self.path}-wal")]
        return DBStats(
            self.path,
            tables,
            sum(f.stat().st_size for f in files if f.exists()),
            sum(r[5] for r in rows),
            per_spec,
        )


def _short(value: str) -> str:
    return repr(value[:16] + "..." if len(value) > 16 else value)


def _wal(conn: sqlite3.Connection) -> None:
    """Switches the file to write-ahead logging. That takes an exclusive lock, and SQLite
    reports a conflict with another process opening the same new file at that moment as
    "database is locked" at once, without waiting: so wait here, as for any other lock."""
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front, so two writers queue instead of one
    failing halfway; any exception, KeyboardInterrupt included, rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_memo(path: Path | None, model: CostModel = DEFAULT_MODEL) -> MemoDB:
    """The memo table of ``model`` at ``path``, or at the default location."""
    return MemoDB(default_db_path(model) if path is None else path, model)


def format_stats(stats: DBStats, largest: int = 10) -> str:
    def ratio(a: int, b: int) -> str:
        return f"{a / b:,.1f}x" if b else "-"

    lines = [
        f"memo table {stats.path}",
        f"  tables            {len(stats.tables):>12,}",
        f"  Specs covered     {stats.specs:>12,}",
        f"  regions stored    {stats.regions:>12,}   "
        f"{ratio(stats.specs, stats.regions)} Specs per region",
        f"  bytes on disk     {stats.file_bytes:>12,}   "
        f"{ratio(stats.row_per_spec_bytes, stats.file_bytes)} smaller than one row per Spec "
        f"({stats.row_per_spec_bytes:,} bytes)",
        f"  region data       {stats.region_bytes:>12,}   compressed, "
        f"{ratio(stats.row_per_spec_bytes, stats.region_bytes)} smaller",
    ]
    if largest and stats.tables:
        lines += ["", f"  {'Specs':>10}  {'regions':>8}  {'ratio':>7}  table (largest first)"]
        for t in stats.tables[:largest]:
            lines.append(
                f"  {t.specs:>10,}  {t.regions:>8,}  {ratio(t.specs, t.regions):>7}  {t.key}"
            )
    return "\n".join(lines)
