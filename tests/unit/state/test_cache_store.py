"""The response cache's in-process store: bounded by bytes (least recently used first),
each entry with its TTL, namespaces deleted whole."""

from __future__ import annotations

import asyncio

from gateway.state.cache import ENTRY_OVERHEAD_BYTES, MemoryCache

MIB = 1024 * 1024


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_cache_store_keeps_reads_and_deletes() -> None:
    async def go() -> None:
        store = MemoryCache(max_bytes=MIB)
        await store.put("a", "ns", b"x" * 10, ttl_s=60)
        assert await store.get("a") == b"x" * 10
        assert await store.get("b") is None
        assert store.stats() == (1, 10 + 2 + ENTRY_OVERHEAD_BYTES, 0)
        assert await store.delete("a") and not await store.delete("a")
        assert store.stats() == (0, 0, 0)

    _run(go())


def test_cache_store_expires_entries(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import gateway.state.cache as cache

    now = [1000.0]
    monkeypatch.setattr(cache.time, "monotonic", lambda: now[0])

    async def go() -> None:
        store = MemoryCache(max_bytes=MIB)
        await store.put("a", "ns", b"v", ttl_s=5)
        now[0] += 4.9
        assert await store.get("a") == b"v"
        now[0] += 0.2
        assert await store.get("a") is None and len(store) == 0

    _run(go())


def test_cache_store_forgets_least_recently_used_past_its_bytes() -> None:
    async def go() -> None:
        size = 1000
        store = MemoryCache(max_bytes=3 * (size + 2 + ENTRY_OVERHEAD_BYTES))
        for name in ("a", "b", "c"):
            await store.put(name, "ns", b"x" * size, ttl_s=60)
        assert await store.get("a") is not None  # now the most recently used
        await store.put("d", "ns", b"x" * size, ttl_s=60)
        assert await store.get("b") is None
        assert all([await store.get(n) for n in ("a", "c", "d")])
        assert store.evictions == 1 and store.bytes <= store.max_bytes
        await store.put("huge", "ns", b"x" * (4 * size), ttl_s=60)  # larger than the whole budget
        assert await store.get("huge") is None and len(store) == 3

    _run(go())


def test_cache_store_deletes_a_namespace() -> None:
    async def go() -> None:
        store = MemoryCache(max_bytes=MIB)
        for name, ns in (("a", "n1"), ("b", "n1"), ("c", "n2")):
            await store.put(name, ns, b"v", ttl_s=60)
        assert await store.delete_namespace("n1") == 2
        assert await store.delete_namespace("n1") == 0
        assert await store.get("a") is None and await store.get("c") == b"v"

    _run(go())
