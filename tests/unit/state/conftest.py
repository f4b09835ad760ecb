"""``stores``: each test of the store contract runs three times: against MemoryStore,
against RedisStore on a real redis-server (a fresh key prefix per test), and against
LocalStore talking to a real LocalStoreServer (the supervisor's side, on its own event
loop in a thread; a fresh one per test)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from gateway.state import MemoryStore, RedisStore, Store
from gateway.state.local import LocalStore, LocalStoreServer

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


class LocalServer:
    """A LocalStoreServer on its own event loop, in a thread: as the supervisor holds it,
    apart from the workers' loops. ``path`` is its Unix socket."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="gw-store-")  # short: Unix socket paths are
        self.path = os.path.join(self.dir, "store.sock")  # limited to ~100 bytes
        self.server = LocalStoreServer(self.path)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="local-store", daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis", "local"])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "memory":
        return Stores("memory", MemoryStore)
    if request.param == "local":
        path = request.getfixturevalue("local_server").path
        return Stores("local", lambda: LocalStore(path, timeout_s=5.0))
    url: str = request.getfixturevalue("redis_server")
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    return Stores("redis", lambda: RedisStore(url, prefix=prefix))
