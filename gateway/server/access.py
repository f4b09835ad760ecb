"""After every answer: its request id, metrics and JSON access log line.

aiohttp calls the server's access logger once per answered request, after the answer is
written (``RequestHandler.log_access``); that is where the gateway records it, off the
path between client and upstream. What is recorded travels on the request, typed
(``GatewayRequest``, made by the server's ``request_factory``): the relay's ``Call``
(provider, model, tokens, cost, upstream time), set by the handler before the relay
runs, and an error answer's class and principal (``server.dispatch.note_error``). A
request whose client went away before its answer was
complete (``call.abandoned``) is recorded as a 499, error ``client_closed``, with what it
was charged; aiohttp logs no access for a handler it cancelled, so the relay hands those
over itself (``record_abandoned``).

Request ids: the client's ``x-request-id`` when it is a sane token (1-128 characters of
``[A-Za-z0-9._:-]``), else one made here: a random per-process prefix and a counter,
unique across processes and ~20x cheaper than a uuid4. Every answer carries it back in
``x-request-id`` (``GatewayRequest._prepare_hook``; ``server.answer.Answer`` writes it
itself).

The access log: one JSON object per line, never message content, never credentials;
lines are buffered, encoded together and written every 0.1 s (or every 256 lines) by
one writer thread, so a slow log pipe never blocks the event loop. Off with ``server.access_log: false``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from msgspec import UNSET, Raw, UnsetType

from gateway.metrics import Metrics

if TYPE_CHECKING:
    from gateway.relay.call import Call
    from gateway.state.sqlite import LogStore

log = logging.getLogger("gateway.access")

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_PREFIX = secrets.token_hex(4)
_counter = 0
FLUSH_EVERY_S = 0.1
FLUSH_LINES = 256
CONTENT_MAX_BYTES = 32 * 1024  # per body, with server.access_log_content
# A relayed request whose client went away before its answer was complete is recorded
# with nginx's "client closed request" status (never sent: there is no one to send it to).
CLIENT_CLOSED_STATUS = 499
CLIENT_CLOSED = "client_closed"


def new_request_id() -> str:
    global _counter
    _counter += 1
    return f"{_PREFIX}-{_counter:x}"


class GatewayRequest(web.BaseRequest):
    """``web.BaseRequest`` that knows its request id and hands it to every answer, and
    carries what the access log and metrics record of it: the relay's ``Call`` (set by
    the handler once the call is built, so an answer to an exception has it too), the
    class of an error answer and the caller it was refused for. Every request of the
    gateway's server is one (``server.protocol.Server`` is its ``request_factory``)."""

    ATTRS = web.BaseRequest.ATTRS | frozenset(
        ["_request_id", "t0", "_closing", "call", "error_type", "principal", "malformed"]
    )
    _request_id: str | None = None
    # The body was given up on (``server.body``): the answer closes the connection.
    _closing = False
    # perf_counter when the request was parsed (set by server.protocol.Server): answers
    # the relay did not time (refusals, 404s, /health) are timed from it, since
    # aiohttp's own timer under uvloop counts whole milliseconds.
    t0: float | None = None
    # Class attributes as defaults: a request that never sets one costs nothing.
    call: Call | None = None  # the relayed call: provider, model, tokens, cost, timings
    error_type: str | None = None  # an error answer's OpenAI type (server.dispatch.note_error)
    principal: str | None = None  # the caller an error was refused for, when known
    malformed: str | None = None  # what aiohttp's parser refused, quoting no client bytes (server.head)

    @property
    def request_id(self) -> str:
        rid = self._request_id
        if rid is None:
            sent = self.headers.get(REQUEST_ID_HEADER)
            rid = self._request_id = sent if sent is not None and _SANE_ID.fullmatch(sent) else new_request_id()
        return rid

    def close_after_answer(self) -> None:
        """The connection closes once this request is answered; what the client sends
        meanwhile is not parsed (aiohttp drains it for up to its lingering time, so the
        answer is not lost to a reset)."""
        self._closing = True
        self.protocol.close()

    # A private hook, the only per-response one of the low-level server (web.Application's
    # on_response_prepare signal goes through it too); pinned by tests/unit/server/test_aiohttp_pins.py.
    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        # setdefault: a handler that chose its own id (the mock server does) keeps it.
        response.headers.setdefault(REQUEST_ID_HEADER, self.request_id)
        if self._closing:  # after aiohttp chose the Connection header: set it here
            response.force_close()
            response.headers[hdrs.CONNECTION] = "close"


