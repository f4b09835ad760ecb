"""A lean keep-alive HTTP/1.1 client on asyncio protocols: the upstream side at the floor.

aiohttp's ``ClientSession`` spends ~250 µs of Python per proxied request on this machine
(../shared/reference/performance.md); a connection that is an ``asyncio.Protocol`` fed
to llhttp (``httptools``, a maintained C parser) does the same work in a fraction. Per
origin, a bounded stack of idle connections (most recently used first, closed after
``IDLE_S`` idle by one timer per stack); one request at a time per connection, written
with one ``transport.write``; response bodies handed over as they arrive, with reading
paused while the consumer lags (flow control). A connection that errors or is not
keep-alive is retired, never reused; a request whose reused connection fails before any
response byte is retried once on a fresh one (the stale keep-alive race). A body with
neither Content-Length nor chunking ends at the connection's close (HTTP/1.1 allows it).
Each origin caps its live connections (``gateway.upstream.origin``): past the cap a
request waits for one, then fails with ``PoolExhausted``.

Deadlines are absolute: one timer per request, armed at the first-byte bound or the
whole-response deadline, whichever comes first, and kept (or re-armed once) for the body.
Heads, header lines and ``read()`` bodies are capped.

Failures are raised as ``gateway.errors.Upstream*`` like ``gateway.upstream.client`` does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

import httptools

from gateway.config.proxy import Proxy
from gateway.errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.upstream.origin import Origin
from gateway.upstream.origin import request_head as request_head  # where it was first
from gateway.upstream.poolreply import PoolReply
from gateway.upstream.proxy import Tunnel
from gateway.upstream.relayed import RELAYED_HEADERS

DNS_TTL_S = 60.0
# One response header line (name and value): aiohttp's max_field_size, so both upstream
# clients refuse the same heads.
MAX_HEADER_LINE_BYTES = 8190
# A whole response head: real ones are 0.5-2 KB (rate-limit headers included); bounds
# what the parser buffers while a head never ends.
MAX_HEAD_BYTES = 64 * 1024
# Header names that frame a body; without either, the body ends at the connection's close.
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# The names on_header looks at, in one startswith: the relayed ones and the framing ones.
_WATCHED = (*RELAYED_HEADERS, *_FRAMING, b"content-type")
# The first bytes of the watched names that are not relayed ones (content-*, transfer-*).
_CT = frozenset(b"ct")
assert not any(p[0] in _CT for p in RELAYED_HEADERS)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; llhttp calls the on_* methods."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self._pool = pool
        self._origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.reply: PoolReply | None = None
        self.headers_ready: asyncio.Future[None] | None = None
        self.alive = True
        # Holds one of its origin's slots (max_connections): from when it is open for
        # requests until it closes (Origin.forget gives the slot back, once).
        self.counted = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.last_read = 0.0
        # Response head bytes read so far, while one is awaited (None: not in a head).
        self.head_bytes: int | None = None
        # Whether a header line of the head being parsed may be over MAX_HEADER_LINE_BYTES:
        # not when the whole head so far is shorter, so the common head checks no line.
        self._long_head = False
        self._paused = False
        self._keep_alive = False
        self._framed = False  # the head being parsed has Content-Length or Transfer-Encoding
        self._eof_ends = False  # the body being read ends at the connection's close

    def itself(self) -> _Connection:
        """The protocol factory of a connection made before its transport."""
        return self

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_read = self._pool.loop.time()
        head = self.head_bytes
        if head is not None:  # a head awaited: counted with this read (None once it is complete)
            head = self.head_bytes = head + len(data)
            self._long_head = head > MAX_HEADER_LINE_BYTES
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            reply = self.reply
            if reply is not None:
                reply._flush()  # the good bytes before the bad ones
            cause = e.__context__  # what a callback of ours raised (a cap)
            if isinstance(cause, UpstreamError):
                self._error(cause)
            else:
                self._error(UpstreamProtocolError(f"{self._origin.name} sent a malformed HTTP response: {e}"))
            return
        reply = self.reply
        if reply is not None and reply._pending:
            reply._flush()
        # A head not yet complete: its bytes are held by the parser.
        if self.head_bytes is not None and self.head_bytes > MAX_HEAD_BYTES:
            cap = MAX_HEAD_BYTES
            self._error(UpstreamProtocolError(f"{self._origin.name} sent a response head over {cap} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        reply, self.reply = self.reply, None
        if reply is not None and not reply._done:
            if self._eof_ends and exc is None and reply._error is None:
                reply._finish()  # a close-delimited body: the close is its end
            elif not self.got_bytes:
                # Nothing of a response came: as a refused connection, not a broken answer.
                self._fail(reply, UpstreamConnectError(f"{self._origin.name} closed the connection before answering"))
            else:
                self._fail(reply, UpstreamProtocolError(f"{self._origin.name} closed the connection mid-response"))
        self._origin.forget(self)

    # llhttp callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._long_head and len(name) + len(value) > MAX_HEADER_LINE_BYTES:
            raise UpstreamProtocolError(
                f"{self._origin.name} sent a response header line over {MAX_HEADER_LINE_BYTES} bytes"
            )
        low = name.lower()
        if low.startswith(_WATCHED):
            # One startswith a line; then the first byte tells the kind apart (no hashing):
            # c and t are content-type and the framing names, the relayed ones start otherwise.
            if low[0] in _CT:
                if low == b"content-type":
                    if self.reply is not None:
                        self.reply.content_type = value.decode("latin-1")
                elif low == b"content-length" or low == b"transfer-encoding":
                    self._framed = True
            elif self.reply is not None:
                self.reply.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        if self.reply is not None:
            self.reply.status = self._parser.get_status_code()
        keep_alive = self._keep_alive = self._parser.should_keep_alive()
        self._eof_ends = not keep_alive and not self._framed
        self._framed = False
        fut = self.headers_ready
        if fut is not None and not fut.done():
            fut.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.reply is not None:
            self.reply._feed(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._keep_alive and self._parser.should_keep_alive()
        reply, self.reply = self.reply, None
        if reply is not None:
            reply._finish()
        if self._keep_alive and self.alive:
            # The whole answer is in: reading goes on, whether or not its consumer drains
            # what was buffered (a stream whose client left): the next request reads here.
            if self._paused:
                self.resume()
            self._origin.release(self)
        else:
            self.retire()

    # used by the reply and the pool
    def _fail(self, reply: PoolReply, err: UpstreamError) -> None:
        reply._fail(err)
        fut = self.headers_ready
        if fut is not None and not fut.done():
            fut.set_exception(err)

    def _error(self, err: UpstreamError) -> None:
        reply = self.reply
        if reply is not None:
            self._fail(reply, err)
        self.retire()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def retire(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()
        self._origin.forget(self)


class Pool:
    """Keep-alive HTTP/1.1 connections to upstream origins, for the whole process."""

    def __init__(self, *, resolver: Any = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._resolver = resolver
        self._ssl = ssl_context
        self._origins: dict[str | tuple[str, str, str | None], Origin] = {}
        self._dns: dict[str, tuple[float, list[str]]] = {}

    def origin(self, url: str, *, ssl_context: ssl.SSLContext | None = None, proxy: Proxy | None = None) -> Origin:
        """The origin of ``url``, reached directly or through ``proxy`` (decided here,
        once, not per request)."""
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        # One origin per proxy and credentials: a reload that changes them gets new connections.
        key = base if proxy is None else (base, proxy.name, proxy.authorization)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin(
                base, ssl_context=ssl_context or self._ssl, loop=self.loop, proxy=proxy
            )
        return origin

    async def _addresses(self, host: str) -> list[str]:
        """The host's addresses through aiodns, cached for the record's TTL (capped)."""
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        hit = self._dns.get(host)
        now = self.loop.time()
        if hit is not None and hit[0] > now:
            return hit[1]
        if self._resolver is None:
            import aiodns

            self._resolver = aiodns.DNSResolver()
        try:
            result = await self._resolver.getaddrinfo(host, port=None, type=0)
        except Exception as e:  # aiodns.error.DNSError and friends
            raise UpstreamConnectError(f"cannot resolve {host}: {e}") from None
        nodes = result.nodes
        addresses = list(dict.fromkeys(n.addr[0].decode() for n in nodes))
        if not addresses:
            raise UpstreamConnectError(f"cannot resolve {host}: no address")
        ttls = [n.ttl for n in nodes if n.ttl > 0]
        self._dns[host] = (now + (min(min(ttls), DNS_TTL_S) if ttls else DNS_TTL_S), addresses)
        return addresses

    async def _open(self, origin: Origin, *, connect_s: float | None) -> _Connection:
        if origin.proxy is not None:
            return await self._open_proxied(origin, origin.proxy, connect_s=connect_s)
        error: Exception | None = None
        try:
            async with asyncio.timeout(connect_s):
                for address in await self._addresses(origin.host):
                    conn = _Connection(self, origin)
                    try:
                        await self.loop.create_connection(
                            lambda c=conn: c,
                            address,
                            origin.port,
                            ssl=origin.ssl,
                            server_hostname=origin.host if origin.ssl else None,
                        )
                        return conn
                    except (OSError, ssl.SSLError) as e:
                        error = e  # the next address, if any (e.g. IPv6 first, server on IPv4)
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {origin.name} timed out") from None
        raise UpstreamConnectError(f"cannot connect to {origin.name}: {error}") from None

    async def _open_proxied(self, origin: Origin, proxy: Proxy, *, connect_s: float | None) -> _Connection:
        """A connection to the proxy; for an https origin, tunnelled (CONNECT) and then
        TLS with the origin, on the same transport. ``connect_s`` bounds all of it."""
        loop = self.loop
        via = f"{origin.name} through proxy {proxy.name}"
        error: Exception | None = None
        try:
            async with asyncio.timeout(connect_s):
                for address in await self._addresses(proxy.host):
                    conn = _Connection(self, origin)
                    try:
                        if origin.ssl is None:
                            await loop.create_connection(conn.itself, address, proxy.port)
                            return conn
                        tunnel = Tunnel(loop, proxy=proxy, origin=origin.name)
                        transport, _ = await loop.create_connection(tunnel.itself, address, proxy.port)
                    except OSError as e:
                        error = e
                        continue
                    try:
                        host = f"[{origin.host}]" if ":" in origin.host else origin.host  # IPv6
                        await tunnel.establish(f"{host}:{origin.port}", authorization=proxy.authorization)
                        tls = await loop.start_tls(transport, conn, origin.ssl, server_hostname=origin.host)
                    except (OSError, ssl.SSLError) as e:
                        transport.abort()
                        raise UpstreamConnectError(f"cannot connect to {via}: {e}") from None
                    except BaseException:
                        transport.abort()
                        raise
                    assert tls is not None
                    conn.connection_made(tls)  # start_tls does not call it
                    return conn
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {via} timed out") from None
        raise UpstreamConnectError(f"cannot connect to proxy {proxy.name} (for {origin.name}): {error}") from None

    async def _connect(
        self, origin: Origin, *, connect_s: float | None, deadline: float | None
    ) -> tuple[_Connection, bool]:
        """For a request that found no idle connection: a new one under the origin's cap,
        else the first one released (reused: True) or a slot to open one in, waited for
        until ``deadline`` at most (``Origin.wait``). The slot is given back whatever
        stops the opening (a failure, the connect timeout, a cancelled request)."""
        while origin.opened >= origin.max_connections or origin.waiters:
            conn = await origin.wait(deadline=deadline)
            if conn is None:
                break  # a slot, counted for us
            if conn.alive:
                return conn, True
            # Closed as it was handed over (its slot went on to the next waiter): again.
        else:
            origin.opened += 1
        try:
            if deadline is not None:
                left = deadline - self.loop.time()
                connect_s = left if connect_s is None or left < connect_s else connect_s
            conn = await self._open(origin, connect_s=connect_s)
        except BaseException:
            origin.free()
            raise
        if not conn.alive:  # closed before this task ran again: forget() found it uncounted
            origin.free()
            raise UpstreamConnectError(f"{origin.name} closed the connection as it was opened")
        conn.counted = True
        return conn, False

    async def request(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        *,
        connect_s: float | None,
        first_byte_s: float | None,
        total_s: float | None = None,
        max_body_bytes: int | None = None,
    ) -> PoolReply:
        """Send ``head`` (request line and headers, without Host and Content-Length)
        and ``body``; return once the response's headers have arrived.

        The headers must come within ``first_byte_s`` and the whole response within
        ``total_s`` of now (None: unbounded); ``read()`` refuses a body over
        ``max_body_bytes``."""
        loop = self.loop
        now = loop.time()
        deadline = now + total_s if total_s is not None else None
        head_by = now + first_byte_s if first_byte_s is not None else None
        if head_by is None or (deadline is not None and deadline <= head_by):
            head_by = deadline  # the one timer is the deadline: kept for the body
        max_bytes = max_body_bytes if max_body_bytes is not None else sys.maxsize
        for attempt in (0, 1):
            conn = origin.take()
            reused = conn is not None
            if conn is None:
                conn, reused = await self._connect(origin, connect_s=connect_s, deadline=head_by)
            # The exchange in this frame (a helper coroutine costs ~1 µs a request).
            fut = conn.headers_ready = loop.create_future()
            reply = PoolReply(conn, fut, max_bytes)
            conn.reply = reply
            conn.got_bytes = False
            conn.head_bytes = 0
            assert conn.transport is not None
            conn.transport.write(
                b"%s\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (head, origin.host_header.encode(), len(body), body)
            )
            # A plain timer, not asyncio.timeout(): that costs ~6 µs a request here (a
            # Timeout object, a reschedule, task cancel/uncancel bookkeeping).
            timer = (
                loop.call_at(head_by, reply._expire if head_by is deadline else reply._expire_head)
                if head_by is not None
                else None
            )
            try:
                await fut
            except BaseException as e:
                if timer is not None:
                    timer.cancel()
                conn.retire()
                if isinstance(e, TimeoutError):
                    raise UpstreamTimeout(f"{origin.name} sent no response in time") from None
                # The stale keep-alive race: the server closed the idle connection as we
                # wrote to it. Nothing came back, so nothing was processed: once more, fresh.
                if isinstance(e, UpstreamConnectError) and attempt == 0 and reused and not conn.got_bytes:
                    continue
                raise
            finally:
                # Only ours: a response that completed in the same read as its headers has
                # already put the connection back, and the next request may have taken it.
                if conn.headers_ready is fut:
                    conn.headers_ready = None
            if reply._done:
                if timer is not None:
                    timer.cancel()
            elif head_by is deadline:
                reply._deadline = timer
            else:
                if timer is not None:
                    timer.cancel()
                if deadline is not None:
                    reply._deadline = loop.call_at(deadline, reply._expire)
            if reply.status == 407 and origin.proxy is not None:
                # An http origin's request refused by its proxy (an https origin's is in CONNECT).
                reply.close()
                raise UpstreamConnectError(
                    f"proxy {origin.proxy.name} refused the request to {origin.name}: HTTP 407 (proxy authentication)"
                )
            return reply
        raise AssertionError("unreachable")

    def close(self) -> None:
        for origin in self._origins.values():
            origin.stop()
