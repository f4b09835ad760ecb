"""aiohttp's low-level server, with HTTP-level failures (a header line too long, too
many headers, a malformed request line) answered as OpenAI error bodies too (saying what
was malformed without quoting the client's bytes; a harmless repeated header served
instead: ``server.head``), and client
connections bounded: a request head must arrive within ``header_timeout_s`` (else a
408), an idle connection closes after ``keepalive_timeout_s`` (aiohttp's own timer), and
past ``max_connections`` a process closes new connections as it accepts them. Bodies
are bounded where they are read (``server.body``). A ``TimeoutError`` out of a handler,
which aiohttp answers as a 504 of its own, is a 504 OpenAI error too.

Built on aiohttp's public API: ``web.Server(request_factory=...)`` makes every request a
``GatewayRequest``. What has no public form is read privately and pinned by
tests/unit/server/test_aiohttp_pins.py: web.Server builds its protocols itself, so the
protocol factory (``Server.__call__``) is overridden to make ``_Protocol``, whose head
timer reads RequestHandler's connection state; ``in_flight`` reads its busy flag; a
connection's parser (``_parser``) is wrapped until its first head is parsed."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import resource
from time import monotonic, perf_counter
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage

# Not re-exported by aiohttp's public modules; pinned by tests/unit/server/test_aiohttp_pins.py.
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import ERROR

from gateway.errors import GatewayError, HandlerTimeout, UnsupportedContentEncoding
from gateway.metrics import ConnectionStats
from gateway.server.access import GatewayRequest
from gateway.server.body import BodyLimits
from gateway.server.dispatch import answer_error, error_response, note_error
from gateway.server.head import FirstHead, malformed_detail

log = logging.getLogger("gateway.server")

# The collector's young-generation threshold once serving (CPython's default is 700).
YOUNG_GC_THRESHOLD = 10_000
# Descriptors kept for what is not a client connection: the listener, stdio, log and
# database files, the supervisor's sockets, DNS. The default connection cap leaves half
# of the rest to upstream connections.
FD_RESERVE = 64
# When the hard descriptor limit is unlimited (not on Linux): what the soft one is raised to.
FD_CEILING = 1 << 20
# At most one warning line per this many seconds for refused connections, and one for
# descriptors running out: under a flood, a line per connection would be a flood too.
WARN_EVERY_S = 10.0
# aiohttp answers an unparseable request through a stand-in message of HTTP/1.0; the
# answer's status line follows the request's version: it is HTTP/1.1 here.
_UNPARSED = ERROR._replace(version=HttpVersion11)
# Encodings aiohttp inflates (br and zstd only with their optional libraries).
SUPPORTED_ENCODINGS = "gzip, deflate or identity"
_BRACKETED = re.compile(r"\(([\w-]+)\)")


class _HTTPError(GatewayError):
    type = "invalid_request_error"
    code = "malformed_http"


class _Throttle:
    """At most one log line per ``WARN_EVERY_S``, saying how often it happened meanwhile."""

    __slots__ = ("_at", "_count", "_message")

    def __init__(self, message: str) -> None:
        self._message = message
        self._at = -WARN_EVERY_S
        self._count = 0

    def hit(self, *args: object) -> None:
        self._count += 1
        now = monotonic()
        if now - self._at >= WARN_EVERY_S:
            log.warning(self._message, *args, self._count)
            self._at, self._count = now, 0


class ConnectionLimits:
    """What bounds every client connection of a server (``server.*`` settings)."""

    __slots__ = ("body", "header_timeout_s", "max_connections", "nofile", "stats")

    def __init__(
        self,
        *,
        header_timeout_s: float,
        body: BodyLimits,
        max_connections: int,
        nofile: int,
        stats: ConnectionStats,
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.body = body
        self.max_connections = max_connections
        self.nofile = nofile  # the soft descriptor limit
        self.stats = stats


def _head_timeout_answer() -> bytes:
    err = _HTTPError("request headers not received in time", code="request_timeout")
    body = err.body()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


HEAD_TIMEOUT_ANSWER = _head_timeout_answer()
# RequestHandler's own, called by the override without super().
_feed = web.RequestHandler.data_received


class _Protocol(web.RequestHandler):
    """One client connection. The head timer runs only while a request head is arriving
    in more than one packet: a head that comes in one (the common case) costs a
    comparison, no timer. Reads RequestHandler's ``_request_count``, ``_waiter``,
    ``_close`` and ``_force_close``: aiohttp has no public view of where a connection is
    between requests (pinned by tests/unit/server/test_aiohttp_pins.py; the behaviour by
    tests/integration/test_connections.py)."""

    __slots__ = ("_head_timer", "auto_decompress", "body_limits", "limits")

    def __init__(self, manager: Server, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        # Until the first request head is parsed: a harmless repeated header is served
        # (server.head). ``_parser`` is RequestHandler's (BaseProtocol's); pinned.
        self.auto_decompress: bool = kwargs.get("auto_decompress", True)  # read by server.head.new_parser
        self._parser = FirstHead(self, self._parser)  # type: ignore[assignment]  # stands in for it
        self._head_timer: asyncio.TimerHandle | None = None
        self.limits: ConnectionLimits = manager.limits
        self.body_limits = manager.limits.body  # read by server.body

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        _feed(self, data)  # not super(): a super object and two lookups a packet
        if self._request_count != count:  # a request head is complete
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        elif self._head_timer is None and data and not (self._close or self._force_close):
            waiter = self._waiter
            # Bytes of a head that is not complete: on a new connection, or one that was
            # waiting for its next request (not a body, nor pipelined behind a handler).
            if count == 0 or (waiter is not None and not waiter.done()):
                self.keep_alive(True)  # aiohttp's idle timer gives way to this one
                self._head_timer = self._loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or self._force_close:
            return
        self.limits.stats.head_timeouts += 1
        log.debug("request head from %s not received in time: 408", self.peername)
        transport.write(HEAD_TIMEOUT_ANSWER)
        self.force_close()  # the transport closes once the answer is written

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error response")
        # The server's request_factory makes every request one.
        assert isinstance(request, GatewayRequest)
        if isinstance(exc, GatewayError) or status >= 500:
            # Raised by a handler (the dispatcher does not catch: one frame less a request).
            if exc is None and status == 504:
                # aiohttp's own answer to a TimeoutError out of a handler (it passes no
                # exception; the one being handled is it): a timeout no boundary classified.
                log.error("timeout serving %s %s", request.method, request.path, exc_info=True)
                exc = HandlerTimeout("the request timed out in the gateway; see the gateway log")
            return answer_error(request, exc)
        if isinstance(exc, ContentEncodingError):  # one aiohttp cannot inflate (br, zstd)
            # aiohttp names it in brackets: "... content-encoding: brotli (br). Please install ..."
            named = _BRACKETED.search(exc.message)
            what = f"Content-Encoding {named[1]!r}" if named else "Content-Encoding"
            unsupported = UnsupportedContentEncoding(f"unsupported {what}: send the body as {SUPPORTED_ENCODINGS}")
            note_error(request, unsupported)
            resp: web.StreamResponse = error_response(unsupported)
            resp.force_close()
            return resp
        # What the parser found, without the client's bytes it quotes (a credential, maybe).
        detail = malformed_detail(exc, message or "")
        log.debug("malformed HTTP request from %s: %s", request.remote, detail)
        err = _HTTPError(f"malformed HTTP request: {detail}")
        err.status = status
        note_error(request, err)
        request.malformed = detail  # the access log line says what was malformed
        resp = web.Response(status=err.status, body=err.body(), content_type="application/json")
        resp.force_close()
        return resp


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is accepted. Nothing is read or
    written, so it costs the process nothing but the accept; its descriptor is free at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Server(web.Server):
    """``web.Server`` whose connections are ``_Protocol`` and whose requests are
    ``GatewayRequest`` (its ``request_factory``). ``handler_cancellation`` and the
    other keywords are ``web.Server``'s (the rest go to each connection's protocol)."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ConnectionLimits | None = None,
        handler_cancellation: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        loop = loop or asyncio.get_running_loop()
        super().__init__(
            handler, request_factory=self._request, handler_cancellation=handler_cancellation, loop=loop, **kwargs
        )
        # Kept here, not read back from web.Server's private ``_loop`` / ``_kwargs``:
        # web.Server makes its protocols itself, so ``__call__`` is overridden and needs them.
        self._event_loop = loop
        self._protocol_kwargs = kwargs
        if limits is None:  # the mock upstream: only aiohttp's own bounds
            nofile = descriptor_limit()
            limits = ConnectionLimits(
                header_timeout_s=3600.0,
                body=BodyLimits(timeout_s=3600.0, min_bytes_per_s=0, stats=ConnectionStats()),
                max_connections=default_max_connections(nofile),
                nofile=nofile,
                stats=ConnectionStats(),
            )
        self.limits = limits
        self._refusals = _Throttle(
            "at the connection cap (server.max_connections = %d): new connections are closed as "
            "accepted (gateway_connections_refused_total); %d since the last such line"
        )
        self._descriptors = _Throttle(
            "client connection on descriptor %d of a limit of %d: the process is about to run out "
            "(raise LimitNOFILE / ulimit -n, or lower server.max_connections); %d since the last such line"
        )

    def __call__(self) -> Any:
        """The protocol factory, per accepted connection: counted here, not in
        ``connection_made``, since a burst of accepts runs before any of those."""
        limits = self.limits
        stats = limits.stats
        if stats.open >= limits.max_connections:
            stats.refused += 1
            self._refusals.hit(limits.max_connections)
            return _Refused()
        stats.open += 1
        return _Protocol(self, loop=self._event_loop, **self._protocol_kwargs)

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        # Linux gives the lowest free descriptor: a high one means few are left. libuv
        # accepts and closes connections silently when none is left, so this line is
        # the only sign before that happens.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= self.limits.nofile - FD_RESERVE // 2:
            self._descriptors.hit(sock.fileno(), self.limits.nofile)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self.limits.stats.open -= 1
        super().connection_lost(handler, exc)

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> GatewayRequest:
        """The ``request_factory``: every request is a GatewayRequest, timed from here."""
        if message is ERROR:  # aiohttp's stand-in for a request it could not parse
            message = _UNPARSED
        request = GatewayRequest(message, payload, protocol, writer, task, self._event_loop)
        request.t0 = perf_counter()
        return request

    def in_flight(self) -> int:
        """Requests being served now (read at scrape time only)."""
        # RequestHandler's private flag: no public view of a busy connection (pinned by
        # tests/unit/server/test_aiohttp_pins.py).
        return sum(1 for c in self.connections if c._request_in_progress)


def raise_descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard one, as servers do at start-up (the
    soft default, often 1024, is too low for a server); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            log.warning("could not raise the descriptor limit from %d to %d: %s", soft, target, e)
    return descriptor_limit()


def descriptor_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FD_CEILING if soft == resource.RLIM_INFINITY else soft


def default_max_connections(nofile: int) -> int:
    """Half the descriptors left after FD_RESERVE: a client connection may hold an
    upstream connection too."""
    return max(1, (nofile - FD_RESERVE) // 2)


def settle_heap() -> None:
    """Once a server listens: what start-up built (pricing tables, tokenizer ranks,
    config, modules: ~70k objects) is frozen out of the collector's reach, so a full
    collection under load walks what requests left behind instead of all of it (measured:
    pauses of ~40 ms every few seconds at 7k req/s, gone). The young generation is
    collected every 10,000 net allocations instead of 700: requests free what they make
    by reference counting, so the collector mostly found nothing (~2 µs a request)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
