"""The request log store (gateway/state/sqlite.py) on real SQLite files: rows in and back,
every filter and the keyset paging against the same filter done in Python, the queue
capped when the writer cannot keep up, a locked database retried without loss, retention
by age and by size, two processes writing one file, and each filter's plan using an index."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.metrics import Metrics
from gateway.server.access import Line
from gateway.state import sqlite as logs
from gateway.state.sqlite import COLUMNS, LogEntry, LogQuery, LogStore, LogStoreError, connect, query_sql

NOW = time.time()
ROOT = Path(__file__).parents[3]


def line(i: int, **fields: Any) -> Line:
    return Line(
        **{
            "ts": round(NOW - 1000 + i, 3),
            "request_id": f"r-{i}",
            "method": "POST",
            "path": "/v1/chat/completions",
            "status": 200,
            "latency_ms": 1.5,
            **fields,
        }
    )


def insert(path: Path, lines: list[Line]) -> None:
    """Rows written directly, as another process's store would."""
    conn = connect(str(path))
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(logs._INSERT, (msgspec.structs.astuple(x) for x in lines))
        conn.execute("COMMIT")
    finally:
        conn.close()


def request_ids(path: Path, where: str = "1") -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute(f"SELECT request_id FROM requests WHERE {where} ORDER BY ts, rowid")]
    finally:
        conn.close()


