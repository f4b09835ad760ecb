"""gateway.routing.limits: a provider's concurrency slots, its queue (first come, first
served), the queue's timeout, drop-excess mode, and slots that never leak when a waiter
gives up."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import LimitConfig
from gateway.routing.limits import Limiter, ProviderBusy


def limiter(**cfg: object) -> Limiter:
    return Limiter("up", LimitConfig(**cfg))  # type: ignore[arg-type]


def test_limits_slots_then_queue_in_order_then_busy() -> None:
    async def main() -> None:
        lim = limiter(max_concurrency=2, queue_size=2, queue_timeout_s=5)
        await lim.acquire()
        await lim.acquire()
        assert lim.in_flight == 2
        served: list[str] = []

        async def wait(name: str) -> None:
            await lim.acquire()
            served.append(name)

        first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
        await asyncio.sleep(0)
        with pytest.raises(ProviderBusy) as e:  # two in flight, two waiting: full
            await lim.acquire()
        assert e.value.status == 429 and "2 in flight and 2 waiting" in e.value.message
        lim.release()  # the slot passes to the first waiter
        await first
        assert served == ["first"] and lim.in_flight == 2
        lim.release()
        await second
        assert served == ["first", "second"] and lim.in_flight == 2
        lim.release()
        lim.release()
        assert lim.in_flight == 0

    asyncio.run(main())


def test_limits_queue_timeout_is_busy_and_leaves_no_waiter() -> None:
    async def main() -> None:
        lim = limiter(max_concurrency=1, queue_timeout_s=0.05)
        await lim.acquire()
        with pytest.raises(ProviderBusy) as e:
            await lim.acquire()
        assert "no free slot within 0.05 s" in e.value.message
        lim.release()  # nobody waits: the slot is free again, not handed to the timed-out waiter
        assert lim.in_flight == 0
        await lim.acquire()
        assert lim.in_flight == 1

    asyncio.run(main())


def test_limits_drop_excess_has_no_queue() -> None:
    async def main() -> None:
        lim = limiter(max_concurrency=1, drop_excess_requests=True)
        await lim.acquire()
        with pytest.raises(ProviderBusy) as e:
            await lim.acquire()
        assert "waiting" not in e.value.message

    asyncio.run(main())


def test_limits_cancelled_waiter_passes_its_slot_on() -> None:
    """A waiter cancelled just as the slot was handed to it gives the slot back (to the
    next waiter): in_flight stays exact."""

    async def main() -> None:
        lim = limiter(max_concurrency=1, queue_timeout_s=5)
        await lim.acquire()
        gone = asyncio.create_task(lim.acquire())
        nxt = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0)
        lim.release()  # handed to `gone`...
        gone.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await gone
        await nxt  # the slot went on
        assert lim.in_flight == 1
        lim.release()
        assert lim.in_flight == 0

    asyncio.run(main())
