"""The durable record of what the watch daemon saw and did: one SQLite (WAL) file in the output folder.

One row per version of an input (its path plus content identity: size, mtime, SHA-256), with
its state, attempts (runs whose work failed, never runs cut short by the daemon's own end),
worker deaths (runs whose worker process died while it ran alone), products and error. Row ids
are never reused (``AUTOINCREMENT``): an id in a log, a quarantine reason or a status page link
names one input for good. The newest row of a path is the one that counts: a
file whose content changes gets a new row and is processed again. A row changes state only
along ``TRANSITIONS``; any other change is refused with ``TransitionError``. Only the daemon's
coordinating thread writes; ``image2 status`` reads concurrently (WAL).
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from image2.errors import Image2Error
from image2.watch.identity import FileStat

LEDGER_NAME = "image2-watch.sqlite"
"""The ledger's name in the output folder, where it is kept unless the operator says otherwise."""

WAITING, QUEUED, RUNNING, DONE, FAILED = "waiting", "queued", "running", "done", "failed"
STATES = (WAITING, QUEUED, RUNNING, DONE, FAILED)
"""``waiting``: an association waiting for its members; the others as their names say."""

NEW, GONE = "new", "gone"
"""Not states a row can be in: before its row exists, and after it was forgotten (deleted)."""

TRANSITIONS: Mapping[str, frozenset[str]] = {
    NEW: frozenset({WAITING, QUEUED, FAILED}),  # an arrival: queued, waiting for members, or invalid at once
    WAITING: frozenset({QUEUED, FAILED, GONE}),  # members complete; a member invalid or late; superseded
    QUEUED: frozenset({RUNNING, FAILED, GONE}),  # taken by a worker; gave up; vanished, changed or superseded
    RUNNING: frozenset({DONE, FAILED, QUEUED}),  # back to the queue: a retry, a shutdown, a daemon that died
    FAILED: frozenset({QUEUED, FAILED}),  # touched or dropped in again; judged invalid again
    DONE: frozenset(),  # for good: a new version of the file is a new row
}
"""Which state a row may go to from each: every ledger change is checked against this table."""

EXPOSURE, ASSOCIATION = "exposure", "association"


class TransitionError(RuntimeError):
    """A ledger change that the row's state does not allow: a defect of the daemon, never of an input."""

    def __init__(self, message: str, state: str, target: str) -> None:
        self.state = state
        self.target = target
        super().__init__(f"ledger: {message}")


class LedgerUnwritable(Image2Error):
    """The ledger cannot be written now (its disk is full, it is locked, its storage fails): a condition
    of the environment that passes, never a defect; nothing of the change was kept."""


Method = TypeVar("Method", bound=Callable[..., Any])


def _writes(method: Method) -> Method:
    """Mark a ledger method that writes: SQLite's refusals to write become LedgerUnwritable."""
    @functools.wraps(method)
    def write(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.OperationalError, OSError) as error:
            raise LedgerUnwritable(f"ledger {self.path} cannot be written: {error}") from error

    return write  # type: ignore[return-value]


def sources(target: str, among: Iterable[str] | None = None) -> tuple[str, ...]:
    """The states from which a row may become ``target`` (only those in ``among`` when given)."""
    allowed = tuple(state for state, targets in TRANSITIONS.items() if target in targets and state != NEW)
    return allowed if among is None else tuple(state for state in allowed if state in among)


