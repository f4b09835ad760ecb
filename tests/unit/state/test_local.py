"""What only the local store has (the supervisor's MemoryStore, reached over a Unix
socket): one count for several clients, calls multiplexed on one connection, a client
that goes away freeing its slots, an admission abandoned by its caller freeing its slot
when its answer comes, and every failure as StoreUnavailable."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time

import pytest

from gateway.state import Limit, Limits, Refusal, StoreUnavailable, Ticket, parse_window
from gateway.state.local import LocalStore
from tests.unit.state.conftest import LocalServer

T0 = 1_700_000_010.0
HOUR = parse_window("1h")


def capped(n: int, *, requests: int = 1000) -> Limits:
    return Limits(principal="vk:a", anchor=0.0, limits=(Limit("requests", requests, HOUR),), max_concurrency=n)


def test_local_two_clients_share_one_count(local_server: LocalServer) -> None:
    async def main() -> list[bool]:
        a, b = LocalStore(local_server.path, timeout_s=5), LocalStore(local_server.path, timeout_s=5)
        lim = capped(100, requests=4)
        try:
            out = [await (a if i % 2 else b).admit(lim, now=T0, tokens=0, cost=0) for i in range(10)]
        finally:
            await a.close()
            await b.close()
        return [isinstance(t, Ticket) for t in out]

    assert asyncio.run(main()) == [True] * 4 + [False] * 6


def test_local_concurrent_calls_share_one_connection_and_never_overshoot(local_server: LocalServer) -> None:
    async def main() -> tuple[int, int]:
        store = LocalStore(local_server.path, timeout_s=5)
        lim = capped(1000, requests=50)
        try:
            out = await asyncio.gather(*(store.admit(lim, now=T0, tokens=1, cost=0) for _ in range(300)))
        finally:
            await store.close()
        return sum(isinstance(t, Ticket) for t in out), len({t.slot for t in out if isinstance(t, Ticket)})

    assert asyncio.run(main()) == (50, 50)


def test_local_client_gone_frees_its_slots_and_stays_charged(local_server: LocalServer) -> None:
    lim = Limits(principal="vk:a", anchor=0.0, limits=(Limit("tokens", 1000, HOUR),), max_concurrency=2)

    async def main() -> None:
        gone = LocalStore(local_server.path, timeout_s=5)
        for _ in range(2):
            assert isinstance(await gone.admit(lim, now=T0, tokens=100, cost=0), Ticket)
        other = LocalStore(local_server.path, timeout_s=5)
        try:
            out = await other.admit(lim, now=T0, tokens=0, cost=0)
            assert isinstance(out, Refusal) and out.kind == "concurrency"
            await gone.close()  # as a worker that died: it never settles
            for _ in range(200):  # the server notices the closed connection
                out = await other.admit(lim, now=T0, tokens=0, cost=0)
                if isinstance(out, Ticket):
                    break
                await asyncio.sleep(0.01)
            assert isinstance(out, Ticket)
            assert [n for _, n, _ in await other.usage(lim, now=T0)] == [200]  # charged at the estimates
        finally:
            await other.close()

    asyncio.run(main())


def test_local_abandoned_admission_frees_its_slot_when_answered(local_server: LocalServer) -> None:
    """The caller times out while the supervisor is stalled; the admission was made all
    the same, and its late answer frees the slot rather than holding it."""
    lim = capped(1)

    async def main() -> None:
        store = LocalStore(local_server.path, timeout_s=0.2)
        try:
            await store.usage(lim, now=T0)  # connected
            local_server.loop.call_soon_threadsafe(time.sleep, 0.6)  # the supervisor stalls
            with pytest.raises(StoreUnavailable, match="admit"):
                await store.admit(lim, now=T0, tokens=0, cost=0)
            out: Ticket | Refusal | None = None
            for _ in range(100):
                try:
                    out = await store.admit(lim, now=T0, tokens=0, cost=0)
                except StoreUnavailable:
                    continue  # still stalled
                if isinstance(out, Ticket):
                    break
                await asyncio.sleep(0.02)
            assert isinstance(out, Ticket)
        finally:
            await store.close()

    asyncio.run(main())


def test_local_no_server_is_store_unavailable() -> None:
    async def main() -> None:
        store = LocalStore(os.path.join(tempfile.gettempdir(), "gw-no-such-store.sock"), timeout_s=1)
        with pytest.raises(StoreUnavailable, match="local store admit failed"):
            await store.admit(capped(1), now=T0, tokens=0, cost=0)
        await store.close()

    asyncio.run(main())


def test_local_silent_server_is_store_unavailable_in_time() -> None:
    """A server that accepts and never answers: the deadline holds."""
    d = tempfile.mkdtemp(prefix="gw-silent-")
    path = os.path.join(d, "s.sock")
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(path)
        silent.listen()

        async def main() -> float:
            store = LocalStore(path, timeout_s=0.2)
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailable, match="job_get"):
                await store.job_get("job-x")
            await store.close()
            return time.monotonic() - t0

        assert asyncio.run(main()) < 5  # bounded, not a timing claim
    os.unlink(path)
    os.rmdir(d)


def test_local_large_records_cross_in_many_reads(local_server: LocalServer) -> None:
    """A job's record holds a whole answer: megabytes arrive in many reads, either way."""
    record = os.urandom(3 * 1024 * 1024)

    async def main() -> tuple[str, bytes] | None:
        store = LocalStore(local_server.path, timeout_s=10)
        try:
            assert await store.job_create("job-big", "me", record, ttl_s=60, max_pending=10)
            return await store.job_get("job-big")
        finally:
            await store.close()

    assert asyncio.run(main()) == ("me", record)
