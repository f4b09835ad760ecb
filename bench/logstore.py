"""The request log store (gateway/state/sqlite.py) at a million rows.

1. The request path's share: building the access log's ``Line`` and ``LogStore.add``,
   µs per request, on the event loop.
2. The writer: rows per second and CPU per row through a running LogStore (batches, one
   transaction each, every index maintained); the indexes' share, side by side with the
   ts index alone; a bulk fill of ``--rows`` rows.
3. The queries ``GET /api/logs`` runs (``query_sql``, as the reader thread does), first
   page and a deep page, each filter: median ms over rounds, with SQLite's plan.
4. Retention: a sweep deleting a day of rows, and one trimming to half the size.

    .venv/bin/python -m bench.logstore             # 1,000,000 rows (~2 min, ~400 MB in a temp dir)
    .venv/bin/python -m bench.logstore --quick     # 20,000 rows: checks it runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway.metrics import Metrics
from gateway.server.access import Line
from gateway.state.sqlite import _INSERT, SCHEMA, LogQuery, LogStore, connect, query_sql, used_bytes

DAY_S = 86400.0
SPAN_S = 7 * DAY_S  # the default retention: rows spread over a week
PROVIDERS = {"openai": 0.5, "anthropic": 0.25, "gemini": 0.15, "vllm": 0.08, "groq": 0.02}
STATUSES = {200: 0.92, 429: 0.03, 400: 0.015, 401: 0.005, 500: 0.01, 502: 0.007, 504: 0.003, 404: 0.01}
KEYS = 300
RARE_KEY = "vk:rare"  # one request in ten thousand
RARE_MODEL = "o1-preview"  # one in a thousand


def rows(n: int, *, end: float, seed: int = 8) -> Iterator[tuple[Any, ...]]:
    """``n`` rows as the gateway writes them, oldest first, over SPAN_S before ``end``."""
    rnd = random.Random(seed)
    providers, pw = list(PROVIDERS), list(PROVIDERS.values())
    statuses, sw = list(STATUSES), list(STATUSES.values())
    models = {p: [f"{p}-model-{i}" for i in range(10)] for p in PROVIDERS}
    mw = [1 / (i + 1) for i in range(10)]  # a few models take most requests
    kw = [1 / (i + 1) for i in range(KEYS)]
    keys = [f"vk:team-{i}" for i in range(KEYS)]
    step = SPAN_S / n
    for i in range(n):
        provider = rnd.choices(providers, pw)[0]
        model = RARE_MODEL if rnd.random() < 0.001 else rnd.choices(models[provider], mw)[0]
        r = rnd.random()
        key = RARE_KEY if r < 0.0001 else None if r < 0.1 else rnd.choices(keys, kw)[0]
        status = rnd.choices(statuses, sw)[0]
        stream = rnd.random() < 0.4
        ok = status == 200
        yield (
            round(end - SPAN_S + i * step, 3),
            f"bench-{i:x}",
            "POST",
            "/v1/chat/completions",
            status,
            round(rnd.uniform(50, 3000), 3),
            key,
            provider,
            model,
            stream,
            0,
            rnd.randint(10, 3000) if ok else 0,
            rnd.randint(1, 800) if ok else 0,
            rnd.uniform(0, 0.01) if ok else 0.0,
            round(rnd.uniform(40, 2900), 3) if ok else 0.0,
            None if ok else "upstream_error",
        )


def fill(path: str, n: int, *, end: float) -> float:
    """Bulk insert in transactions of 10,000 rows; rows per second (making them not timed)."""
    conn = connect(path)
    spent = 0.0
    it = rows(n, end=end)
    while True:
        chunk = [r for _, r in zip(range(10_000), it, strict=False)]
        if not chunk:
            break
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, chunk)
        conn.execute("COMMIT")
        spent += time.perf_counter() - t0
    rate = n / spent
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")  # as the store's sweep does
    conn.close()
    return rate


def index_cost(d: str, n: int, rounds: int) -> dict[str, float]:
    """Writer CPU µs a row, batches of 1000, with the store's schema and with the ts index
    alone: side by side, rounds interleaved, medians."""
    data = list(rows(n, end=time.time()))
    ts_only = re.sub(r"CREATE INDEX IF NOT EXISTS requests_(?!ts )\w+ ON [^;]*;", "", SCHEMA)
    assert ts_only.count("CREATE INDEX") == 1
    out: dict[str, list[float]] = {"ts index only": [], "the store's six indexes": []}
    for r in range(rounds):
        for name, schema in zip(out, (ts_only, SCHEMA), strict=True):
            conn = sqlite3.connect(str(Path(d) / f"idx-{r}-{len(out[name])}-{name[:2]}.sqlite3"), isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(schema)
            cpu0 = time.process_time()
            for i in range(0, n, 1000):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, data[i : i + 1000])
                conn.execute("COMMIT")
            out[name].append((time.process_time() - cpu0) / n * 1e6)
            conn.close()
    return {name: statistics.median(v) for name, v in out.items()}


def build_line(i: int) -> Line:
    """As ``AccessSink.record`` builds one."""
    line = Line(
        ts=round(time.time(), 3),
        request_id=f"bench-{i:x}",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        latency_ms=round(0.0125 * 1000, 3),
        error=None,
    )
    line.principal = "vk:team-a"
    line.provider, line.model = "openai", "gpt-4o-mini"
    line.stream = False
    line.fallback_index = 0
    line.tokens_in, line.tokens_out = 812, 120
    line.cost_usd = 0.000193
    line.upstream_ms = round(0.0119 * 1000, 3)
    return line


async def through_store(path: str, n: int) -> tuple[float, float, float, float]:
    """(µs per line built, µs per add on the loop, rows/s written by a running store, and
    the process's CPU µs per row while it wrote: nearly all the writer thread's)."""
    store = LogStore(path, retention_days=7, max_mb=4096, flush_s=0.05, max_queued_rows=10 * n, metrics=Metrics())
    await store.start()
    t0 = time.perf_counter()
    for i in range(n):
        build_line(i)
    build_us = (time.perf_counter() - t0) / n * 1e6
    lines = [Line(*row) for row in rows(n, end=time.time())]
    add = store.add
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i, x in enumerate(lines):
        add(x)
        if i % 1000 == 999:
            await asyncio.sleep(0)  # the loop turns as under traffic
    add_us = (time.perf_counter() - t0) / n * 1e6
    await store.close()
    rate = n / (time.perf_counter() - t0)
    cpu_us = (time.process_time() - cpu0) / n * 1e6
    assert store.dropped == 0
    return build_us, add_us, rate, cpu_us


def cases(conn: sqlite3.Connection, *, end: float) -> dict[str, LogQuery]:
    """The API's queries: each filter, first page and deep in the table."""
    n = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    deep = conn.execute("SELECT ts, rowid FROM requests ORDER BY ts DESC, rowid DESC LIMIT 1 OFFSET ?", (n // 2,))
    middle = tuple(deep.fetchone())
    hour = (end - 3.5 * DAY_S, end - 3.5 * DAY_S + 3600)
    return {
        "no filter, first page": LogQuery(),
        "no filter, deep page (cursor half-way)": LogQuery(before=middle),
        "time range (one hour, mid-week)": LogQuery(since=hour[0], until=hour[1]),
        "provider (50% of rows)": LogQuery(provider="openai"),
        "provider (2%), deep page": LogQuery(provider="groq", before=middle),
        "model (common)": LogQuery(model="openai-model-0"),
        "model (0.1%)": LogQuery(model=RARE_MODEL),
        "model (0.1%), deep page": LogQuery(model=RARE_MODEL, before=middle),
        "status 500 (1%)": LogQuery(status=500),
        "status 418 (none)": LogQuery(status=418),
        "status 2xx (92%)": LogQuery(status_class=2),
        "status 3xx (none)": LogQuery(status_class=3),
        "status 4xx (6%)": LogQuery(status_class=4),
        "status 5xx (2%), deep page": LogQuery(status_class=5, before=middle),
        "key (common)": LogQuery(principal="vk:team-0"),
        "key (0.01%)": LogQuery(principal=RARE_KEY),
        "key (0.01%) + time range (a day)": LogQuery(principal=RARE_KEY, since=end - 2 * DAY_S, until=end - DAY_S),
        "provider + status 5xx + time range": LogQuery(provider="anthropic", status_class=5, since=hour[0]),
        "model (0.1%) + status 500": LogQuery(model=RARE_MODEL, status=500),
        "limit 1000, no filter": LogQuery(limit=1000),
    }


def timed(fn: Callable[[], object], rounds: int) -> float:
    """Median ms."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run_queries(path: str, rounds: int, *, end: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only = 1")
    print(f"{'query (limit 100 unless said)':44} {'ms':>8} {'rows':>5}  plan")
    for name, q in cases(conn, end=end).items():
        sql, args = query_sql(q)
        got = len(conn.execute(sql, args).fetchall())  # warm the page cache as a live store's is
        ms = timed(lambda sql=sql, args=args: conn.execute(sql, args).fetchall(), rounds)  # type: ignore[misc]
        plan = "; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        print(f"  {name:42} {ms:8.2f} {got:5d}  {plan}")
    conn.close()


def retention(path: str) -> None:
    conn = connect(path)
    mb = os.path.getsize(path) / 2**20
    n = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    print(f"file {mb:.0f} MB, {n} rows, {used_bytes(conn) / n:.0f} bytes a row (indexes included)")
    t0 = time.perf_counter()
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")
    print(f"ANALYZE (every sweep, analysis_limit 1000): {(time.perf_counter() - t0) * 1000:.0f} ms")
    conn.close()
    # Retention by age: the oldest day goes.
    store = LogStore(path, retention_days=6, max_mb=4096)
    t0 = time.perf_counter()
    store._sweep(connect(path))
    age_s = time.perf_counter() - t0
    # Retention by size: half of what is left.
    half = os.path.getsize(path) / 2**20 / 2
    store = LogStore(path, retention_days=7, max_mb=half)
    t0 = time.perf_counter()
    store._sweep(connect(path))
    size_s = time.perf_counter() - t0
    conn = connect(path)
    left = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    conn.close()
    print(f"sweep, 1 day of {SPAN_S / DAY_S:.0f} past retention: {age_s:.2f} s")
    print(
        f"sweep, trim to max_mb {half:.0f}: {size_s:.2f} s; file now {os.path.getsize(path) / 2**20:.0f} MB, "
        f"{left} rows"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="20,000 rows, 3 rounds: checks it runs")
    p.add_argument("--dir", help="where the database goes (default: a temp dir, removed after)")
    args = p.parse_args()
    n, rounds = (20_000, 3) if args.quick else (args.rows, args.rounds)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"bench.logstore at {sha}, SQLite {sqlite3.sqlite_version}, {n} rows")
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        added = str(Path(d) / "added.sqlite3")
        build_us, add_us, rate, cpu_us = asyncio.run(through_store(added, min(n, 200_000)))
        print(f"event loop, per request: Line built {build_us:.2f} µs, LogStore.add {add_us:.2f} µs")
        print(f"writer thread, running store (batches of 1000): {rate:,.0f} rows/s, {cpu_us:.1f} CPU µs a row")
        for name, us in index_cost(d, min(n, 100_000), 3 if args.quick else 5).items():
            print(f"writer CPU a row, {name}: {us:.1f} µs")
        path = str(Path(d) / "logs.sqlite3")
        end = time.time()  # the newest row: now, so retention sees a week of rows
        print(f"bulk fill (10,000 rows a transaction): {fill(path, n, end=end):,.0f} rows/s")
        run_queries(path, rounds, end=end)
        retention(path)


if __name__ == "__main__":
    main()
