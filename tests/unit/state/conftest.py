"""``stores``: each test of the store contract runs twice, against MemoryStore and
against RedisStore on a real redis-server (a fresh key prefix per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from gateway.state import MemoryStore, RedisStore, Store

T = TypeVar("T")


class Stores:
    """Runs a scenario against a fresh store, in an event loop of its own."""

    def __init__(self, kind: str, make: Callable[[], Store]) -> None:
        self.kind = kind
        self.make = make

    def run(self, scenario: Callable[[Store], Awaitable[T]]) -> T:
        async def main() -> T:
            store = self.make()
            try:
                return await scenario(store)
            finally:
                await store.close()

        return asyncio.run(main())


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "memory":
        return Stores("memory", MemoryStore)
    url: str = request.getfixturevalue("redis_server")
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    return Stores("redis", lambda: RedisStore(url, prefix=prefix))
