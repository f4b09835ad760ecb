"""The Redis store across OS processes and through outages, on a real redis-server:
N gateway-like processes hammering one principal admit exactly what the limits allow;
a stopped or hung Redis is StoreUnavailable within the timeout, and the store recovers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from gateway.state import Limit, Limits, RedisStore, StoreUnavailable, Ticket, parse_window
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

PROCESSES = 4
COST = 1000  # nano-USD per request, estimated and charged alike

# One "gateway process": uvloop, its own RedisStore, TASKS concurrent clients sharing
# ATTEMPTS admissions of COST each; an admitted request is held HOLD_S, then settled. Starts at START
# (epoch seconds) so that every process contends at once.
WORKER = """
import asyncio, json, sys, time
import msgspec, uvloop
from gateway.state import Limits, RedisStore, Ticket

url, prefix, spec, start, attempts, tasks, hold_s, cost = sys.argv[1:]
limits = msgspec.json.decode(spec, type=Limits)
left = int(attempts)
out = {"admitted": 0, "refused": {}, "held": []}

async def client(store):
    global left
    while left > 0:
        left -= 1
        t = await store.admit(limits, now=time.time(), tokens=10, cost=int(cost))
        if isinstance(t, Ticket):
            out["admitted"] += 1
            t0 = time.time()
            await asyncio.sleep(float(hold_s))
            out["held"].append((t0, time.time()))
            await store.settle(limits, t, tokens=10, cost=int(cost))
        else:
            out["refused"][t.kind] = out["refused"].get(t.kind, 0) + 1

async def main():
    store = RedisStore(url, prefix=prefix, timeout_s=5.0)
    await asyncio.sleep(max(0.0, float(start) - time.time()))
    await asyncio.gather(*(client(store) for _ in range(int(tasks))))
    await store.close()
    print(json.dumps(out))

uvloop.run(main())
"""


def hammer(url: str, limits: Limits, *, prefix: str, attempts: int, tasks: int, hold_s: float) -> list[dict[str, Any]]:
    spec = msgspec.json.encode(limits).decode()
    start = time.time() + 3.0  # every process imported and connected by then
    args = [url, prefix, spec, str(start), str(attempts), str(tasks), str(hold_s), str(COST)]
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=45)
        assert p.returncode == 0, stderr.decode()
        results.append(json.loads(stdout))
    return results


def rolling(*items: Limit, cap: int | None = None) -> Limits:
    return Limits(principal="vk:shared", anchor=time.time(), limits=items, max_concurrency=cap)


def redis_call(url: str, *command: str) -> Any:
    async def main() -> Any:
        raw = Redis.from_url(url)
        try:
            return await raw.execute_command(*command)
        finally:
            await raw.aclose()

    return asyncio.run(main())


@pytest.fixture
def prefix() -> str:
    return f"i{uuid.uuid4().hex[:12]}:"


def test_store_redis_processes_admit_exactly_the_request_limit(redis_server: str, prefix: str) -> None:
    lim = rolling(Limit("requests", 100, parse_window("1h")), Limit("budget", 10**15, parse_window("1d")))
    results = hammer(redis_server, lim, prefix=prefix, attempts=150, tasks=8, hold_s=0)
    assert sum(r["admitted"] for r in results) == 100
    assert sum(r["refused"].get("requests", 0) for r in results) == PROCESSES * 150 - 100
    # Not asserted: that every process won some admissions (a late start on a loaded
    # machine is legitimate). Splitting check and increment makes this test fail (112 of 100).


def test_store_redis_processes_admit_exactly_the_budget(redis_server: str, prefix: str) -> None:
    lim = rolling(Limit("requests", 10_000, parse_window("1h")), Limit("budget", 70 * COST, parse_window("1d")))
    results = hammer(redis_server, lim, prefix=prefix, attempts=50, tasks=8, hold_s=0.001)
    assert sum(r["admitted"] for r in results) == 70
    assert sum(r["refused"].get("budget", 0) for r in results) == PROCESSES * 50 - 70

    async def usage() -> list[int]:
        store = RedisStore(redis_server, prefix=prefix)
        try:
            return [n for _, n, _ in await store.usage(lim, now=time.time())]
        finally:
            await store.close()

    assert asyncio.run(usage()) == [70, 70 * COST]  # every reservation settled into spend


def test_store_redis_processes_never_exceed_the_concurrency_cap(redis_server: str, prefix: str) -> None:
    lim = rolling(cap=3)
    results = hammer(redis_server, lim, prefix=prefix, attempts=80, tasks=4, hold_s=0.005)
    # A request's held interval lies within its slot's life in Redis (admit returned ...
    # settle called), so the intervals' overlap is a lower bound of the true in-flight count.
    edges = sorted((t, step) for r in results for t0, t1 in r["held"] for t, step in ((t0, 1), (t1, -1)))
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert 1 <= peak <= 3
    assert sum(r["refused"].get("concurrency", 0) for r in results) > 0
    assert redis_call(redis_server, "ZCARD", f"{prefix}{{vk:shared}}:inflight") == 0  # all slots freed


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and pause."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_store_redis_stopped_is_unavailable_then_recovers(own_redis: RedisServer) -> None:
    lim = rolling(Limit("requests", 1000, parse_window("1h")), cap=10)

    async def main() -> None:
        store = RedisStore(own_redis.url, timeout_s=0.25)
        try:
            await store.settle(lim, await admitted(store, lim), tokens=1, cost=1)
            own_redis.stop()
            for _ in range(3):
                await unavailable(store, lim, within_s=5.0)
            own_redis.start()  # empty: no persistence
            await store.settle(lim, await admitted(store, lim), tokens=1, cost=1)  # the first call succeeds
        finally:
            await store.close()

    asyncio.run(main())


def test_store_redis_hung_is_unavailable_within_the_timeout_then_recovers(own_redis: RedisServer) -> None:
    lim = rolling(Limit("requests", 1000, parse_window("1h")), cap=1)

    async def main() -> None:
        store = RedisStore(own_redis.url, timeout_s=0.25)
        try:
            await store.settle(lim, await admitted(store, lim), tokens=1, cost=1)
            own_redis.pause()
            await unavailable(store, lim, within_s=5.0)  # bounded (2 x timeout_s), with room for a loaded machine
            own_redis.resume()
            # The timed-out admission ran once Redis woke (its slot taken): the next
            # admission frees it, so the cap of 1 is not lost for the lease's hour.
            await store.settle(lim, await admitted_eventually(store, lim), tokens=1, cost=1)
            await store.settle(lim, await admitted(store, lim), tokens=1, cost=1)
        finally:
            await store.close()

    asyncio.run(main())


async def admitted(store: RedisStore, lim: Limits) -> Ticket:
    t = await store.admit(lim, now=time.time(), tokens=1, cost=1)
    assert isinstance(t, Ticket), t
    return t


async def admitted_eventually(store: RedisStore, lim: Limits) -> Ticket:
    for _ in range(3):
        t = await store.admit(lim, now=time.time(), tokens=1, cost=1)
        if isinstance(t, Ticket):
            return t
    raise AssertionError(f"still refused: {t}")


async def unavailable(store: RedisStore, lim: Limits, *, within_s: float) -> None:
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match="redis admit failed"):
        await store.admit(lim, now=time.time(), tokens=1, cost=1)
    assert time.monotonic() - t < within_s
