"""The semantic cache's vector index shared by every process and replica through Redis
(plain Redis 7: no module, no server-side vector search).

Each process keeps the whole index in memory (``vectors.EmbeddedVectorIndex``) and
Redis keeps the truth:

  {prefix}{vec}:e:<entry id>      hash n (namespace), g (group), v (normalised float32
                                  bytes, little-endian); TTL ttl_s
  {prefix}{vec}:ns:<namespace>    set of entry ids; TTL: its longest-lived entry's
  {prefix}{vec}:log               stream of changes: o (origin process), op (a add,
                                  r remove, n namespace) and the entry's fields; MAXLEN ~

A process applies its own changes at once, writes them to Redis (one MULTI/EXEC, the
stream entry included) and follows the stream with XREAD BLOCK for everyone else's. On
start, after a reconnection, or when the stream was trimmed past what it had read, it
loads every live entry from the hashes (SCAN) into a fresh index and follows the stream
from the point read before the load, so nothing falls between the two.

While the follower is not in step (Redis down, hung, a reload in progress), ``nearest``
answers None at once: a removal made elsewhere might have been missed, and an
invalidated answer must not be served. Writes that fail are dropped locally-only;
nothing raises into the caller; each failure adds one to ``metrics.vector_errors``.

The hash tag ``{vec}`` puts every key of the index in one Redis Cluster slot, so the
namespace removal script may touch them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gateway.state.vectors import ANN_MIN_ENTRIES, DEFAULT_MAX_ENTRIES, EmbeddedVectorIndex, Vector, unit

if TYPE_CHECKING:
    from gateway.metrics import Metrics

T = TypeVar("T")
log = logging.getLogger("gateway.state.vectors")

# The stream keeps about this many changes; a follower further behind reloads the hashes.
STREAM_MAXLEN = 10_000
# How long one XREAD waits for news. A follower that heard nothing from Redis for this
# plus two timeouts is out of step: its process's lookups miss until it is back.
BLOCK_S = 1.0
BATCH = 500  # stream entries a read takes; hashes a load step reads
BACKOFF_S = (0.05, 2.0)  # reconnection delays: first, longest (doubling in between)

# KEYS: the namespace's set, the stream. ARGV: entry key prefix, MAXLEN, origin, namespace.
REMOVE_NAMESPACE = """
local ids = redis.call('SMEMBERS', KEYS[1])
for i = 1, #ids do redis.call('UNLINK', ARGV[1] .. ids[i]) end
redis.call('UNLINK', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'o', ARGV[3], 'op', 'n', 'n', ARGV[4])
return #ids
"""


class _Behind(Exception):
    """The stream was trimmed past the last change this process read."""


class SharedVectorIndex:
    __slots__ = (
        "_deadline_s",
        "_fresh_s",
        "_fresh_until",
        "_last_id",
        "_local",
        "_make_local",
        "_metrics",
        "_origin",
        "_r",
        "_remove_ns",
        "_rf",
        "_stream",
        "_task",
        "_closing",
        "_entry",
        "_ns",
        "errors",
    )

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gw:",
        timeout_s: float = 0.25,
        metrics: Metrics | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ann_min_entries: int = ANN_MIN_ENTRIES,
        block_s: float = BLOCK_S,
    ) -> None:
        self._r = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        # The follower's connection waits in XREAD BLOCK: its socket timeout covers the block.
        self._rf = Redis.from_url(url, socket_timeout=block_s + timeout_s, socket_connect_timeout=timeout_s)
        self._deadline_s = 2 * timeout_s
        self._fresh_s = block_s + 2 * timeout_s
        self._fresh_until = 0.0  # monotonic: lookups answer until then
        self._metrics = metrics
        self._origin = os.urandom(6).hex().encode()
        self._entry = f"{prefix}{{vec}}:e:"
        self._ns = f"{prefix}{{vec}}:ns:"
        self._stream = f"{prefix}{{vec}}:log"
        self._remove_ns = self._r.register_script(REMOVE_NAMESPACE)

        def make_local() -> EmbeddedVectorIndex:
            return EmbeddedVectorIndex(max_entries=max_entries, ann_min_entries=ann_min_entries)

        self._make_local = make_local
        self._local = make_local()
        self._last_id = b"0-0"
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.errors = 0

    # -- the interface ---------------------------------------------------------------

    async def add(
        self, entry_id: str, namespace: str, group: str, vector: Sequence[float] | Vector, ttl_s: float
    ) -> None:
        self._start()
        v = unit(vector)
        self._local.put(entry_id, namespace, group, v, ttl_s)
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        key, ns_key = self._entry + entry_id, self._ns + namespace
        blob = v.astype("<f4").tobytes()
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, mapping={"n": namespace, "g": group, "v": blob})
        pipe.pexpire(key, ttl_ms)
        pipe.sadd(ns_key, entry_id)
        pipe.pexpire(ns_key, ttl_ms, nx=True)  # a new set has no TTL for GT to compare with
        pipe.pexpire(ns_key, ttl_ms, gt=True)
        fields = {"o": self._origin, "op": "a", "id": entry_id, "n": namespace, "g": group, "v": blob, "t": ttl_ms}
        pipe.xadd(self._stream, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
        await self._try(pipe.execute())

    async def nearest(self, group: str, vector: Sequence[float] | Vector, threshold: float) -> tuple[str, float] | None:
        self._start()
        if time.monotonic() >= self._fresh_until:
            return None
        return await self._local.nearest(group, vector, threshold)

    async def remove(self, entry_id: str) -> None:
        self._start()
        namespace = self._local.namespace_of(entry_id)
        self._local.discard(entry_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.unlink(self._entry + entry_id)
        if namespace is not None:
            pipe.srem(self._ns + namespace, entry_id)
        fields = {"o": self._origin, "op": "r", "id": entry_id}
        pipe.xadd(self._stream, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
        await self._try(pipe.execute())

    async def remove_namespace(self, namespace: str) -> None:
        self._start()
        self._local.discard_namespace(namespace)
        keys = [self._ns + namespace, self._stream]
        await self._try(self._remove_ns(keys=keys, args=[self._entry, STREAM_MAXLEN, self._origin, namespace]))

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._local.close()
        await self._r.aclose()
        await self._rf.aclose()

    def start(self) -> None:
        """Begins following Redis now rather than on the first call (lookups are answered
        once the index is loaded: ``in_step``). Needs the running loop."""
        self._start()

    # -- what tests and operators look at ----------------------------------------------

    @property
    def in_step(self) -> bool:
        """Whether lookups are answered (the follower heard from Redis lately)."""
        return time.monotonic() < self._fresh_until

    @property
    def local(self) -> EmbeddedVectorIndex:
        return self._local

    # -- Redis -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def _failed(self) -> None:
        self.errors += 1
        if self._metrics is not None:
            self._metrics.vector_errors += 1

    async def _try(self, call: Awaitable[object]) -> None:
        try:
            async with asyncio.timeout(self._deadline_s):
                await call
        except (TimeoutError, RedisError, OSError):
            self._failed()

    async def _follow(self) -> None:
        """Loads, then follows the stream; on any failure waits (doubling), reloads."""
        delay = BACKOFF_S[0]
        down = False
        while not self._closing:
            try:
                await self._load()
                if down:
                    log.info("vector index: in step with Redis again")
                down, delay = False, BACKOFF_S[0]
                while not self._closing:
                    await self._read()
            except (TimeoutError, RedisError, OSError, _Behind) as e:
                self._fresh_until = 0.0
                if self._closing:
                    # redis-py may turn the cancellation of a read into an error of its own.
                    return
                self._failed()
                if not down:
                    log.warning("vector index: lost step with Redis (%s); semantic lookups miss meanwhile", _why(e))
                down = True
                await asyncio.sleep(delay)
                delay = min(2 * delay, BACKOFF_S[1])

    async def _load(self) -> None:
        """Every live entry into a fresh local index; then the stream from before the load."""
        async with asyncio.timeout(self._fresh_s):
            last: Any = await self._rf.xrevrange(self._stream, count=1)
        start = last[0][0] if last else b"0-0"
        local = self._make_local()
        cursor = 0
        while True:
            async with asyncio.timeout(self._fresh_s):
                found: Any = await self._rf.scan(cursor, match=self._entry + "*", count=BATCH)
                cursor, keys = found
                pipe = self._rf.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(key, ["n", "g", "v"])
                    pipe.pttl(key)
                values: list[Any] = await pipe.execute() if keys else []
            skip = len(self._entry)
            for i, key in enumerate(keys):
                (namespace, group, blob), ttl_ms = values[2 * i], values[2 * i + 1]
                if namespace is not None and group is not None and blob is not None and ttl_ms > 0:
                    self._put(local, key[skip:].decode(), namespace, group, blob, ttl_ms / 1000)
            if cursor == 0:
                break
        old, self._local, self._last_id = self._local, local, start
        self._fresh_until = time.monotonic() + self._fresh_s
        await old.close()

    async def _read(self) -> None:
        async with asyncio.timeout(self._fresh_s):
            streams: Any = await self._rf.xread(
                {self._stream: self._last_id}, count=BATCH, block=_ms(self._fresh_s / 2)
            )
        self._fresh_until = time.monotonic() + self._fresh_s
        events = streams[0][1] if streams else []
        for event_id, fields in events:
            self._apply(event_id, fields)
            self._last_id = event_id
        if len(events) == BATCH:
            await self._check_trim()

    async def _check_trim(self) -> None:
        """Raises _Behind when the stream's oldest kept change is newer than the last one
        read and changes were trimmed: some may have been missed (trimming does not move
        Redis's max-deleted-entry-id, so the first kept entry is the witness). A follower
        whose last change was itself just trimmed reloads without need: rare and safe."""
        try:
            async with asyncio.timeout(self._fresh_s):
                info: Any = await self._rf.xinfo_stream(self._stream)
        except ResponseError:
            raise _Behind() from None
        first = info.get("first-entry")
        trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
        if trimmed and first and _id(first[0]) > _id(self._last_id):
            raise _Behind()

    def _apply(self, event_id: bytes, f: dict[bytes, bytes]) -> None:
        op = f.get(b"op")
        try:
            if f.get(b"o") == self._origin and (op != b"a" or self._local.namespace_of(f[b"id"].decode())):
                return  # this process's own change, applied when it was made (unless a reload lost it)
            if op == b"a":
                # The change's age by its stream id (Redis's clock) against ours: skew
                # between the hosts shortens or lengthens the local TTL by as much.
                age_s = max(0.0, time.time() - _id(event_id)[0] / 1000)
                ttl_s = int(f[b"t"]) / 1000 - age_s
                self._put(self._local, f[b"id"].decode(), f[b"n"], f[b"g"], f[b"v"], ttl_s)
            elif op == b"r":
                self._local.discard(f[b"id"].decode())
            elif op == b"n":
                self._local.discard_namespace(f[b"n"].decode())
        except (KeyError, ValueError, UnicodeDecodeError):
            self._failed()  # a change this code did not write: skipped

    @staticmethod
    def _put(
        local: EmbeddedVectorIndex, entry_id: str, namespace: bytes, group: bytes, blob: bytes, ttl_s: float
    ) -> None:
        try:
            v = unit(np.frombuffer(blob, dtype="<f4"))
            local.put(entry_id, namespace.decode(), group.decode(), v, ttl_s)
        except ValueError:
            pass  # another dimension than the group's: a changed embedding model; dropped


def _id(stream_id: bytes) -> tuple[int, int]:
    ms, _, seq = stream_id.partition(b"-")
    return int(ms), int(seq or 0)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
