"""The request log store: one SQLite row per answered request (``GET /api/logs``).

Off the request path. ``add`` only appends the access log's ``Line`` to a list on the
event loop; every ``flush_s`` (or at ``BATCH_ROWS``) the list is handed to one writer
thread, which owns the write connection and inserts all it was given with one
``executemany`` in one transaction. If the writer falls behind (a slow disk, another
process holding the lock), what waits for it is capped at ``max_queued_rows``: the oldest
rows are dropped and counted (``gateway_log_rows_dropped_total``); nothing blocks and
nothing grows without bound. Queries run on a reader thread with a connection of its own.

The database is in WAL mode: readers never wait for the writer, and several processes
(``--workers``) may write one file; each waits up to ``BUSY_TIMEOUT_S`` for the write
lock (``busy_timeout``), which a batch holds for milliseconds.

Retention, in the writer thread at start-up and every ``sweep_s``: rows older than
``retention_days`` are deleted, then, while the database's pages in use pass ``max_mb``,
the oldest rows, down to ``SIZE_TARGET`` of it. Deletes go in chunks of
``DELETE_CHUNK_ROWS``, so other writers never wait long. The database is created with
``auto_vacuum=INCREMENTAL``: after a sweep that deleted rows, ``incremental_vacuum``
gives the free pages back and a ``wal_checkpoint(TRUNCATE)`` writes them into the main
file, which shrinks (unless a reader holds an old snapshot: then at a later sweep).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from gateway.metrics import Metrics

log = logging.getLogger("gateway.logs")


class LogEntry(msgspec.Struct):
    """A stored request, as ``GET /api/logs`` lists it: the access log's fields, every one
    present (``null`` when it did not apply)."""

    ts: float
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    principal: str | None
    provider: str | None
    model: str | None
    stream: bool
    fallback_index: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None  # None: the model has no known price (never a made-up 0)
    upstream_ms: float
    error: str | None


SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    principal TEXT,
    provider TEXT,
    model TEXT,
    stream INTEGER NOT NULL,
    fallback_index INTEGER NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_usd REAL,
    upstream_ms REAL NOT NULL,
    error TEXT
);
-- Every query pages newest first by (ts, rowid); an index ends in the rowid, so
-- (column, ts) serves "column = ? ORDER BY ts DESC" without a sort, and a deep page
-- starts where the cursor points. Each index costs the writer ~3 µs a row
-- (bench/README.md); the partial ones cost only for the rows they hold.
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_provider_ts ON requests (provider, ts);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (model, ts);
-- Without auth every principal is NULL: nothing to index.
CREATE INDEX IF NOT EXISTS requests_principal_ts ON requests (principal, ts) WHERE principal IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_status_ts ON requests (status, ts);
-- Error classes (4xx, 5xx) in ts order; queries must repeat both expressions as written
-- here (query_sql). 2xx is most rows: the ts index finds them.
CREATE INDEX IF NOT EXISTS requests_errors_ts ON requests (status / 100, ts) WHERE status >= 400;
"""
# The access log's fields (``server.access.Line``) in its order, as LogEntry has them:
# rows are inserted as ``msgspec.structs.astuple(line)``.
COLUMNS: tuple[str, ...] = LogEntry.__struct_fields__
_SCHEMA_NAMES = frozenset(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", SCHEMA))
_INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_SELECT = f"SELECT rowid, {', '.join(COLUMNS)} FROM requests"

# Another process's batch or sweep chunk holds the lock for milliseconds; waiting this
# long means something is wrong (a stuck process), and the batch is retried later.
BUSY_TIMEOUT_S = 5.0
# Handed to the writer before flush_s when this many rows wait (a burst): one
# transaction of ~1000 rows takes a few milliseconds.
BATCH_ROWS = 1000
# After a failed write (lock timeout, disk full) the writer waits before trying again;
# meanwhile rows queue up to max_queued_rows.
RETRY_S = 1.0
# Deleting more rows in one transaction would hold other processes' writers past
# their busy timeout on a slow disk.
DELETE_CHUNK_ROWS = 5000
# Free pages moved and cut off the file per transaction (16 MB of 4 KiB pages): as
# DELETE_CHUNK_ROWS, short enough for other writers to wait for.
VACUUM_CHUNK_PAGES = 4096
# Over max_mb, rows are deleted down to this share of it, so the next sweep does not
# delete again at once.
SIZE_TARGET = 0.9
# Index pages of deleted rows may stay partly filled, so one estimate can fall short;
# the next round measures again.
TRIM_ROUNDS = 4
# The -wal file is truncated to this when it is reset after a checkpoint.
WAL_LIMIT_BYTES = 16 * 1024 * 1024
# ANALYZE reads this many index entries per index: enough for the planner to pick the
# index of the most selective filter, in milliseconds on a million rows.
ANALYSIS_LIMIT = 1000
SWEEP_S = 60.0


class LogStoreError(Exception):
    """The log database cannot be opened or read."""


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters (all that are set must hold), newest first."""

    since: float | None = None  # ts >= since
    until: float | None = None  # ts < until
    model: str | None = None
    provider: str | None = None
    status: int | None = None
    status_class: int | None = None  # 4: 400-499
    principal: str | None = None
    before: tuple[float, int] | None = None  # keyset: rows strictly older than (ts, rowid)
    limit: int = 100


class LogPage(msgspec.Struct, kw_only=True):
    entries: list[LogEntry]
    next: tuple[float, int] | None  # the ``before`` of the next page; None: this was the last


def connect(path: str) -> sqlite3.Connection:
    """A connection as every one of the store's: WAL, waits for the write lock, and the
    schema in place (created on first use, by whichever process comes first)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        # WAL + NORMAL: a commit is not fsynced (a power loss may lose the last batches,
        # never corrupt the file); checkpoints are.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if not names >= _SCHEMA_NAMES:  # only then the write lock: a busy file still opens
            # Must precede the first table: only then can the file shrink without a VACUUM.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")
        elif _cost_not_null(conn):
            _migrate_nullable_cost(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _cost_not_null(conn: sqlite3.Connection) -> bool:
    """A file written before unpriced requests were stored with a NULL cost."""
    return any(row[1] == "cost_usd" and row[3] for row in conn.execute("PRAGMA table_info(requests)"))


def _migrate_nullable_cost(conn: sqlite3.Connection) -> None:
    """The table rebuilt with ``cost_usd`` nullable (SQLite cannot drop a NOT NULL in
    place), its rows and indexes kept, in one transaction. Two processes opening an old
    file at once may both do it; the second rebuilds the new table again, harmlessly."""
    columns = ", ".join(COLUMNS)
    drops = "".join(f"DROP INDEX IF EXISTS {name};" for name in sorted(_SCHEMA_NAMES - {"requests"}))
    try:
        conn.executescript(
            "BEGIN IMMEDIATE; ALTER TABLE requests RENAME TO requests_before;"
            f"{drops} {SCHEMA}"
            f"INSERT INTO requests (rowid, {columns}) SELECT rowid, {columns} FROM requests_before;"
            "DROP TABLE requests_before; COMMIT;"
        )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def query_sql(q: LogQuery) -> tuple[str, list[Any]]:
    """The SELECT for ``q`` (one more row than the page, to know whether another follows)."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("model", q.model), ("provider", q.provider), ("principal", q.principal)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if q.status is not None:
        where.append("status = ?")
        args.append(q.status)
    if q.status_class is not None:
        c = q.status_class
        if c >= 4:  # requests_errors_ts: the partial index's own condition, as a literal
            where.append("status / 100 = ? AND status >= 400")
            args.append(c)
        elif c == 2:  # most rows: walking the ts index finds a page at once
            where.append("status / 100 = 2")
        else:  # 1xx, 3xx: rare, so few rows of requests_status_ts to sort
            where.append("status BETWEEN ? AND ?")
            args.extend((c * 100, c * 100 + 99))
    if q.since is not None:
        where.append("ts >= ?")
        args.append(q.since)
    if q.until is not None:
        where.append("ts < ?")
        args.append(q.until)
    if q.before is not None:
        where.append("(ts, rowid) < (?, ?)")
        args.extend(q.before)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ts DESC, rowid DESC LIMIT ?"
    args.append(q.limit + 1)
    return sql, args


class LogStore:
    """One SQLite file of request rows; see the module's docstring."""

    def __init__(
        self,
        path: str,
        *,
        retention_days: float,
        max_mb: float,
        flush_s: float = 1.0,
        max_queued_rows: int = 100_000,
        sweep_s: float = SWEEP_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = path
        self._retention_s = retention_days * 86400.0
        self._max_bytes = max_mb * 1024 * 1024
        self._flush_s = flush_s
        self._max_queued = max_queued_rows
        self._sweep_s = sweep_s
        self._metrics = metrics
        self.dropped = 0  # rows lost: queue over its cap, or a batch that cannot be written
        # Event loop side.
        self._buffer: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None
        # Shared with the writer thread, under _cond.
        self._cond = threading.Condition()
        self._pending: deque[list[Any]] = deque()
        self._queued = 0
        self._closing = False
        self._sweep_now = False
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None  # the reader thread's

    async def start(self) -> None:
        """Opens the database (creating it), then starts the writer thread. Raises
        LogStoreError naming the file if it cannot be opened."""
        try:
            conn = await asyncio.to_thread(connect, self.path)
        except (sqlite3.Error, OSError) as e:
            raise LogStoreError(f"request log store {self.path!r}: {e}") from None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="gateway-logs-read")
        self._writer = threading.Thread(target=self._run, args=(conn,), name="gateway-logs-write", daemon=True)
        self._writer.start()

    # --- the event loop's side -------------------------------------------------------

    def add(self, row: msgspec.Struct) -> None:
        """One request's row (a ``server.access.Line``); on the event loop, O(1)."""
        buffer = self._buffer
        buffer.append(row)
        if len(buffer) >= BATCH_ROWS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        """Hands the buffered rows to the writer thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        with self._cond:
            self._pending.append(batch)
            self._queued += len(batch)
            self._cap()
            self._cond.notify()

    def _cap(self) -> None:
        """Drops the oldest queued rows past the cap (under _cond)."""
        excess = self._queued - self._max_queued
        while excess > 0:
            oldest = self._pending[0]
            n = min(excess, len(oldest))
            if n == len(oldest):
                self._pending.popleft()
            else:
                del oldest[:n]
            self._queued -= n
            excess -= n
            self._lost(n)

    def _lost(self, n: int) -> None:
        # Under _cond: the writer thread counts here too.
        self.dropped += n
        if self._metrics is not None:
            self._metrics.log_rows_dropped += n

    def sweep_soon(self) -> None:
        """Runs the retention sweep at the writer's next turn (tests, and operators)."""
        with self._cond:
            self._sweep_now = True
            self._cond.notify()

    async def close(self) -> None:
        """Writes what is buffered and queued, stops the writer, closes both connections."""
        self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._close_reader)
            self._reader.shutdown(wait=True)
            self._reader = None

    # --- the writer thread -----------------------------------------------------------

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            self._sweep(conn)
            next_sweep = time.monotonic() + self._sweep_s
            while True:
                with self._cond:
                    while not (self._pending or self._closing or self._sweep_now):
                        wait = next_sweep - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    batches = list(self._pending)
                    self._pending.clear()
                    self._queued = 0
                    closing, sweep_now, self._sweep_now = self._closing, self._sweep_now, False
                if batches and not self._write(conn, batches, final=closing):
                    with self._cond:  # back in front, under the cap; tried again after a pause
                        self._pending.extendleft(reversed(batches))
                        self._queued += sum(len(b) for b in batches)
                        self._cap()
                        self._cond.wait(RETRY_S)
                    continue
                if sweep_now or time.monotonic() >= next_sweep:
                    self._sweep(conn)
                    next_sweep = time.monotonic() + self._sweep_s
                if closing:
                    with self._cond:
                        if not self._pending:
                            return
        except Exception:
            log.exception("request log writer stopped")
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batches: list[list[Any]], *, final: bool) -> bool:
        """True when written, or when the rows are lost for good (counted); False: retry."""
        astuple = msgspec.structs.astuple
        rows = (astuple(r) for batch in batches for r in batch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return True
        except sqlite3.OperationalError as e:  # busy past the timeout, disk full or read-only
            n = sum(len(b) for b in batches)
            if not final:
                log.warning("request log: writing %d rows failed, retrying: %s", n, e)
                return False
            log.error("request log: %d rows lost at shutdown: %s", n, e)
        except (sqlite3.Error, OverflowError, ValueError, TypeError) as e:  # a row it can never take
            n = sum(len(b) for b in batches)
            log.error("request log: %d rows lost: %s", n, e)
        with self._cond:
            self._lost(n)
        return True

    def _sweep(self, conn: sqlite3.Connection) -> None:
        try:
            aged = self._delete_where(conn, "ts < ?", time.time() - self._retention_s)
            trimmed = self._trim_to_size(conn)
            if aged or trimmed:
                vacuum(conn)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                log.info("request log: deleted %d rows past retention_days, %d oldest over max_mb", aged, trimmed)
            conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            conn.execute("ANALYZE")
        except sqlite3.Error as e:
            log.warning("request log: retention sweep failed, tried again later: %s", e)

    def _delete_where(self, conn: sqlite3.Connection, condition: str, bound: float) -> int:
        sql = f"DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests WHERE {condition} LIMIT ?)"
        total = 0
        while True:
            n = conn.execute(sql, (bound, DELETE_CHUNK_ROWS)).rowcount
            total += n
            if n < DELETE_CHUNK_ROWS or self._closing:  # at shutdown the next sweep finishes
                return total

    def _trim_to_size(self, conn: sqlite3.Connection) -> int:
        """Deletes the oldest rows while the pages in use pass max_mb."""
        deleted = 0
        for _ in range(TRIM_ROUNDS):
            # Measured in one snapshot: another process trimming at the same time then
            # picks about the same cut, and the two do not delete twice as much.
            conn.execute("BEGIN")
            try:
                cut = self._size_cut(conn)
            finally:
                conn.execute("COMMIT")
            if cut is None:
                break
            deleted += self._delete_where(conn, "ts <= ?", cut)
        return deleted

    def _size_cut(self, conn: sqlite3.Connection) -> float | None:
        """The ts up to which the oldest rows must go to bring the pages in use under
        max_mb (down to SIZE_TARGET of it); None: under it."""
        used = used_bytes(conn)
        if used <= self._max_bytes:
            return None
        rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        if not rows:
            return None
        # Rows take about used/rows bytes each, indexes included.
        n = min(rows, math.ceil(rows * (used - self._max_bytes * SIZE_TARGET) / used))
        row = conn.execute("SELECT ts FROM requests ORDER BY ts LIMIT 1 OFFSET ?", (n - 1,)).fetchone()
        return float(row[0]) if row is not None else None

    # --- queries ---------------------------------------------------------------------

    async def query(self, q: LogQuery) -> LogPage:
        """One page, newest first, read on the reader thread. Raises LogStoreError."""
        if self._reader is None:
            raise LogStoreError("the request log store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, self._query, q)
        except sqlite3.Error as e:
            raise LogStoreError(f"reading the request log failed: {e}") from None

    def _query(self, q: LogQuery) -> LogPage:
        conn = self._read_conn
        if conn is None:
            conn = self._read_conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("PRAGMA query_only = 1")
        sql, args = query_sql(q)
        rows = conn.execute(sql, args).fetchall()
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        entries = [entry(r) for r in rows]
        last = rows[-1] if more else None
        return LogPage(entries=entries, next=(last[1], last[0]) if last is not None else None)

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None


def entry(row: Sequence[Any]) -> LogEntry:
    """A row of ``_SELECT`` (rowid first) as an entry."""
    e = LogEntry(*row[1:])
    e.stream = bool(e.stream)  # stored as 0 or 1
    return e


def vacuum(conn: sqlite3.Connection) -> None:
    """Gives the free pages back to the file system, VACUUM_CHUNK_PAGES a transaction."""
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    for _ in range(math.ceil(free / VACUUM_CHUNK_PAGES)):
        # One page per step, each step a row of no columns: execute() would stop after
        # the first (Python takes it for a statement without results); executescript
        # steps to the end.
        conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_CHUNK_PAGES});")


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database's pages in use (its file size less the free pages)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)
