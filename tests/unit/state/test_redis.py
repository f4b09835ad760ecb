"""What only the Redis store has: its key layout and TTLs, Cluster hash tags, in-flight
leases, and errors that become StoreUnavailable without the password."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from gateway.state import Limit, Limits, RedisStore, Refusal, StoreUnavailable, Ticket, parse_window, period
from tests.conftest import free_port

T0 = 1_700_000_010.0


def run(url: str, scenario: Callable[[RedisStore, Redis, str], Awaitable[None]], **kw: float) -> None:
    """Runs ``scenario(store, raw client, prefix)`` against a fresh prefix."""
    prefix = f"t{uuid.uuid4().hex[:12]}:"

    async def main() -> None:
        store = RedisStore(url, prefix=prefix, **kw)
        raw = Redis.from_url(url)
        try:
            await scenario(store, raw, prefix)
        finally:
            await store.close()
            await raw.aclose()

    asyncio.run(main())


LIMITS = Limits(
    principal="vk:a",
    anchor=0.0,
    limits=(Limit("requests", 10, parse_window("1m")), Limit("budget", 1000, parse_window("1d", calendar=True))),
    max_concurrency=5,
)


def test_redis_key_layout_and_ttls(redis_server: str) -> None:
    minute_pid, minute_end = period(parse_window("1m"), now=T0, anchor=0.0)
    day_pid, day_end = period(parse_window("1d", calendar=True), now=T0, anchor=0.0)

    async def scenario(store: RedisStore, raw: Redis, p: str) -> None:
        t = await store.admit(LIMITS, now=T0, tokens=7, cost=30)
        assert isinstance(t, Ticket)
        minute, day, inflight = (
            f"{p}{{vk:a}}:c:1m:r:{minute_pid}",
            f"{p}{{vk:a}}:c:1d:c:{day_pid}",
            f"{p}{{vk:a}}:inflight",
        )
        assert sorted(await raw.keys(p + "*")) == sorted(k.encode() for k in (minute, day, inflight))
        assert await raw.hgetall(minute) == {b"req": b"1", b"tok_r": b"7", b"usd_r": b"30"}
        # TTL: the period's end - now + 60 s (wall-clock time passing is the slack)
        assert abs(await raw.pttl(minute) - (minute_end - T0 + 60) * 1000) < 5000
        assert abs(await raw.pttl(day) - (day_end - T0 + 60) * 1000) < 5000
        assert 3_590_000 < await raw.pttl(inflight) <= 3_600_000
        assert await raw.zrange(inflight, 0, -1) == [t.slot.encode()]
        await store.settle(LIMITS, t, tokens=5, cost=40)
        assert await raw.hgetall(minute) == {b"req": b"1", b"tok": b"5", b"tok_r": b"0", b"usd": b"40", b"usd_r": b"0"}
        assert await raw.zcard(inflight) == 0

    run(redis_server, scenario)


def test_redis_keys_of_one_principal_share_a_cluster_slot(redis_server: str) -> None:
    async def scenario(store: RedisStore, raw: Redis, p: str) -> None:
        lim = Limits(principal="vk:{odd}", anchor=0.0, limits=LIMITS.limits, max_concurrency=1)
        assert isinstance(await store.admit(lim, now=T0, tokens=1, cost=1), Ticket)
        await store.job_create("j", "o", b"r", ttl_s=60, max_pending=5)
        await store.key_put("k", "h", b"r")
        keys = await raw.keys(p + "*")
        by_tag: dict[bytes, set[int]] = {}
        for k in keys:
            tag = k[len(p) :].split(b"}")[0]
            by_tag.setdefault(tag, set()).add(key_slot(k))
        assert sorted(by_tag) == [b"{jobs", b"{keys", b"{vk:{odd"]
        assert all(len(slots) == 1 for slots in by_tag.values())

    run(redis_server, scenario)


def test_redis_settle_never_recreates_an_expired_counter(redis_server: str) -> None:
    async def scenario(store: RedisStore, raw: Redis, p: str) -> None:
        t = await store.admit(LIMITS, now=T0, tokens=1, cost=1)
        assert isinstance(t, Ticket)
        for name in t.counters:
            await raw.delete(f"{p}{{vk:a}}:c:{name}")  # as if the TTL had run out
        await store.settle(LIMITS, t, tokens=1, cost=1)
        assert await raw.keys(p + "*") == []  # no counter left behind without a TTL

    run(redis_server, scenario)


def test_redis_inflight_slots_of_a_dead_process_expire(redis_server: str) -> None:
    lim = Limits(principal="vk:a", anchor=0.0, max_concurrency=1)

    async def scenario(store: RedisStore, raw: Redis, p: str) -> None:
        assert isinstance(await store.admit(lim, now=T0, tokens=0, cost=0), Ticket)  # never settled
        assert isinstance(await store.admit(lim, now=T0, tokens=0, cost=0), Refusal)
        await asyncio.sleep(0.3)
        assert isinstance(await store.admit(lim, now=T0, tokens=0, cost=0), Ticket)

    run(redis_server, scenario, inflight_lease_s=0.2)


def test_redis_unreachable_is_store_unavailable_without_the_password() -> None:
    url = f"redis://user:s3cr%40t-pw@127.0.0.1:{free_port()}/0"

    async def main() -> None:
        store = RedisStore(url, timeout_s=0.25)
        try:
            ops: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("admit", lambda: store.admit(LIMITS, now=T0, tokens=1, cost=1)),
                ("usage", lambda: store.usage(LIMITS, now=T0)),
                ("job_create", lambda: store.job_create("j", "o", b"r", ttl_s=1, max_pending=1)),
                ("job_get", lambda: store.job_get("j")),
                ("key_by_hash", lambda: store.key_by_hash("h")),
                ("key_create", lambda: store.key_create("k", "h", b"r")),
                ("key_list", store.key_list),
            ]
            for op, call in ops:
                t = time.monotonic()
                with pytest.raises(StoreUnavailable, match=f"redis {op} failed") as e:
                    await call()
                assert time.monotonic() - t < 5.0  # bounded, not a hang (2 x timeout_s = 0.5 s)
                assert "s3cr" not in str(e.value)
        finally:
            await store.close()

    asyncio.run(main())


def test_redis_error_reply_is_store_unavailable(redis_server: str) -> None:
    async def scenario(store: RedisStore, raw: Redis, p: str) -> None:
        await raw.set(f"{p}{{vk:a}}:inflight", "not a zset")
        with pytest.raises(StoreUnavailable, match="redis admit failed: ResponseError"):
            await store.admit(LIMITS, now=T0, tokens=1, cost=1)

    run(redis_server, scenario)


def test_redis_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="hash tags"):
        RedisStore("redis://127.0.0.1:1/0", prefix="{gw}:")


def test_redis_response_is_one_key_with_its_ttl_without_a_hash_tag(redis_server: str) -> None:
    async def scenario(store: RedisStore, raw: Redis, p: str) -> None:
        await store.response_put("resp_abc", "vk:a", b'{"x":1}', ttl_s=3600)
        assert await raw.keys(p + "*") == [f"{p}resp:resp_abc".encode()]
        assert 3_590_000 < await raw.pttl(f"{p}resp:resp_abc") <= 3_600_000
        assert await raw.get(f"{p}resp:resp_abc") == b'4:vk:a{"x":1}'
        assert b"{" not in f"{p}resp:resp_abc".encode()  # spread over the cluster's slots, not one tag
        await store.response_put("resp_abc", "vk:a", b"y", ttl_s=1)  # a replacement takes its own TTL
        assert 0 < await raw.pttl(f"{p}resp:resp_abc") <= 1000
        assert await store.response_delete("resp_abc")
        assert await raw.keys(p + "*") == []
        await raw.set(f"{p}resp:resp_odd", b"not-a-record")  # a value this store did not write
        assert await store.response_get("resp_odd") is None

    run(redis_server, scenario)
