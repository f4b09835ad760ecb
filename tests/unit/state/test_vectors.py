"""The semantic cache's vector index: exact and graph search agree, thresholds, TTL,
eviction, and the shared index kept in step between two instances through a real
redis-server (stopped mid-run in one test)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.config.schema import StoreConfig
from gateway.metrics import Metrics
from gateway.providers.mock_embed import embed_text
from gateway.state.vectors import EmbeddedVectorIndex, vector_index
from gateway.state.vectorshare import SharedVectorIndex
from tests.conftest import RedisServer

DIM = 64


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def near(rng: np.random.Generator, v: np.ndarray, noise: float) -> list[float]:
    q = v + noise * rng.standard_normal(v.shape[0]).astype(np.float32) / np.sqrt(v.shape[0])
    return (q / np.linalg.norm(q)).tolist()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> float:
    """Seconds until ``check`` held (fails past ``within_s``)."""
    t0 = time.perf_counter()
    while not await check():
        assert time.perf_counter() - t0 < within_s, "not within the time"
        await asyncio.sleep(0.0005)
    return time.perf_counter() - t0


def test_vectors_exact_and_graph_agree_on_the_nearest() -> None:
    rng = np.random.default_rng(7)
    rows = unit_rows(rng, 600)

    async def main() -> None:
        exact = EmbeddedVectorIndex(ann_min_entries=10_000)
        graph = EmbeddedVectorIndex(ann_min_entries=200)
        for i, row in enumerate(rows):
            for index in (exact, graph):
                await index.add(f"e{i}", "ns", "g", row.tolist(), 60)
        await graph.wait_built()
        assert graph.uses_graph("g") and not exact.uses_graph("g")
        hits = 0
        for i in rng.choice(len(rows), 100, replace=False):
            q = near(rng, rows[i], 0.3)
            a, b = await exact.nearest("g", q, 0.8), await graph.nearest("g", q, 0.8)
            assert a is not None and a[0] == f"e{i}"
            assert b == pytest.approx(a) if b is not None else False
            hits += 1
        assert hits == 100
        # Random queries are far from everything: no answer from either.
        for q in unit_rows(rng, 20):
            assert await exact.nearest("g", q.tolist(), 0.8) is None
            assert await graph.nearest("g", q.tolist(), 0.8) is None
        # Removals reach the graph: a removed entry is never answered.
        for i in range(0, 600, 2):
            await graph.remove(f"e{i}")
        for i in range(0, 40):
            found = await graph.nearest("g", rows[i].tolist(), 0.99)
            assert (found is None) if i % 2 == 0 else (found is not None and found[0] == f"e{i}")
        await exact.close()
        await graph.close()

    asyncio.run(main())


def test_vectors_graph_built_while_entries_come_and_go() -> None:
    """Entries added and removed while the graph is built in its thread are in it after."""
    rng = np.random.default_rng(3)
    rows = unit_rows(rng, 400)

    async def main() -> None:
        index = EmbeddedVectorIndex(ann_min_entries=300)
        for i in range(300):
            await index.add(f"e{i}", "ns", "g", rows[i].tolist(), 60)
        for i in range(300, 400):  # the build started at 300
            await index.add(f"e{i}", "ns", "g", rows[i].tolist(), 60)
        await index.remove("e0")
        await index.wait_built()
        assert index.uses_graph("g")
        assert await index.nearest("g", rows[0].tolist(), 0.99) is None
        for i in (1, 299, 300, 399):
            assert await index.nearest("g", rows[i].tolist(), 0.99) == (f"e{i}", pytest.approx(1.0, abs=1e-5))
        await index.close()

    asyncio.run(main())


def test_vectors_threshold_groups_and_dimensions() -> None:
    async def main() -> None:
        index = EmbeddedVectorIndex()
        await index.add("a", "ns", "g1", [1.0, 0.0, 0.0], 60)
        await index.add("b", "ns", "g2", [0.0, 1.0, 0.0], 60)
        q = [0.8, 0.6, 0.0]  # cosine 0.8 with a, 0.6 with b
        assert await index.nearest("g1", q, 0.8) == ("a", pytest.approx(0.8))
        assert await index.nearest("g1", q, 0.81) is None
        assert await index.nearest("g2", q, 0.8) is None  # b is only compared within g2
        assert await index.nearest("g2", q, 0.6) == ("b", pytest.approx(0.6))
        assert await index.nearest("g3", q, 0.0) is None
        assert await index.nearest("g1", [1.0, 0.0], 0.0) is None  # another dimension: no match
        with pytest.raises(ValueError):
            await index.add("c", "ns", "g1", [1.0, 0.0], 60)
        with pytest.raises(ValueError):
            await index.add("c", "ns", "g1", [0.0, 0.0, 0.0], 60)
        await index.add("a", "ns", "g1", [0.0, 0.0, 1.0], 60)  # replaced
        assert await index.nearest("g1", q, 0.5) is None
        await index.close()

    asyncio.run(main())


def test_vectors_ttl_expiry() -> None:
    clock = Clock()

    async def main() -> None:
        index = EmbeddedVectorIndex(clock=clock)
        await index.add("short", "ns", "g", [1.0, 0.0], 10)
        await index.add("long", "ns", "g", [0.9, 0.1], 100)
        assert (await index.nearest("g", [1.0, 0.0], 0.5) or ("",))[0] == "short"
        clock.now += 10
        assert (await index.nearest("g", [1.0, 0.0], 0.5) or ("",))[0] == "long"
        assert len(index) == 1
        clock.now += 90
        assert await index.nearest("g", [1.0, 0.0], 0.5) is None
        assert len(index) == 0
        await index.close()

    asyncio.run(main())


def test_vectors_eviction_bound_least_recently_used() -> None:
    async def main() -> None:
        index = EmbeddedVectorIndex(max_entries=3)
        for i, v in enumerate(([1.0, 0.0], [0.0, 1.0], [-1.0, 0.0])):
            await index.add(f"e{i}", "ns", "g", v, 60)
        assert await index.nearest("g", [1.0, 0.0], 0.9) == ("e0", 1.0)  # e0 used: e1 is now the oldest
        await index.add("e3", "ns", "g", [0.0, -1.0], 60)
        assert len(index) == 3 and index.evicted == 1
        assert await index.nearest("g", [0.0, 1.0], 0.9) is None
        assert await index.nearest("g", [1.0, 0.0], 0.9) == ("e0", 1.0)
        for i in range(100):
            await index.add(f"x{i}", "ns", f"g{i % 7}", [1.0, float(i)], 60)
        assert len(index) == 3 and index.evicted == 101
        await index.close()

    asyncio.run(main())


def test_vectors_entry_added_again_as_its_group_s_only_one() -> None:
    """The same id added again (equal requests kept at once) when it is its group's only
    entry, or when the eviction that makes room empties the group: the group is made
    anew, and the entry can be found and removed."""

    async def main() -> None:
        index = EmbeddedVectorIndex(max_entries=1)
        for _ in range(3):
            await index.add("e", "ns", "g", [1.0, 0.0], 60)
            assert await index.nearest("g", [1.0, 0.0], 0.9) == ("e", 1.0)
        await index.add("f", "ns", "g", [0.0, 1.0], 60)  # evicts e, the group's only entry
        assert await index.nearest("g", [0.0, 1.0], 0.9) == ("f", 1.0)
        await index.remove("f")
        await index.remove("e")
        assert len(index) == 0 and await index.nearest("g", [0.0, 1.0], 0.1) is None
        await index.close()

    asyncio.run(main())


def test_vectors_remove_namespace_embedded() -> None:
    async def main() -> None:
        index = EmbeddedVectorIndex()
        await index.add("a", "ns1", "g", [1.0, 0.0], 60)
        await index.add("b", "ns2", "g", [0.9, 0.1], 60)
        await index.remove_namespace("ns1")
        assert (await index.nearest("g", [1.0, 0.0], 0.5) or ("",))[0] == "b"
        await index.remove("b")
        assert await index.nearest("g", [1.0, 0.0], 0.0) is None
        await index.close()

    asyncio.run(main())


PARAPHRASES = (
    ("What is the capital of France?", "what is the capital of france"),
    ("What is the capital of France?", "What's the capital city of France?"),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("Explain how photosynthesis works", "Explain how photosynthesis works in plants"),
    ("Write a haiku about autumn leaves", "write a haiku about the autumn leaves"),
)
UNRELATED = (
    ("What is the capital of France?", "How do I reverse a list in Python?"),
    ("Explain how photosynthesis works", "Write a haiku about autumn leaves"),
    ("What is the capital of France?", "What is the capital of Germany?"),
)


def cosine(a: str, b: str) -> float:
    return float(np.dot(embed_text(a, 768), embed_text(b, 768)))


def test_vectors_mock_embeddings_paraphrase_nearest_unrelated_not(capsys: pytest.CaptureFixture[str]) -> None:
    """With the mock's embeddings and the cache's default threshold (0.8): a paraphrase is
    found, an unrelated text is not. The cosines are printed (pytest -s) for the docs."""
    lines = [f"{cosine(a, b):.3f}  {a!r} ~ {b!r}" for a, b in PARAPHRASES + UNRELATED]
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    async def main() -> None:
        index = EmbeddedVectorIndex()
        texts = sorted({t for pair in PARAPHRASES + UNRELATED for t in pair[:1]})
        for i, text in enumerate(texts):
            await index.add(f"e{i}", "ns", "g", embed_text(text, 768), 60)
        found = await index.nearest("g", embed_text("How can I reverse a list in Python?", 768), 0.8)
        assert found is not None and found[0] == f"e{texts.index('How do I reverse a list in Python?')}"
        assert await index.nearest("g", embed_text("Tell me a joke about penguins", 768), 0.8) is None
        await index.close()

    asyncio.run(main())
    assert cosine(*PARAPHRASES[2]) >= 0.8
    assert all(cosine(a, b) < 0.8 for a, b in UNRELATED[:2])


# -- shared through Redis -----------------------------------------------------------------


def shared(url: str, prefix: str, **kw: object) -> SharedVectorIndex:
    return SharedVectorIndex(url, prefix=prefix, **kw)  # type: ignore[arg-type]


def test_vectors_factory_picks_the_store() -> None:
    async def main() -> None:
        embedded = vector_index(StoreConfig())
        assert isinstance(embedded, EmbeddedVectorIndex)
        await embedded.close()
        remote = vector_index(StoreConfig(redis_url="redis://127.0.0.1:1/0"), metrics=Metrics())
        assert isinstance(remote, SharedVectorIndex)
        await remote.close()

    asyncio.run(main())


def test_vectors_shared_add_remove_and_namespace_propagate(redis_server: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    rng = np.random.default_rng(11)
    rows = unit_rows(rng, 40)

    async def main() -> None:
        a, b = shared(redis_server, prefix), shared(redis_server, prefix)
        try:
            for i in range(20):
                await a.add(f"e{i}", "ns1" if i < 10 else "ns2", "g", rows[i].tolist(), 60)

            async def b_sees(i: int, present: bool) -> bool:
                found = await b.nearest("g", rows[i].tolist(), 0.99)
                return (found is not None and found[0] == f"e{i}") == present

            for i in range(20):
                await eventually(lambda i=i: b_sees(i, True))
            await b.remove("e15")
            await eventually(lambda: a_lacks(a, rows[15], "e15"))
            await a.remove_namespace("ns1")
            for i in range(10):
                await eventually(lambda i=i: b_sees(i, False))
            assert await b_sees(12, True)
            # A third instance loads what is live at its start.
            c = shared(redis_server, prefix)
            try:
                await eventually(lambda: c_has(c, rows[12], "e12"))
                assert len(c.local) == 9  # ns2 minus e15
            finally:
                await c.close()
        finally:
            await a.close()
            await b.close()

    async def a_lacks(index: SharedVectorIndex, row: np.ndarray, entry_id: str) -> bool:
        found = await index.nearest("g", row.tolist(), 0.99)
        return index.in_step and (found is None or found[0] != entry_id)

    async def c_has(index: SharedVectorIndex, row: np.ndarray, entry_id: str) -> bool:
        found = await index.nearest("g", row.tolist(), 0.99)
        return found is not None and found[0] == entry_id

    asyncio.run(main())


def test_vectors_shared_ttl_in_redis_and_on_load(redis_server: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}:"

    async def main() -> None:
        a = shared(redis_server, prefix)
        try:
            await a.add("short", "ns", "g", [1.0, 0.0], 0.3)
            await a.add("long", "ns", "g", [0.9, 0.1], 60)
            await asyncio.sleep(0.4)
            b = shared(redis_server, prefix)
            try:
                await eventually(lambda: _in_step(b))
                assert len(b.local) == 1  # the expired hash is gone from Redis
                assert (await a.nearest("g", [1.0, 0.0], 0.5) or ("",))[0] == "long"
            finally:
                await b.close()
        finally:
            await a.close()

    asyncio.run(main())


async def _in_step(index: SharedVectorIndex) -> bool:
    await index.nearest("g", [1.0], 0.0)  # starts the follower
    return index.in_step


def test_vectors_shared_propagation_delay(redis_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Delay from calling ``add`` on one instance to ``nearest`` finding the entry on the
    other, over 200 adds of 768 dimensions (printed with pytest -s). ``add`` returns once
    Redis has the entry; the other instance learns of it from its blocked XREAD."""
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    rng = np.random.default_rng(5)
    rows = unit_rows(rng, 200, 768)

    async def main() -> list[float]:
        a, b = shared(redis_server, prefix), shared(redis_server, prefix)
        try:
            await eventually(lambda: _in_step(a))
            await eventually(lambda: _in_step(b))
            delays, adds = [], []
            for i, row in enumerate(rows):
                v = row.tolist()
                t0 = time.perf_counter()
                await a.add(f"e{i}", "ns", "g", v, 60)
                adds.append(time.perf_counter() - t0)
                while (await b.nearest("g", v, 0.99) or ("",))[0] != f"e{i}":
                    await asyncio.sleep(0)
                    assert time.perf_counter() - t0 < 5.0
                delays.append(time.perf_counter() - t0)
            with capsys.disabled():
                print(f"\nadd (to Redis's reply): {spread(adds)}")
            return delays
        finally:
            await a.close()
            await b.close()

    delays = asyncio.run(main())
    with capsys.disabled():
        print(f"propagation (add called -> found on the other) over {len(delays)} adds: {spread(delays)}")
    assert max(delays) < 1.0