def request_id(request: web.BaseRequest) -> str:
    return request.request_id if isinstance(request, GatewayRequest) else new_request_id()


def record_abandoned(request: GatewayRequest, call: Call) -> None:
    """Records a relayed request whose client went away while the handler ran.

    aiohttp cancels the handler of a connection that closed (``handler_cancellation``)
    and, the handler having returned nothing, logs no access for it: this hands it to
    the same access logger, as the 499 it would have been (``RequestHandler.log_access``,
    aiohttp's own call; tests/integration/test_client_closed.py fails if it stops
    reaching the log). Called only from a cancelled handler, so never twice."""
    call.abandoned = True
    request.call = call
    request.protocol.log_access(request, web.Response(status=CLIENT_CLOSED_STATUS), asyncio.get_running_loop().time())


class Line(msgspec.Struct, omit_defaults=True):
    """One access log line. Keys are short and stable: log pipelines parse them."""

    ts: float
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    principal: str | None = None
    provider: str | None = None
    model: str | None = None
    stream: bool = False
    fallback_index: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0  # null: the model has no known price (never a made-up 0)
    upstream_ms: float = 0.0
    error: str | None = None


class MalformedLine(Line, omit_defaults=True):
    """The line of a request aiohttp's parser refused: what was malformed, in at most
    ``server.head.MAX_DETAIL_CHARS`` characters, no client bytes quoted (a header value
    may be a credential): ``"Duplicate 'Host' header found"``, ``"Invalid header value
    char (header Authorization)"``."""

    malformed: str | UnsetType = UNSET


class ContentLine(Line, omit_defaults=True):
    """A line with ``server.access_log_content``: the client's request body and a whole
    answer's body, as JSON (both are by then: the request was validated, the answer built
    by the gateway); over CONTENT_MAX_BYTES, or a stream's answer, left out and said so."""

    request_body: Raw | UnsetType = UNSET
    request_body_omitted: str | UnsetType = UNSET
    response_body: Raw | UnsetType = UNSET
    response_body_omitted: str | UnsetType = UNSET


def _with_content(line: Line, call: Call, response: web.StreamResponse) -> ContentLine:
    out = ContentLine(*(getattr(line, f) for f in line.__struct_fields__))
    body = call.body
    if len(body) <= CONTENT_MAX_BYTES:
        out.request_body = Raw(body)
    else:
        out.request_body_omitted = "too large"
    answer = getattr(response, "body", None)
    if isinstance(answer, bytes) and response.status < 400:
        if len(answer) <= CONTENT_MAX_BYTES:
            out.response_body = Raw(answer)
        else:
            out.response_body_omitted = "too large"
    return out


def _now() -> float:
    """Wall-clock seconds to the millisecond (half the cost of ``round(t, 3)``)."""
    return int(time.time() * 1000) / 1000


