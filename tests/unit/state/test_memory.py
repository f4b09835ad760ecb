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