def spread(seconds: list[float]) -> str:
    p95 = sorted(seconds)[int(0.95 * len(seconds))]
    return f"median {statistics.median(seconds) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms, max {max(seconds) * 1e3:.2f} ms"


@pytest.fixture
def own_redis(tmp_path: Path) -> RedisServer:
    server = RedisServer(tmp_path)
    yield server  # type: ignore[misc]
    server.stop()


def test_vectors_shared_redis_down_misses_quietly_then_recovers(own_redis: RedisServer) -> None:
    metrics = Metrics()

    async def main() -> None:
        a = shared(own_redis.url, "gw:", metrics=metrics)
        b = shared(own_redis.url, "gw:", metrics=metrics)
        try:
            await eventually(lambda: _in_step(a))
            await eventually(lambda: _in_step(b))
            await a.add("x", "ns", "g", [1.0, 0.0], 60)
            await eventually(lambda: _found(b, "x"))
            own_redis.stop()
            t0 = time.perf_counter()
            await eventually(lambda: _not_found(b), within_s=3.0)  # out of step: misses
            await a.add("y", "ns", "g", [0.0, 1.0], 60)  # dropped, never raised
            await a.remove("x")
            await a.remove_namespace("ns")
            t1 = time.perf_counter()
            assert await b.nearest("g", [1.0, 0.0], 0.5) is None
            assert time.perf_counter() - t1 < 0.01  # no waiting on Redis in a lookup
            assert t1 - t0 < 5.0
            assert metrics.vector_errors >= 3
            own_redis.start()  # empty: no persistence
            await a.add("z", "ns", "g", [0.6, 0.8], 60)
            await eventually(lambda: _found(b, "z"), within_s=10.0)  # reconnected, reloaded
            assert await b.nearest("g", [1.0, 0.0], 0.9) is None  # x is gone with the old server's data
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_vectors_shared_redis_hung_misses_within_the_deadline(own_redis: RedisServer) -> None:
    async def main() -> None:
        b = shared(own_redis.url, "gw:", timeout_s=0.1, block_s=0.3)
        try:
            await b.add("x", "ns", "g", [1.0, 0.0], 60)
            await eventually(lambda: _found(b, "x"))
            own_redis.pause()
            t0 = time.perf_counter()
            await b.add("y", "ns", "g", [0.0, 1.0], 60)  # bounded by the deadline
            assert time.perf_counter() - t0 < 1.0
            waited = await eventually(lambda: _not_found(b), within_s=3.0)
            assert waited < 1.5  # block + two timeouts, with room for a loaded machine
        finally:
            own_redis.resume()
            await b.close()

    asyncio.run(main())


async def _found(index: SharedVectorIndex, entry_id: str) -> bool:
    found = await index.nearest("g", [1.0, 0.0] if entry_id == "x" else [0.6, 0.8], 0.9)
    return found is not None and found[0] == entry_id


async def _not_found(index: SharedVectorIndex) -> bool:
    return await index.nearest("g", [1.0, 0.0], 0.5) is None


def test_vectors_shared_trimmed_stream_is_detected(redis_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower whose last read change was trimmed away knows it (then reloads)."""
    import gateway.state.vectorshare as vectorshare

    monkeypatch.setattr(vectorshare, "STREAM_MAXLEN", 100)
    prefix = f"t{uuid.uuid4().hex[:12]}:"

    async def main() -> None:
        a = shared(redis_server, prefix)
        b = shared(redis_server, prefix)
        b._closing = True  # no follower: reads by hand
        try:
            for i in range(600):
                await a.add(f"e{i}", "ns", "g", [1.0, float(i)], 60)
            b._last_id = b"1-0"
            with pytest.raises(vectorshare._Behind):
                await b._check_trim()
            await b._load()  # what the follower does next
            assert len(b.local) == 600 and b.in_step
            await b._check_trim()  # in step again: nothing lost after the load's point
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
