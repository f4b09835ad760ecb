"""Runtime keys as the governor finds them: through a real MemoryStore, cached for the
configured time (found, refused and unknown alike), the unknown ones bounded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from multidict import CIMultiDict

from gateway.config import AuthConfig, BudgetConfig, RateLimitConfig, TokenConfig
from gateway.errors import Unauthorized
from gateway.governance import (
    ANONYMOUS,
    MAX_UNKNOWN,
    NANO,
    Governor,
    Inactive,
    KeyRecord,
    Principal,
    RuntimeKeys,
    credentials,
    digest,
    encode_record,
    runtime_principal,
)
from gateway.metrics import Metrics
from gateway.state import MemoryStore

HOUR = 3600.0  # a cache that outlives the test: what it returns comes from the cache
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def record(name: str, **spec: Any) -> KeyRecord:
    return KeyRecord(name=name, created_at=NOW, principal=f"key:{name}:0a1b2c", **spec)


async def stored(store: MemoryStore, rec: KeyRecord, secret: str) -> bytes:
    d = digest(secret)
    assert await store.key_create(rec.name, d.hex(), encode_record(rec))
    return d


def test_governance_runtime_principal_of_a_record() -> None:
    rec = record(
        "a",
        models=("up/gpt-*",),
        budgets=(BudgetConfig(usd=2.5, window="1d"),),
        rate_limits=(RateLimitConfig(requests=3, tokens=100, window="1h"),),
        max_concurrency=2,
    )
    p = runtime_principal(rec, secret_digest=b"d")
    assert isinstance(p, Principal)
    assert p.id == "key:a:0a1b2c" and p.name == "a" and p.kind == "virtual_key" and p.models == ("up/gpt-*",)
    assert p.limits is not None and p.limits.principal == p.id and p.limits.max_concurrency == 2
    assert [(lim.kind, lim.amount, lim.window.text) for lim in p.limits.limits] == [
        ("budget", round(2.5 * NANO), "1d"),
        ("requests", 3, "1h"),
        ("tokens", 100, "1h"),
    ]
    assert runtime_principal(record("b", active=False), secret_digest=b"d") == Inactive(
        "virtual key 'b' is not active", "key:b:0a1b2c"
    )


def test_governance_runtime_keys_found_cached_and_forgotten() -> None:
    async def main() -> None:
        store = MemoryStore()
        keys = RuntimeKeys(store, ttl_s=HOUR)
        d = await stored(store, record("a"), "sk-bf-a")
        found = await keys.find(d)
        assert isinstance(found, Principal) and found.name == "a"
        await store.key_delete("a")
        assert await keys.find(d) is found  # cached: revoked elsewhere, honoured until the cache time
        keys.forget("a")  # revoked here
        assert await keys.find(d) is None

    asyncio.run(main())


def test_governance_runtime_keys_without_a_cache_read_the_store_each_time() -> None:
    async def main() -> None:
        store = MemoryStore()
        keys = RuntimeKeys(store, ttl_s=0.0)
        d = digest("sk-bf-late")
        assert await keys.find(d) is None
        await store.key_create("late", d.hex(), encode_record(record("late")))
        assert isinstance(await keys.find(d), Principal)
        await store.key_delete("late")
        assert await keys.find(d) is None

    asyncio.run(main())


def test_governance_runtime_keys_cache_unknown_and_inactive() -> None:
    async def main() -> None:
        store = MemoryStore()
        keys = RuntimeKeys(store, ttl_s=HOUR)
        d = digest("sk-bf-not-yet")
        assert await keys.find(d) is None
        await store.key_create("x", d.hex(), encode_record(record("x")))
        assert await keys.find(d) is None  # "unknown" is cached too
        off = await stored(store, record("off", active=False), "sk-bf-off")
        found = await keys.find(off)
        assert isinstance(found, Inactive) and found.why == "virtual key 'off' is not active"

    asyncio.run(main())


def test_governance_runtime_keys_unknown_cache_is_bounded() -> None:
    async def main() -> None:
        store = MemoryStore()
        keys = RuntimeKeys(store, ttl_s=HOUR)
        first = digest("guess-0")
        for i in range(MAX_UNKNOWN + 10):
            assert await keys.find(digest(f"guess-{i}")) is None
        assert len(keys._unknown) == MAX_UNKNOWN
        assert first not in keys._unknown  # the oldest went first
        d = await stored(store, record("real"), "guess-0")
        assert isinstance(await keys.find(d), Principal)  # evicted: read from the store again

    asyncio.run(main())


def test_governance_runtime_keys_unreadable_record_is_refused() -> None:
    async def main() -> None:
        store = MemoryStore()
        keys = RuntimeKeys(store, ttl_s=HOUR)
        d = digest("sk-bf-corrupt")
        await store.key_create("corrupt", d.hex(), b'{"name": 1}')
        assert await keys.find(d) is None

    asyncio.run(main())


def test_governance_identifies_from_credentials_not_a_request() -> None:
    """Governor.identify reads what the server took from the headers (Credentials): a
    known token is its principal, none is anonymous when auth is optional, and an
    unknown secret is anonymous unless it claims to be this gateway's (x-bf-vk or the
    sk-bf- prefix), whose 401 tells a client with its own provider key where the key goes."""
    gov = Governor(
        AuthConfig(tokens=(TokenConfig(name="ci", value="tok-ci"),)),
        MemoryStore(),
        fail_open=False,
        metrics=Metrics(),
    )

    async def who(**headers: str) -> Principal:
        return await gov.identify(credentials(CIMultiDict(headers)))

    async def main() -> None:
        assert (await who(Authorization="Bearer tok-ci")).id == "token:ci"
        assert (await who(**{"X-Api-Key": "tok-ci"})).id == "token:ci"
        assert await who() is ANONYMOUS
        assert await who(Authorization="Bearer sk-placeholder") is ANONYMOUS
        for headers, hint in (
            ({"x-bf-vk": "sk-unknown"}, False),
            ({"Authorization": "Bearer sk-bf-unknown"}, False),
            ({"x-bf-vk": "sk-unknown", "x-bf-direct-key": "true"}, True),
        ):
            try:
                await who(**headers)
            except Unauthorized as e:
                assert ("send it in x-bf-vk" in e.message) is hint, (headers, e.message)
            else:
                raise AssertionError(f"{headers} was served")

    asyncio.run(main())