_ITEMS = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    deaths INTEGER NOT NULL DEFAULT 0,
    found_by TEXT NOT NULL,
    overwrite INTEGER NOT NULL DEFAULT 0,
    products TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    quarantine TEXT,
    seen_at REAL NOT NULL,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    retry_at REAL,
    updated_at REAL NOT NULL
);
"""

_SCHEMA = _ITEMS.format(name="items") + """
CREATE INDEX IF NOT EXISTS items_by_path ON items (path, id);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
CREATE INDEX IF NOT EXISTS items_by_finish ON items (finished_at);
CREATE TABLE IF NOT EXISTS members (
    item_id INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS members_by_path ON members (path);
CREATE INDEX IF NOT EXISTS members_by_item ON members (item_id);
CREATE TABLE IF NOT EXISTS daemon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    watching TEXT NOT NULL,
    workers INTEGER NOT NULL,
    started_at REAL NOT NULL,
    beat_at REAL NOT NULL,
    stopped_at REAL,
    in_flight INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0
);
"""


@attrs.frozen
class Item:
    """One version of one input file and what became of it."""

    id: int
    path: Path
    kind: str
    size: int
    mtime_ns: int
    digest: str
    state: str
    attempts: int
    deaths: int
    found_by: str
    overwrite: bool
    products: tuple[str, ...]
    error: str | None
    quarantine: str | None
    seen_at: float
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    retry_at: float | None
    updated_at: float

    def same_version(self, stat: FileStat) -> bool:
        """True when ``stat`` shows the very file this row was made from (size and mtime unchanged)."""
        return (self.size, self.mtime_ns) == (stat.size, stat.mtime_ns)


@attrs.frozen
class DaemonInfo:
    """The daemon that last used the ledger, and its latest heartbeat."""

    pid: int
    host: str
    version: str
    watching: tuple[str, ...]
    workers: int
    started_at: float
    beat_at: float
    stopped_at: float | None
    in_flight: int
    pending: int


def _item(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"], path=Path(row["path"]), kind=row["kind"], size=row["size"], mtime_ns=row["mtime_ns"],
        digest=row["digest"], state=row["state"], attempts=row["attempts"],
        deaths=row["deaths"] if "deaths" in row.keys() else 0, found_by=row["found_by"],
        overwrite=bool(row["overwrite"]), products=tuple(json.loads(row["products"])), error=row["error"],
        quarantine=row["quarantine"], seen_at=row["seen_at"], queued_at=row["queued_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], retry_at=row["retry_at"],
        updated_at=row["updated_at"],
    )


class Ledger:
    """Read and change the ledger; every method is one transaction."""

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(self.path)
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=10)
        else:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._upgrade()
            self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA foreign_keys = ON")

    def _upgrade(self) -> None:
        """Rebuild an items table made by an earlier version (no worker deaths, ids reused after a delete),
        keeping every row and id; foreign keys are off here, so no member row is lost with the old table."""
        row = self._db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone()
        if row is None or "AUTOINCREMENT" in row[0]:
            return
        old = {r[1] for r in self._db.execute("PRAGMA table_info(items)")}
        with self._transaction():
            self._db.execute("DROP TABLE IF EXISTS items_upgraded")
            self._db.execute(_ITEMS.format(name="items_upgraded"))
            kept = ", ".join(r[1] for r in self._db.execute("PRAGMA table_info(items_upgraded)") if r[1] in old)
            self._db.execute(f"INSERT INTO items_upgraded ({kept}) SELECT {kept} FROM items")
            self._db.execute("DROP TABLE items")
            self._db.execute("ALTER TABLE items_upgraded RENAME TO items")

    @classmethod
    def in_folder(cls, output_dir: Path | str, readonly: bool = False) -> Ledger:
        """Open (or create) the ledger kept in ``output_dir``."""
        return cls(ledger_file(output_dir), readonly=readonly)

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed when the last connection closes)."""
        self._db.close()

    def _one(self, sql: str, *args: object) -> Item | None:
        row = self._db.execute(sql, args).fetchone()
        return None if row is None else _item(row)

    def _many(self, sql: str, *args: object) -> list[Item]:
        return [_item(row) for row in self._db.execute(sql, args)]

    def get(self, item_id: int) -> Item:
        """Return the row ``item_id``."""
        item = self._one("SELECT * FROM items WHERE id = ?", item_id)
        if item is None:
            raise KeyError(item_id)
        return item

    def latest(self, path: Path) -> Item | None:
        """Return the newest row of ``path`` (the version that counts), or None if never seen."""
        return self._one("SELECT * FROM items WHERE path = ? ORDER BY id DESC LIMIT 1", str(path))

    def versions(self, path: Path, states: Iterable[str]) -> list[Item]:
        """Return the rows of ``path`` in any of ``states``, oldest first."""
        wanted = tuple(states)
        return self._many(f"SELECT * FROM items WHERE path = ? AND state IN ({_marks(wanted)}) ORDER BY id",
                          str(path), *wanted)

    def has_done(self, path: Path) -> bool:
        """True when some version of ``path`` was processed to the end (its products exist)."""
        return self._db.execute("SELECT 1 FROM items WHERE path = ? AND state = ? LIMIT 1",
                                (str(path), DONE)).fetchone() is not None

    @_writes
    def add(self, path: Path, kind: str, stat: FileStat, digest: str, state: str, found_by: str,
            overwrite: bool = False, now: float | None = None) -> Item:
        """Record a new version of ``path`` in ``state`` (queued, waiting, or failed at once) and return its row."""
        if state not in TRANSITIONS[NEW]:
            raise TransitionError(f"a new row of {path} cannot be {state} (only "
                                  f"{', '.join(sorted(TRANSITIONS[NEW]))})", NEW, state)
        now = time.time() if now is None else now
        cursor = self._db.execute(
            "INSERT INTO items (path, kind, size, mtime_ns, digest, state, found_by, overwrite, seen_at,"
            " queued_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(path), kind, stat.size, stat.mtime_ns, digest, state, found_by, int(overwrite), now,
             now if state == QUEUED else None, now))
        return self.get(cursor.lastrowid)

    @_writes
    def refresh(self, item_id: int, stat: FileStat, now: float | None = None) -> Item:
        """Note that the same content now shows another size/mtime (touched, or copied with ``cp -p``)."""
        self._db.execute("UPDATE items SET size = ?, mtime_ns = ?, updated_at = ? WHERE id = ?",
                         (stat.size, stat.mtime_ns, time.time() if now is None else now, item_id))
        return self.get(item_id)

    @_writes
    def reopen(self, item_id: int, stat: FileStat, now: float | None = None) -> Item:
        """Queue a failed row again from scratch (its file was touched or dropped in anew)."""
        now = time.time() if now is None else now
        return self._change(
            item_id, "reopen", QUEUED, "size = ?, mtime_ns = ?, attempts = 0, error = NULL, quarantine = NULL,"
            " products = '[]', queued_at = ?, started_at = NULL, finished_at = NULL, retry_at = NULL, updated_at = ?",
            (stat.size, stat.mtime_ns, now, now), among=(FAILED,))

    @_writes
    def queue(self, item_id: int, retry_at: float | None = None, error: str | None = None,
              overwrite: bool | None = None, now: float | None = None) -> Item:
        """Put a row in the queue (again), optionally not before ``retry_at`` and noting ``error``."""
        now = time.time() if now is None else now
        return self._change(
            item_id, "queue", QUEUED, "retry_at = ?, error = ?, overwrite = COALESCE(?, overwrite),"
            " queued_at = COALESCE(queued_at, ?), updated_at = ?",
            (retry_at, error, None if overwrite is None else int(overwrite), now, now), among=(WAITING, RUNNING))

    @_writes
    def start(self, item_id: int, now: float | None = None) -> Item:
        """Mark a row running and count the attempt."""
        now = time.time() if now is None else now
        return self._change(item_id, "start", RUNNING,
                            "attempts = attempts + 1, started_at = ?, retry_at = NULL, updated_at = ?", (now, now))

    @_writes
    def finish(self, item_id: int, products: Iterable[str], now: float | None = None) -> Item:
        """Mark a row done with the products it made (or found already made)."""
        now = time.time() if now is None else now
        return self._change(item_id, "finish", DONE, "products = ?, error = NULL, finished_at = ?, updated_at = ?",
                            (json.dumps(sorted(products)), now, now))

    @_writes
    def fail(self, item_id: int, error: str, products: Iterable[str] = (), quarantine: str | None = None,
             now: float | None = None) -> Item:
        """Mark a row failed for good with the reason (and where the input was quarantined)."""
        now = time.time() if now is None else now
        return self._change(item_id, "fail", FAILED,
                            "error = ?, products = ?, quarantine = ?, finished_at = ?, updated_at = ?",
                            (error, json.dumps(sorted(products)), quarantine, now, now))

    @_writes
    def abandon(self, item_id: int, now: float | None = None, error: str | None = None) -> Item:
        """Return a running row to the queue without counting the attempt (shutdown before it ended, or
        ``error``: the environment stopped it); its next run replaces whatever products it published."""
        now = time.time() if now is None else now
        return self._change(item_id, "abandon", QUEUED,
                            "attempts = MAX(attempts - 1, 0), overwrite = 1, started_at = NULL,"
                            " error = COALESCE(?, error), updated_at = ?", (error, now), among=(RUNNING,))

    @_writes
    def lost(self, item_id: int, error: str, counted: bool, now: float | None = None) -> Item:
        """Return a running row to the queue after its worker process died: not an attempt (the work did
        not fail, it was cut off), but a worker death when ``counted`` (it ran alone, so it was the
        cause); the next run replaces whatever this one published."""
        now = time.time() if now is None else now
        return self._change(item_id, "lost", QUEUED,
                            "attempts = MAX(attempts - 1, 0), deaths = deaths + ?, error = ?, overwrite = 1,"
                            " started_at = NULL, updated_at = ?", (int(counted), error, now), among=(RUNNING,))

    @_writes
    def forget(self, item_id: int) -> None:
        """Delete a row that no longer stands for any file (its input vanished or changed before it ran)."""
        allowed = sources(GONE)
        cursor = self._db.execute(f"DELETE FROM items WHERE id = ? AND state IN ({_marks(allowed)})",
                                  (item_id, *allowed))
        if cursor.rowcount == 0:
            self._refuse(item_id, "forget", GONE, allowed)

    @_writes
    def recover(self, now: float | None = None) -> list[Item]:
        """Return rows left running by a daemon that died, after putting them back in the queue: the
        attempt is not counted (the daemon's end is not the input's fault), and the next run replaces
        whatever the interrupted one published."""
        now = time.time() if now is None else now
        stranded = self.in_state(RUNNING)
        self._db.execute("UPDATE items SET state = ?, attempts = MAX(attempts - 1, 0), overwrite = 1,"
                         " started_at = NULL, updated_at = ? WHERE state = ?", (QUEUED, now, RUNNING))
        return stranded

    def due(self, now: float, limit: int, exclude: Iterable[int] = ()) -> list[Item]:
        """Return up to ``limit`` queued rows whose retry time has come, oldest first."""
        skip = tuple(exclude)
        where = f" AND id NOT IN ({_marks(skip)})" if skip else ""
        return self._many(
            f"SELECT * FROM items WHERE state = ? AND (retry_at IS NULL OR retry_at <= ?){where}"
            " ORDER BY id LIMIT ?", QUEUED, now, *skip, limit)

    def in_state(self, state: str, limit: int | None = None) -> list[Item]:
        """Return rows in ``state``, oldest first (at most ``limit``)."""
        sql = "SELECT * FROM items WHERE state = ? ORDER BY id"
        return self._many(sql + " LIMIT ?", state, limit) if limit is not None else self._many(sql, state)

    def recent_failures(self, limit: int) -> list[Item]:
        """Return the latest failed rows that are still the newest version of their path."""
        return self._many(
            "SELECT * FROM items AS i WHERE state = ? AND id = (SELECT MAX(id) FROM items WHERE path = i.path)"
            " ORDER BY finished_at DESC LIMIT ?", FAILED, limit)

    def recently_done(self, limit: int) -> list[Item]:
        """Return the rows done most recently, newest first."""
        return self._many("SELECT * FROM items WHERE state = ? ORDER BY finished_at DESC LIMIT ?", DONE, limit)

    def counts(self) -> dict[str, int]:
        """Return the number of rows in each state (every state present, zero if none)."""
        found = dict(self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
        return {state: found.get(state, 0) for state in STATES}

    def finished_since(self, since: float) -> int:
        """Return how many rows were done at or after ``since`` (for throughput)."""
        return self._db.execute("SELECT COUNT(*) FROM items WHERE state = ? AND finished_at >= ?",
                                (DONE, since)).fetchone()[0]

    @_writes
    def claim_members(self, item_id: int, paths: Iterable[Path]) -> None:
        """Record the member files of association row ``item_id``."""
        with self._transaction():
            self._db.execute("DELETE FROM members WHERE item_id = ?", (item_id,))
            self._db.executemany("INSERT INTO members (item_id, path) VALUES (?, ?)",
                                 [(item_id, str(p)) for p in paths])

    def members(self, item_id: int) -> tuple[Path, ...]:
        """Return the member files recorded for association row ``item_id``."""
        return tuple(Path(r[0]) for r in self._db.execute("SELECT path FROM members WHERE item_id = ? ORDER BY rowid",
                                                          (item_id,)))

    def claimed_by(self, path: Path) -> Item | None:
        """Return the association that claims ``path``: the newest version of an association that lists
        it and is waiting, queued, running or done; None when no association holds it."""
        return self._one(
            "SELECT i.* FROM members AS m JOIN items AS i ON i.id = m.item_id WHERE m.path = ?"
            " AND i.state IN (?, ?, ?, ?) AND i.id = (SELECT MAX(id) FROM items WHERE path = i.path)"
            " ORDER BY i.id DESC LIMIT 1", str(path), WAITING, QUEUED, RUNNING, DONE)

    @_writes
    def register_daemon(self, pid: int, watching: Iterable[str], workers: int, version: str,
                        now: float | None = None) -> None:
        """Record the daemon now using this ledger (one row, replaced at each start)."""
        now = time.time() if now is None else now
        self._db.execute(
            "INSERT OR REPLACE INTO daemon (id, pid, host, version, watching, workers, started_at, beat_at,"
            " stopped_at, in_flight, pending) VALUES (1, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0)",
            (pid, socket.gethostname(), version, json.dumps(list(watching)), workers, now, now))

    @_writes
    def beat(self, in_flight: int, pending: int, now: float | None = None) -> None:
        """Record a heartbeat with the number of items being processed and awaiting readiness."""
        self._db.execute("UPDATE daemon SET beat_at = ?, in_flight = ?, pending = ? WHERE id = 1",
                         (time.time() if now is None else now, in_flight, pending))

    @_writes
    def daemon_stopped(self, now: float | None = None) -> None:
        """Record that the daemon stopped cleanly."""
        now = time.time() if now is None else now
        self._db.execute("UPDATE daemon SET beat_at = ?, stopped_at = ?, in_flight = 0 WHERE id = 1", (now, now))

    def daemon(self) -> DaemonInfo | None:
        """Return the daemon that last used this ledger, or None if none ever did."""
        row = self._db.execute("SELECT * FROM daemon WHERE id = 1").fetchone()
        if row is None:
            return None
        return DaemonInfo(pid=row["pid"], host=row["host"], version=row["version"],
                          watching=tuple(json.loads(row["watching"])), workers=row["workers"],
                          started_at=row["started_at"], beat_at=row["beat_at"], stopped_at=row["stopped_at"],
                          in_flight=row["in_flight"], pending=row["pending"])

    def _change(self, item_id: int, change: str, target: str, assignments: str, values: tuple[object, ...],
                among: Iterable[str] | None = None) -> Item:
        """Move row ``item_id`` to ``target`` setting ``assignments``, if its state allows it (from ``among``
        only, when given); return the changed row or raise TransitionError."""
        allowed = sources(target, among)
        cursor = self._db.execute(
            f"UPDATE items SET state = ?, {assignments} WHERE id = ? AND state IN ({_marks(allowed)})",
            (target, *values, item_id, *allowed))
        if cursor.rowcount == 0:
            self._refuse(item_id, change, target, allowed)
        return self.get(item_id)

    def _refuse(self, item_id: int, change: str, target: str, allowed: tuple[str, ...]) -> None:
        """Raise TransitionError for row ``item_id`` (KeyError when there is no such row)."""
        item = self.get(item_id)
        raise TransitionError(f"cannot {change} item {item.id} ({item.path}): it is {item.state}, and {change} "
                              f"makes only a {' or '.join(allowed)} row {target}", item.state, target)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on the autocommit connection."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def ledger_file(output_dir: Path | str, ledger: Path | str | None = None) -> Path:
    """Where the ledger of a daemon writing to ``output_dir`` is: ``ledger`` when given, else beside the products."""
    return Path(ledger) if ledger is not None else Path(output_dir) / LEDGER_NAME


def _marks(values: tuple[object, ...]) -> str:
    """SQL placeholders for ``values``."""
    return ",".join("?" * len(values))