class AccessSink:
    """What the access logger hands every answered request to."""

    def __init__(
        self,
        metrics: Metrics,
        route_of: Callable[[str], str],
        *,
        log_lines: bool,
        fd: int = 1,
        store: LogStore | None = None,
        content: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._metrics = metrics
        self._route_of = route_of
        self._log_lines = log_lines
        # The request log store (``logs.enabled``) takes each request's Line too.
        self._store = store
        self._lines = log_lines or store is not None
        # Message content in the stdout lines: off unless the operator turns it on.
        self._content = content
        self._fd = fd
        self._buffer: list[Line] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop = loop  # where the flush timer runs; None: the running loop
        self._writer: ThreadPoolExecutor | None = None
        self._encode_lines = msgspec.json.Encoder().encode_lines

    def record(self, request: GatewayRequest, response: web.StreamResponse, seconds: float) -> None:
        call = request.call
        status = response.status
        path = request.path
        error = request.error_type
        if call is not None and call.abandoned:
            # Whatever was (or was to be) written, the client did not get the whole answer.
            status, error = CLIENT_CLOSED_STATUS, CLIENT_CLOSED
        if error is not None:
            self._metrics.error(error)
        if call is None:
            t0 = request.t0
            if t0 is not None:
                seconds = time.perf_counter() - t0
            self._metrics.request(self._route_of(path), "none", "none", status, seconds, 0.0)
            if self._lines:
                ms = int(seconds * 1e6 + 0.5) / 1000
                # Positional: a Struct built with keywords costs twice as much.
                line = Line(_now(), request.request_id, request.method, path, status, ms,
                            request.principal, None, None, False, 0, 0, 0, 0.0, 0.0, error)  # fmt: skip
                if request.malformed is None:
                    self._add(line, None, response)
                else:
                    self._add_malformed(line, request.malformed)
            return
        # The relay's own clock: aiohttp's ``seconds`` comes from loop.time(), which
        # uvloop keeps in whole milliseconds.
        seconds = time.perf_counter() - call.t0
        target = call.served_by()
        upstream_s = call.upstream_s
        if target is None:
            provider = model = None
            self._metrics.request(self._route_of(path), "none", "none", status, seconds, upstream_s)
        else:
            provider, model = target.provider.name, target.model
            self._metrics.request(self._route_of(path), provider, model, status, seconds, upstream_s)
        if self._lines:
            self._add(Line(_now(), request.request_id, request.method, path, status, int(seconds * 1e6 + 0.5) / 1000,
                           call.principal, provider, model, call.request_type.endswith("_stream"), call.served_index,
                           call.used_in, call.used_out, call.used_cost, int(upstream_s * 1e6 + 0.5) / 1000, error),
                      call, response)  # fmt: skip

    def _add(self, line: Line, call: Call | None, response: web.StreamResponse) -> None:
        if self._store is not None:
            self._store.add(line)
            if not self._log_lines:
                return
        if self._content and call is not None:
            line = _with_content(line, call, response)
        buffer = self._buffer
        buffer.append(line)
        if len(buffer) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = (self._loop or asyncio.get_running_loop()).call_later(FLUSH_EVERY_S, self.flush)

    def _add_malformed(self, line: Line, malformed: str) -> None:
        """``_add`` for a request the parser refused: the stdout line says what was malformed
        (the request log store's rows keep the common columns)."""
        if self._store is not None:
            self._store.add(line)
            if not self._log_lines:
                return
        out = MalformedLine(*(getattr(line, f) for f in line.__struct_fields__))
        out.malformed = malformed
        self._buffer.append(out)
        if len(self._buffer) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = (self._loop or asyncio.get_running_loop()).call_later(FLUSH_EVERY_S, self.flush)

    def flush(self) -> None:
        """Hands the buffered lines to the writer thread, encoded in one call (one write
        per batch)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        data = self._encode_lines(self._buffer)
        self._buffer.clear()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="gateway-access-log")
        self._writer.submit(self._write, data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as e:  # a closed log pipe must not take the gateway down
            log.error("access log write failed: %s", e)

    def close(self) -> None:
        """Writes what is buffered, and waits for it (at shutdown)."""
        self.flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


class AccessLogger(AbstractAccessLogger):
    """aiohttp's per-connection access logger; ``logger`` is the gateway's AccessSink
    (aiohttp passes whatever was given as ``access_log`` through)."""

    def __init__(self, logger: Any, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._record = logger.record

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        try:
            self._record(request, response, time)
        except Exception:  # accounting must never break serving
            log.exception("recording a request failed")
