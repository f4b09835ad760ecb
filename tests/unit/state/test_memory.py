"""What only the in-memory store has: bounded memory (expired periods swept, the oldest
evicted when full) and admissions that no interleaving of tasks can split."""

from __future__ import annotations

import asyncio

from gateway.state import Limit, Limits, MemoryStore, Refusal, Ticket, parse_window

T0 = 1_700_000_010.0


def minute_limits(principal: str = "vk:a", n: int = 1000) -> Limits:
    return Limits(principal=principal, anchor=0.0, limits=(Limit("requests", n, parse_window("1m")),))


def test_memory_drops_periods_once_over() -> None:
    async def main() -> int:
        store = MemoryStore()
        lim = minute_limits()
        peak = 0
        for minute in range(500):
            assert isinstance(await store.admit(lim, now=T0 + 60 * minute, tokens=0, cost=0), Ticket)
            peak = max(peak, len(store))
        return peak

    assert asyncio.run(main()) <= 3  # this minute, the last one (in its grace), one being swept


def test_memory_keeps_live_counters_under_the_cap() -> None:
    async def main() -> None:
        store = MemoryStore(max_counters=100)
        for i in range(1000):
            lim = minute_limits(f"vk:{i}", n=1)
            assert isinstance(await store.admit(lim, now=T0, tokens=0, cost=0), Ticket)
            assert len(store) <= 100
        # The newest principals' usage is still counted; the oldest were forgotten.
        assert isinstance(await store.admit(minute_limits("vk:999", n=1), now=T0, tokens=0, cost=0), Refusal)
        assert isinstance(await store.admit(minute_limits("vk:0", n=1), now=T0, tokens=0, cost=0), Ticket)

    asyncio.run(main())


def test_memory_concurrent_tasks_never_overshoot() -> None:
    async def main() -> None:
        store = MemoryStore()
        lim = Limits(
            principal="vk:a",
            anchor=0.0,
            limits=(Limit("requests", 50, parse_window("1h")), Limit("budget", 10_000, parse_window("1d"))),
            max_concurrency=20,
        )
        admitted = inflight = peak = 0

        async def client() -> None:
            nonlocal admitted, inflight, peak
            for _ in range(10):
                t = await store.admit(lim, now=T0, tokens=1, cost=100)
                if isinstance(t, Ticket):
                    admitted += 1
                    inflight += 1
                    peak = max(peak, inflight)
                    await asyncio.sleep(0.001)
                    inflight -= 1
                    await store.settle(lim, t, tokens=1, cost=100)
                else:
                    await asyncio.sleep(0)

        await asyncio.gather(*(client() for _ in range(30)))
        assert admitted == 50
        assert peak == 20
        usage = [n for _, n, _ in await store.usage(lim, now=T0)]
        assert usage == [50, 5000]

    asyncio.run(main())


def test_memory_responses_evict_the_least_recently_used_past_the_byte_cap() -> None:
    from gateway.state.memory import RESPONSE_OVERHEAD_BYTES

    record = b"x" * 1000
    size = len(record) + len("vk:a") + len("resp_00") + RESPONSE_OVERHEAD_BYTES

    async def main() -> None:
        store = MemoryStore(max_response_bytes=16 * size)
        for i in range(16):
            await store.response_put(f"resp_{i:02d}", "vk:a", record, ttl_s=60)
        assert store.response_bytes == 16 * size
        assert await store.response_get("resp_00") is not None  # read: now the most recently used
        await store.response_put("resp_16", "vk:a", record, ttl_s=60)
        # Full: the least recently used went, down to 7/8 of the cap, in one batch (two of them).
        assert store.response_bytes == 15 * size
        assert await store.response_get("resp_01") is None and await store.response_get("resp_02") is None
        for kept in ("resp_00", "resp_03", "resp_15", "resp_16"):
            assert await store.response_get(kept) is not None
        for i in range(100):
            await store.response_put(f"resp_n{i:02d}", "vk:a", record, ttl_s=60)
            assert store.response_bytes <= 16 * size
        await store.response_delete("resp_n99")
        assert store.response_bytes <= 15 * size

    asyncio.run(main())


def test_memory_responses_too_large_for_the_store_are_not_kept() -> None:
    async def main() -> None:
        store = MemoryStore(max_response_bytes=10_000)
        await store.response_put("resp_a", "vk:a", b"small", ttl_s=60)
        await store.response_put("resp_big", "vk:a", b"x" * 10_000, ttl_s=60)
        assert await store.response_get("resp_big") is None
        assert await store.response_get("resp_a") == ("vk:a", b"small")  # nothing evicted for it
        await store.response_put("resp_a", "vk:a", b"x" * 10_000, ttl_s=60)  # a replacement too big
        assert await store.response_get("resp_a") is None
        assert store.response_bytes == 0

    asyncio.run(main())


def test_memory_responses_expired_are_swept_for_their_bytes() -> None:
    async def main() -> None:
        store = MemoryStore(max_response_bytes=100_000)
        for i in range(50):
            await store.response_put(f"resp_{i}", "vk:a", b"x" * 1000, ttl_s=0.05)
        await asyncio.sleep(0.1)
        # Full of expired entries: the write sweeps them rather than evicting live ones.
        await store.response_put("resp_live", "vk:a", b"x" * 1000, ttl_s=60)
        for i in range(100):
            await store.response_put(f"resp_more{i}", "vk:a", b"x" * 100, ttl_s=60)
        assert await store.response_get("resp_live") is not None

    asyncio.run(main())
