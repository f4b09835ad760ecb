"""One upstream origin of the pool (``gateway.upstream.pool``), scheme://host:port: its
stack of idle connections, and its cap on live connections with the requests waiting
for one.

The cap counts every live connection of the origin: in use, idle, and being opened. A
request that finds no idle connection opens a new one while the origin is under its cap;
at the cap it waits, first come first served, for a connection to be released (handed
over to it, still open) or closed (its slot passes to the waiter, which opens a new
one), for ``pool_timeout_s`` at most and never past the request's own deadline; then
``PoolExhausted``. The bookkeeping is an increment when a connection is opened and a
decrement when it closes: reusing an idle connection costs nothing more than without
the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway.config.proxy import Proxy
from gateway.errors import PoolExhausted

if TYPE_CHECKING:
    from gateway.upstream.pool import _Connection

# Idle connections kept per origin; beyond it a finished connection is closed.
MAX_IDLE_PER_ORIGIN = 256
# An idle connection older than this is closed rather than reused: servers commonly drop
# keep-alive connections after 5-75 s, and reusing one they just dropped costs a retry.
IDLE_S = 30.0
# A sweep of the idle stack closes connections up to this much before their IDLE_S is up,
# so a timer that fires a hair early (the loop's clock is in milliseconds) never re-arms
# itself in a loop.
_SWEEP_SLACK_S = 0.01
# The cap and the wait of an origin no config has limited (the config's defaults): as
# many connections as the aiohttp client keeps per host (upstream.client), so the pool
# refuses nothing that client would serve.
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_POOL_TIMEOUT_S = 5.0


class Origin:
    """scheme://host:port: its idle connections, how to open a new one, its cap."""

    __slots__ = (
        "_keep",
        "_loop",
        "_proxy_lines",
        "_sweeper",
        "_target",
        "host",
        "host_header",
        "idle",
        "max_connections",
        "name",
        "opened",
        "pool_timeout_s",
        "port",
        "proxy",
        "ssl",
        "waiters",
    )

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop,
        proxy: Proxy | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self.name = f"{parts.scheme}://{self.host_header}"
        # Through a proxy: an https origin is reached through a CONNECT tunnel (its
        # requests as to the origin itself); an http one's requests go to the proxy in
        # absolute form, with the proxy's credentials. Both are put into the request
        # heads built once per key (``head``), so a request costs no more than direct.
        self.proxy = proxy
        absolute = proxy is not None and self.ssl is None
        self._target = self.name if absolute else ""
        auth = proxy.authorization if proxy is not None and absolute else None
        self._proxy_lines = f"\r\nProxy-Authorization: {auth}".encode("latin-1") if auth else b""
        # Oldest first (released in time order; take() pops the newest).
        self.idle: list[_Connection] = []
        self._loop = loop
        # One timer for the whole stack, at the oldest connection's expiry.
        self._sweeper: asyncio.TimerHandle | None = None
        self.max_connections = DEFAULT_MAX_CONNECTIONS
        self.pool_timeout_s = DEFAULT_POOL_TIMEOUT_S
        # Live connections and the slots of those being opened; above max_connections
        # only after a reload lowered it, until enough of them have closed.
        self.opened = 0
        # Requests waiting for a connection, oldest first; each future is given a
        # connection released for it, or None: a slot to open one in.
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        # release() keeps a connection idle while fewer than this many are: -1 (its slow
        # path, always) while requests wait or the origin is over its cap. One comparison
        # a release, as a plain bound on the stack would be.
        self._keep = MAX_IDLE_PER_ORIGIN

    def limit(self, *, max_connections: int, pool_timeout_s: float) -> None:
        """A new cap and wait: a raised cap lets waiters open connections at once; over a
        lowered one, idle connections close, then those in use as they are released."""
        self.max_connections = max_connections
        self.pool_timeout_s = pool_timeout_s
        idle = self.idle
        while self.opened > max_connections and idle:
            idle.pop(0).retire()  # the oldest first
        self._grant()

    def release(self, conn: _Connection) -> None:
        idle = self.idle
        if len(idle) >= self._keep:  # the stack is full, requests wait, or over the cap
            if self.opened > self.max_connections:
                conn.retire()
                return
            waiters = self.waiters
            while waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(conn)  # handed over, as it is: its slot goes with it
                    self._refresh()
                    return
            self._refresh()
            if len(idle) >= MAX_IDLE_PER_ORIGIN:
                conn.retire()
                return
        conn.idle_since = self._loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(conn.idle_since + IDLE_S, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for IDLE_S; re-armed for the oldest one left."""
        self._sweeper = None
        idle = self.idle
        cutoff = self._loop.time() - IDLE_S + _SWEEP_SLACK_S
        n = 0
        while n < len(idle) and idle[n].idle_since <= cutoff:
            n += 1
        expired = idle[:n]
        del idle[:n]
        for conn in expired:
            conn.retire()
        if idle:
            self._sweeper = self._loop.call_at(idle[0].idle_since + IDLE_S, self._sweep)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.idle):
            conn.retire()

    def forget(self, conn: _Connection) -> None:
        """``conn`` is closed (called again for it, the once it counted is kept)."""
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self.free()

    def free(self) -> None:
        """One connection fewer, closed or never opened: its slot to the first waiter."""
        self.opened -= 1
        self._grant()

    def _grant(self) -> None:
        waiters = self.waiters
        while waiters and self.opened < self.max_connections:
            fut = waiters.popleft()
            if not fut.done():
                self.opened += 1  # the waiter's, for the connection it opens
                fut.set_result(None)
        self._refresh()

    def _refresh(self) -> None:
        self._keep = -1 if self.waiters or self.opened > self.max_connections else MAX_IDLE_PER_ORIGIN

    async def wait(self, *, deadline: float | None) -> _Connection | None:
        """At the cap: the first connection released (returned, open) or a slot to open
        one in (None, counted already), after the requests that waited before; past
        ``pool_timeout_s`` or ``deadline`` (the loop's clock), ``PoolExhausted``."""
        loop = self._loop
        wait_s = self.pool_timeout_s
        if deadline is not None and deadline - loop.time() < wait_s:
            wait_s = max(deadline - loop.time(), 0.0)
        fut: asyncio.Future[_Connection | None] = loop.create_future()
        self.waiters.append(fut)
        self._keep = -1
        try:
            async with asyncio.timeout(wait_s):
                return await fut
        except BaseException as e:
            if fut.done() and not fut.cancelled():
                # Given a connection or a slot as the wait ended: passed on, not lost.
                conn = fut.result()
                if conn is None:
                    self.free()
                elif conn.alive:
                    self.release(conn)
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
                self._refresh()
            if isinstance(e, TimeoutError):
                raise PoolExhausted(
                    f"connection pool of {self.name} exhausted: all {self.max_connections} connections "
                    f"busy, none free within {wait_s:.3g} s (max_connections, pool_timeout_s)"
                ) from None
            raise

    def head(self, method: str, path: str, headers: Mapping[str, str]) -> bytes:
        """``request_head`` for this origin: the request target and proxy credentials
        as its proxy (if any) needs them."""
        return request_head(method, self._target + path, headers) + self._proxy_lines

    def take(self) -> _Connection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()  # most recently used: warmest, least likely dropped
            if conn.alive:  # expired ones were closed by the sweep
                return conn
            conn.retire()
        return None


def limit_origins(limits: Iterable[tuple[Origin, int, float]]) -> None:
    """Each origin's cap and wait from the providers using it: (origin, max_connections,
    pool_timeout_s) for each. Providers sharing an origin share its connections; the
    origin takes the largest cap and the longest wait any of them asks for, so none is
    held below its own setting."""
    merged: dict[Origin, tuple[int, float]] = {}
    for origin, cap, wait_s in limits:
        had = merged.get(origin)
        merged[origin] = (cap, wait_s) if had is None else (max(had[0], cap), max(had[1], wait_s))
    for origin, (cap, wait_s) in merged.items():
        origin.limit(max_connections=cap, pool_timeout_s=wait_s)


def request_head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    """The request line and headers, built once per provider key."""
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
    return "\r\n".join(lines).encode("latin-1")
