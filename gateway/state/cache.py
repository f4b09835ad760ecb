"""Where the response cache keeps its answers: in this process (``MemoryCache``, bounded
by bytes, least recently used forgotten first) or in Redis (``state.cache_redis``,
shared by every process and replica). Both keep opaque values under opaque ids the
cache makes (hex digests): nothing a client sends reaches a store key unhashed.

A store that cannot answer raises ``StoreUnavailable``; the cache takes it as a miss."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

# What one kept entry costs beyond its value's bytes: the dict slots, the tuple, the id
# and the namespace's set entry (measured with sys.getsizeof, rounded up).
ENTRY_OVERHEAD_BYTES = 400


class CacheStore(Protocol):
    # True when a write completes without waiting on anything (the in-process store):
    # the cache writes in the request; otherwise it writes in the background.
    inline: bool

    async def get(self, entry_id: str) -> bytes | None:
        """The value; None when unknown, expired, deleted or forgotten."""
        ...

    async def put(self, entry_id: str, namespace: str, value: bytes, *, ttl_s: float) -> None:
        """Keeps ``value`` for ``ttl_s`` under ``entry_id``, in ``namespace`` (for
        ``delete_namespace``)."""
        ...

    async def delete(self, entry_id: str) -> bool:
        """False when there was nothing to delete."""
        ...

    async def delete_namespace(self, namespace: str) -> int:
        """Deletes every entry of ``namespace``; how many there were (at most)."""
        ...

    def stats(self) -> tuple[int, int, int] | None:
        """(entries, bytes, evictions) of what this process holds; None: not known here."""
        ...

    async def close(self) -> None: ...


class _Kept:
    __slots__ = ("expires", "namespace", "size", "value")

    def __init__(self, value: bytes, namespace: str, expires: float) -> None:
        self.value = value
        self.namespace = namespace
        self.expires = expires
        self.size = len(value) + len(namespace) + ENTRY_OVERHEAD_BYTES


class MemoryCache:
    """One process's cache: an LRU bounded by ``max_bytes``, each entry with its TTL
    (checked when read; the oldest are swept as room is made)."""

    __slots__ = ("_entries", "_namespaces", "bytes", "evictions", "max_bytes")

    inline = True

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Kept] = OrderedDict()
        self._namespaces: dict[str, set[str]] = {}
        self.bytes = 0
        self.evictions = 0  # forgotten for room (expired ones are not counted)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, entry_id: str) -> bytes | None:
        kept = self._entries.get(entry_id)
        if kept is None:
            return None
        if kept.expires <= time.monotonic():
            self._forget(entry_id)
            return None
        self._entries.move_to_end(entry_id)
        return kept.value

    async def put(self, entry_id: str, namespace: str, value: bytes, *, ttl_s: float) -> None:
        kept = _Kept(value, namespace, time.monotonic() + ttl_s)
        if kept.size > self.max_bytes:
            return
        if entry_id in self._entries:
            self._forget(entry_id)
        self._make_room(kept.size)
        self._entries[entry_id] = kept
        self.bytes += kept.size
        self._namespaces.setdefault(namespace, set()).add(entry_id)

    async def delete(self, entry_id: str) -> bool:
        if entry_id not in self._entries:
            return False
        self._forget(entry_id)
        return True

    async def delete_namespace(self, namespace: str) -> int:
        ids = self._namespaces.get(namespace)
        if not ids:
            return 0
        n = len(ids)
        for entry_id in list(ids):
            self._forget(entry_id)
        return n

    def stats(self) -> tuple[int, int, int] | None:
        return len(self._entries), self.bytes, self.evictions

    def _forget(self, entry_id: str) -> None:
        kept = self._entries.pop(entry_id)
        self.bytes -= kept.size
        ids = self._namespaces.get(kept.namespace)
        if ids is not None:
            ids.discard(entry_id)
            if not ids:
                del self._namespaces[kept.namespace]

    def _make_room(self, need: int) -> None:
        now = time.monotonic()
        entries = self._entries
        while entries and self.bytes + need > self.max_bytes:
            oldest, kept = next(iter(entries.items()))
            if kept.expires > now:
                self.evictions += 1
            self._forget(oldest)

    async def close(self) -> None:
        self._entries.clear()
        self._namespaces.clear()
        self.bytes = 0
