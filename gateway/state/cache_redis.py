"""The response cache in Redis (any Redis 7, no module), shared by every gateway process
and replica that uses it. Imported only when used (redis-py is slow to import).

Key layout (``prefix`` is the state store's, "gw:" by default):

  {prefix}cache:e:<entry id>    string: the entry; TTL: the entry's (SET PX)
  {prefix}cache:n:<namespace>   set of the namespace's entry ids; TTL: its longest entry's

Ids and namespaces are hex digests the cache makes. A set member whose entry expired or
was deleted is harmless: deleting it again deletes nothing.

Every operation has a deadline of 2 x ``timeout_s``; past it, or on any Redis error, it
raises ``StoreUnavailable`` (the cache's miss), never the request's failure."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.state.redis import RETRY
from gateway.state.store import StoreUnavailable

T = TypeVar("T")

# Ids deleted per DEL when a namespace is invalidated: bounds one command's size.
DELETE_BATCH = 500


class RedisCache:
    __slots__ = ("_deadline_s", "_entries", "_namespaces", "_r", "_secrets")

    inline = False

    def __init__(self, url: str, *, prefix: str = "gw:", timeout_s: float = 0.25) -> None:
        parts = urlsplit(url)
        self._secrets = tuple(s for p in (parts.password or "",) for s in (p, unquote(p)) if s)
        self._r = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=RETRY, decode_responses=False
        )
        self._deadline_s = 2 * timeout_s
        self._entries = f"{prefix}cache:e:"
        self._namespaces = f"{prefix}cache:n:"

    async def _run(self, op: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._deadline_s):
                return await call
        except (TimeoutError, RedisError, OSError) as e:
            text = f"redis cache {op} failed: {type(e).__name__}: {e or 'no answer in time'}"
            for s in self._secrets:
                text = text.replace(s, "***")
            raise StoreUnavailable(text) from None

    async def get(self, entry_id: str) -> bytes | None:
        value = await self._run("get", self._r.get(self._entries + entry_id))
        return value if isinstance(value, bytes) else None

    async def put(self, entry_id: str, namespace: str, value: bytes, *, ttl_s: float) -> None:
        ms = max(1, math.ceil(ttl_s * 1000))
        ns = self._namespaces + namespace
        pipe = self._r.pipeline(transaction=False)
        pipe.set(self._entries + entry_id, value, px=ms)
        pipe.sadd(ns, entry_id)
        # The set lives as long as its longest-lived entry: set when it has no TTL, else
        # only lengthened.
        pipe.pexpire(ns, ms, nx=True)
        pipe.pexpire(ns, ms, gt=True)
        await self._run("put", pipe.execute())

    async def delete(self, entry_id: str) -> bool:
        n: int = await self._run("delete", self._r.delete(self._entries + entry_id))
        return n > 0

    async def delete_namespace(self, namespace: str) -> int:
        ns = self._namespaces + namespace
        ids = await self._run("delete_namespace", self._r.smembers(ns))
        keys = [self._entries + (i.decode() if isinstance(i, bytes) else i) for i in ids]
        deleted = 0
        for at in range(0, len(keys), DELETE_BATCH):
            deleted += await self._run("delete_namespace", self._r.delete(*keys[at : at + DELETE_BATCH]))
        await self._run("delete_namespace", self._r.delete(ns))
        return deleted

    def stats(self) -> tuple[int, int, int] | None:
        return None

    async def close(self) -> None:
        await self._r.aclose()
