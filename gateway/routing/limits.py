"""Per-provider concurrency: at most N upstream requests in flight, a bounded queue
behind them, and a clear 429 beyond it instead of unbounded memory.

A slot is taken before the upstream request is sent and given back when its answer has
been read (unary) or its stream has ended, so streams count for as long as they run.
Waiters are served first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.config import LimitConfig
from gateway.errors import GatewayError


class ProviderBusy(GatewayError):
    """The provider's concurrency limit and queue are full: the gateway's own 429.
    The fallback loop moves on to the next target, as for an upstream 429."""

    status = 429
    type = "rate_limit_error"
    code = "provider_busy"


class Limiter:
    __slots__ = ("_max", "_name", "_queue", "_queue_size", "_timeout_s", "_drop", "in_flight")

    def __init__(self, name: str, cfg: LimitConfig) -> None:
        assert cfg.max_concurrency is not None
        self._name = name
        self._max = cfg.max_concurrency
        self._queue_size = 0 if cfg.drop_excess_requests else cfg.queue_size
        self._timeout_s = cfg.queue_timeout_s
        self._drop = cfg.drop_excess_requests
        self._queue: deque[asyncio.Future[None]] = deque()
        self.in_flight = 0

    async def acquire(self) -> None:
        if self.in_flight < self._max and not self._queue:
            self.in_flight += 1
            return
        if len(self._queue) >= self._queue_size:
            why = "" if self._drop else f" and {self._queue_size} waiting"
            raise ProviderBusy(
                f"provider '{self._name}' is at its concurrency limit ({self._max} in flight{why}); retry later"
            )
        fut = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        try:
            async with asyncio.timeout(self._timeout_s):
                await fut  # release() hands its slot over: in_flight already counts us
        except BaseException as e:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us just as we gave up
            elif fut in self._queue:
                self._queue.remove(fut)
            if isinstance(e, TimeoutError):
                raise ProviderBusy(
                    f"provider '{self._name}' had no free slot within {self._timeout_s:g} s "
                    f"({self._max} in flight); retry later"
                ) from None
            raise

    def release(self) -> None:
        while self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to the waiter: in_flight unchanged
                return
        self.in_flight -= 1
