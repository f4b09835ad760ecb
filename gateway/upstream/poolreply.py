"""One pooled response (``gateway.upstream.pool``): its status and relayed headers once the head has
come, then the body as it arrives, with the connection's reading paused while the
consumer lags, and the request's one deadline timer.

A body is read by a coroutine (``read``, ``chunks``), or, once ``divert``ed, handed to
a function inside the connection's ``data_received``: a relayed stream's reads go to
the client with no coroutine woken per read (``gateway.relay.pipe``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from gateway.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout

if TYPE_CHECKING:
    from gateway.upstream.pool import _Connection

# Body bytes buffered for a slow consumer before the socket stops being read.
HIGH_WATER_BYTES = 256 * 1024


class _Waiter:
    """Resolves a future once: the consumer of one response waits on it."""

    __slots__ = ("fut",)

    def __init__(self) -> None:
        self.fut: asyncio.Future[None] | None = None

    def wake(self) -> None:
        fut = self.fut
        if fut is not None and not fut.done():
            fut.set_result(None)


class PoolReply:
    """One response: status after the headers, then the body as it arrives."""

    __slots__ = (
        "_conn",
        "_deadline",
        "_done",
        "_error",
        "_head",
        "_idle_s",
        "_held",
        "_max_bytes",
        "_pending",
        "_queue",
        "_queued",
        "_sink",
        "_stopped",
        "_timer",
        "_waiter",
        "_writable",
        "content_type",
        "headers",
        "status",
    )

    def __init__(self, conn: _Connection, head: asyncio.Future[None], max_bytes: int) -> None:
        self._conn = conn
        self._head = head  # resolved when the headers are in
        self._max_bytes = max_bytes  # read() refuses a body longer than this
        self._idle_s: float | None = None
        self._timer: asyncio.TimerHandle | None = None  # the idle watch (streams)
        self._deadline: asyncio.TimerHandle | None = None  # the whole response's
        self.status = 0
        # Only the headers relayed to the client (RELAYED_HEADERS); the rest are not kept.
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None  # a stream is relayed only as text/event-stream
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter = _Waiter()
        # Diverted: each read goes to the sink; ``_writable`` False holds the reading.
        self._sink: Callable[[bytes], None] | None = None
        self._writable: Callable[[], bool] | None = None
        self._held = False
        self._stopped: BaseException | None = None  # what the sink raised
        self._pending: list[bytes] = []  # a read's body parts, for the sink

    def watch_idle(self, idle_s: float | None) -> None:
        """Fail the body if nothing arrives for ``idle_s``: one timer per response,
        re-armed only when it fires (no timer per chunk)."""
        self._idle_s = idle_s
        if idle_s is not None and self._timer is None and not self._done:
            loop = self._conn._pool.loop
            self._timer = loop.call_at(max(self._conn.last_read, loop.time()) + idle_s, self._check_idle)

    def _check_idle(self) -> None:
        self._timer = None
        if self._done or self._error is not None or self._idle_s is None:
            return
        loop = self._conn._pool.loop
        if self._held:  # the client is slow, not the upstream: not idle
            self._timer = loop.call_at(loop.time() + self._idle_s, self._check_idle)
            return
        if loop.time() - self._conn.last_read >= self._idle_s:
            self._fail(UpstreamTimeout(f"{self._conn._origin.name} went idle mid-response"))
            self._conn.retire()
        else:
            self._timer = loop.call_at(self._conn.last_read + self._idle_s, self._check_idle)

    def _expire_head(self) -> None:
        """The first-byte bound, when it is not the whole deadline: only the wait for the
        headers ends (a head that came meanwhile is the answer's, not a timeout)."""
        if not self._head.done():
            self._head.set_exception(TimeoutError())

    def _expire(self) -> None:
        """The request's one timer: before the headers, the wait for them ends (the
        request raises); after, the body is failed and the connection retired."""
        self._deadline = None
        if not self._head.done():
            self._head.set_exception(TimeoutError())
        elif not self._done and self._error is None:
            self._fail(UpstreamTimeout(f"{self._conn._origin.name} did not complete its response in time"))
            self._conn.retire()

    async def _wait(self) -> None:
        fut = self._waiter.fut = asyncio.get_running_loop().create_future()
        try:
            await fut
        finally:
            self._waiter.fut = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        queue, conn = self._queue, self._conn
        while True:
            if queue:
                # Everything buffered at once: llhttp reports each HTTP chunk apart, and
                # one relay step (frame, watch, write) per read is what keeps streams cheap.
                data = queue.popleft() if len(queue) == 1 else b"".join(queue)
                queue.clear()
                self._queued = 0
                conn.resume()
                yield data
            elif self._done:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait()

    def divert(self, sink: Callable[[bytes], None], writable: Callable[[], bool]) -> None:
        """From now on each read of the body goes to ``sink``, called in the
        connection's ``data_received`` (what is buffered, now); after each, reading is
        held while ``writable()`` is false, until ``release``. ``settled`` waits for the
        end, or a hold. What ``sink`` raises stops the body: ``settled`` raises it."""
        self._sink, self._writable = sink, writable
        queue = self._queue
        if queue:
            data = queue.popleft() if len(queue) == 1 else b"".join(queue)
            queue.clear()
            self._queued = 0
            self._conn.resume()
            self._to_sink(sink, data)

    def _to_sink(self, sink: Callable[[bytes], None], data: bytes) -> None:
        try:
            sink(data)
        except Exception as e:
            self._sink = None
            self._pending.clear()
            self._stopped = e
            self._conn.pause()  # nothing more is read for it: the reply is closed next
            self._waiter.wake()
            return
        if not self._writable():  # type: ignore[misc]
            self._held = True
            self._conn.pause()
            self._waiter.wake()

    async def settled(self) -> bool:
        """True once a diverted body has ended; False when its reading is held for the
        sink's consumer (``release`` it once that has drained). Raises what stopped it."""
        while True:
            if self._stopped is not None:
                raise self._stopped
            if self._held:
                return False
            if self._done:
                return True
            if self._error is not None:
                raise self._error
            await self._wait()

    def release(self) -> None:
        """Reading goes on after a hold."""
        self._held = False
        if not self._done:  # once done, the connection may serve another request
            conn = self._conn
            conn.last_read = conn._pool.loop.time()  # idle from now, not from the hold
            conn.resume()

    async def read(self) -> bytes:
        # Not through chunks(): an async generator costs more than a small body's whole read.
        parts: list[bytes] = []
        queue = self._queue
        size = 0
        while True:
            if queue:
                size += self._queued
                if size > self._max_bytes:
                    self.close()
                    raise UpstreamProtocolError(
                        f"{self._conn._origin.name} sent an answer over {self._max_bytes} bytes (max_response_bytes)"
                    )
                parts += queue
                queue.clear()
                self._queued = 0
                self._conn.resume()
            if self._done:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if self._error is not None:
                raise self._error
            await self._wait()

    def close(self) -> None:
        """A response not read to its end leaves its connection unusable: retired."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if not self._done:
            self._conn.retire()

    # Called by the connection.
    def _feed(self, data: bytes) -> None:
        if self._sink is not None:
            # llhttp reports each HTTP chunk apart: what one socket read holds goes to the
            # sink at once (``_flush``, after the read is parsed), one step, one write.
            self._pending.append(data)
            return
        if self._stopped is not None:
            return  # the relay stopped reading it: the rest is dropped
        self._queue.append(data)
        self._queued += len(data)
        if self._queued >= HIGH_WATER_BYTES:
            self._conn.pause()
        self._waiter.wake()

    def _flush(self) -> None:
        """What the last read held, to the sink (the connection calls it after each read)."""
        pending, sink = self._pending, self._sink
        if pending and sink is not None:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._to_sink(sink, data)

    def _finish(self) -> None:
        self._flush()
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiter.wake()

    def _fail(self, err: UpstreamError) -> None:
        if not self._done:
            self._error = err
            self._waiter.wake()