def run_store(store: LogStore, scenario: Callable[[LogStore], Any]) -> Any:
    async def main() -> Any:
        await store.start()
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def until(check: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_sqlite_logs_columns_are_the_access_log_fields() -> None:
    # Rows are inserted as astuple(Line): the order must be the table's.
    assert Line.__struct_fields__ == COLUMNS == LogEntry.__struct_fields__


def test_sqlite_logs_rows_written_then_read_back(tmp_path: Path) -> None:
    path = tmp_path / "logs.sqlite3"
    written = [
        line(0, principal="vk:a", provider="up", model="m", stream=True, tokens_in=3, tokens_out=4, cost_usd=0.5),
        line(1, status=502, provider="up", model="m", fallback_index=1, upstream_ms=2.5, error="upstream_error"),
        line(2, status=404, method="GET", path="/nowhere", error="invalid_request_error"),
    ]

    async def scenario(store: LogStore) -> list[LogEntry]:
        for x in written:
            store.add(x)
        store.flush()
        deadline = time.monotonic() + 10
        while len(page := (await store.query(LogQuery())).entries) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return page

    got = run_store(LogStore(str(path), retention_days=1, max_mb=10, flush_s=0.05), scenario)
    assert [msgspec.structs.asdict(e) for e in got] == [msgspec.structs.asdict(x) for x in reversed(written)]
    assert got[2].stream is True and got[0].stream is False


def fixture_lines() -> list[Line]:
    """Varied rows, several per timestamp (paging must break ties by rowid)."""
    out = []
    for i in range(300):
        out.append(
            Line(
                ts=round(NOW - 3000 + (i // 3) * 10, 3),
                request_id=f"f-{i}",
                method="POST",
                path="/v1/chat/completions",
                status=(200, 200, 429, 500, 404, 301)[i % 6],
                latency_ms=float(i),
                principal=(None, "vk:a", "vk:b", "token:ops")[i % 4],
                provider=("up", "other", None)[i % 3],
                model=("m1", "m2", "m3", "m4", "m5")[i % 5],
            )
        )
    return out


QUERIES = [
    LogQuery(),
    LogQuery(model="m2"),
    LogQuery(provider="other"),
    LogQuery(status=429),
    LogQuery(status=301),
    LogQuery(status_class=2),
    LogQuery(status_class=3),
    LogQuery(status_class=4),
    LogQuery(status_class=5),
    LogQuery(status_class=1),
    LogQuery(principal="vk:b"),
    LogQuery(since=NOW - 2000, until=NOW - 1000),
    LogQuery(model="m1", provider="up", status_class=4, since=NOW - 2500),
    LogQuery(principal="vk:a", status=200, until=NOW - 1500),
    LogQuery(model="nothing"),
]


def matches(x: Line, q: LogQuery) -> bool:
    return (
        (q.model is None or x.model == q.model)
        and (q.provider is None or x.provider == q.provider)
        and (q.principal is None or x.principal == q.principal)
        and (q.status is None or x.status == q.status)
        and (q.status_class is None or x.status // 100 == q.status_class)
        and (q.since is None or x.ts >= q.since)
        and (q.until is None or x.ts < q.until)
    )


def test_sqlite_logs_every_filter_and_paging_match_python(tmp_path: Path) -> None:
    path = tmp_path / "logs.sqlite3"
    lines = fixture_lines()
    insert(path, lines)

    async def scenario(store: LogStore) -> None:
        for q in QUERIES:
            # Newest first; equal timestamps: the later row first.
            expected = [x.request_id for x in reversed(lines) if matches(x, q)]
            whole = await store.query(msgspec.structs.replace(q, limit=1000))
            assert [e.request_id for e in whole.entries] == expected and whole.next is None, q
            paged: list[str] = []
            before = None
            while True:
                page = await store.query(msgspec.structs.replace(q, limit=7, before=before))
                assert len(page.entries) <= 7
                paged += [e.request_id for e in page.entries]
                if page.next is None:
                    break
                before = page.next
            assert paged == expected, q

    run_store(LogStore(str(path), retention_days=1, max_mb=10), scenario)


@pytest.mark.parametrize("q", QUERIES[1:-1], ids=lambda q: repr(q)[9:60])
def test_sqlite_logs_every_filter_walks_an_index(tmp_path: Path, q: LogQuery) -> None:
    """No filter reads the whole table; only the rare classes (1xx, 3xx) sort, and only
    their own rows."""
    path = tmp_path / "logs.sqlite3"
    insert(path, fixture_lines())
    conn = connect(str(path))
    try:
        conn.execute("ANALYZE")
        sql, args = query_sql(msgspec.structs.replace(q, before=(NOW, 10)))
        plan = " ; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    finally:
        conn.close()
    assert "USING INDEX" in plan, plan
    assert "SCAN requests USING INDEX requests_ts" not in plan or q.status_class == 2, plan
    if q.status_class not in (1, 3):
        assert "TEMP B-TREE" not in plan, plan


def test_sqlite_logs_queue_capped_drops_the_oldest(tmp_path: Path) -> None:
    """A writer that cannot keep up: what waits for it stays under the cap, the oldest rows
    go first and every lost row is counted."""
    path = tmp_path / "logs.sqlite3"
    metrics = Metrics()
    store = LogStore(str(path), retention_days=1, max_mb=10, max_queued_rows=2500, metrics=metrics)

    async def fill() -> None:  # no writer yet: nothing drains the queue
        for i in range(10_000):
            store.add(line(i))
            if i % 700 == 699:
                store.flush()
                assert store._queued <= 2500
        store.flush()

    asyncio.run(fill())
    assert store.dropped == metrics.log_rows_dropped == 7500
    run_store(store, lambda s: asyncio.sleep(0))
    assert request_ids(path) == [f"r-{i}" for i in range(7500, 10_000)]
    assert b"gateway_log_rows_dropped_total 7500.0" in metrics.exposition()[0]


def test_sqlite_logs_locked_database_retried_without_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the write lock past the busy timeout: the batch waits and is
    written once the lock is free; nothing is lost, nothing blocks the loop."""
    monkeypatch.setattr(logs, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(logs, "RETRY_S", 0.05)
    path = tmp_path / "logs.sqlite3"
    connect(str(path)).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def scenario(store: LogStore) -> None:
        for i in range(50):
            store.add(line(i))
        store.flush()  # returns at once: the writer thread is the one waiting
        while "retrying" not in caplog.text:
            await asyncio.sleep(0.02)
        blocker.execute("COMMIT")
        while len((await store.query(LogQuery())).entries) < 50:
            await asyncio.sleep(0.02)

    with caplog.at_level(logging.WARNING, logger="gateway.logs"):
        store = LogStore(str(path), retention_days=1, max_mb=10)
        run_store(store, scenario)
    blocker.close()
    assert store.dropped == 0
    assert request_ids(path) == [f"r-{i}" for i in range(50)]


def test_sqlite_logs_retention_by_age_at_start_and_on_sweep(tmp_path: Path) -> None:
    path = tmp_path / "logs.sqlite3"
    old = [line(i, ts=NOW - 3 * 86400 + i, request_id=f"old-{i}") for i in range(100)]
    fresh = [line(i, request_id=f"fresh-{i}") for i in range(100)]
    insert(path, old + fresh)

    async def scenario(store: LogStore) -> None:
        await asyncio.to_thread(until, lambda: not request_ids(path, "request_id LIKE 'old-%'"))
        # Rows that grow old while the store runs go at the next sweep.
        insert(path, [line(i, ts=NOW - 5 * 86400, request_id=f"later-{i}") for i in range(10)])
        store.sweep_soon()
        await asyncio.to_thread(until, lambda: not request_ids(path, "request_id LIKE 'later-%'"))

    run_store(LogStore(str(path), retention_days=2, max_mb=10), scenario)
    assert request_ids(path) == [x.request_id for x in fresh]


def test_sqlite_logs_retention_by_size_deletes_oldest_and_shrinks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "logs.sqlite3"
    lines = [line(i, ts=NOW - 30_000 + i, principal=f"vk:{i % 50}", model=f"m{i % 20}") for i in range(20_000)]
    insert(path, lines)
    size_before = path.stat().st_size
    assert size_before > 3 * 2**20  # three times max_mb
    run_store(LogStore(str(path), retention_days=7, max_mb=1), lambda s: asyncio.sleep(0))
    kept = request_ids(path)
    assert path.stat().st_size <= 2**20  # the file itself shrank (incremental_vacuum + checkpoint)
    assert 0 < len(kept) < len(lines)
    assert kept == [x.request_id for x in lines[-len(kept) :]]  # the newest stay


def test_sqlite_logs_two_processes_write_one_file(tmp_path: Path) -> None:
    """As --workers does: two processes, each its own store, one file, many small batches."""
    path = tmp_path / "logs.sqlite3"
    script = textwrap.dedent(
        """
        import asyncio, sys, time
        from gateway.server.access import Line
        from gateway.state.sqlite import LogStore

        async def main(tag):
            store = LogStore(sys.argv[1], retention_days=1, max_mb=100, flush_s=0.001)
            await store.start()
            for i in range(3000):
                store.add(Line(ts=time.time(), request_id=f"{tag}-{i}", method="GET", path="/", status=200,
                               latency_ms=0.1))
                if i % 20 == 0:
                    await asyncio.sleep(0.001)  # the loop turns: small batches, interleaved
            await store.close()
            assert store.dropped == 0, store.dropped

        asyncio.run(main(sys.argv[2]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), tag], env=env, stderr=subprocess.PIPE)
        for tag in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=50)
        assert p.returncode == 0, err.decode()
    ids = request_ids(path)
    assert sorted(ids) == sorted(f"{tag}-{i}" for tag in ("a", "b") for i in range(3000))


def test_sqlite_logs_unopenable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    not_db = tmp_path / "notes.txt"
    not_db.write_bytes(b"this is not a database, it is a text file of some length\n" * 50)
    for path in (tmp_path, not_db):  # a directory; a file of something else
        with pytest.raises(LogStoreError, match=re.escape(str(path))):
            asyncio.run(LogStore(str(path), retention_days=1, max_mb=1).start())


def test_sqlite_logs_database_made_incremental_and_wal(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "logs.sqlite3"))
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_bench_logstore_quick_prints_every_query() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.logstore", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("USING INDEX") == 20
    assert "rows/s" in out.stdout and "sweep" in out.stdout


def test_a_file_with_the_not_null_cost_column_is_migrated(tmp_path: Path) -> None:
    """Files written before unpriced requests were stored with a NULL cost: rebuilt once,
    rows and indexes kept, and an unpriced row then stored with cost NULL."""
    path = tmp_path / "old.sqlite3"
    old_schema = logs.SCHEMA.replace("cost_usd REAL,", "cost_usd REAL NOT NULL,")
    assert old_schema != logs.SCHEMA
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute(logs._INSERT, msgspec.structs.astuple(line(1, cost_usd=0.5)))
    conn.commit()
    conn.close()
    insert(path, [line(2, cost_usd=None)])  # through connect(): migrated first
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT request_id, cost_usd FROM requests ORDER BY rowid").fetchall()
        notnull = {r[1]: r[3] for r in conn.execute("PRAGMA table_info(requests)")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert rows == [("r-1", 0.5), ("r-2", None)]
    assert notnull["cost_usd"] == 0
    assert indexes >= {"requests_ts", "requests_principal_ts", "requests_errors_ts"}
