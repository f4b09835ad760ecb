"""A complete JSON answer written with one transport write.

``web.Response`` costs ~9 µs a request here: a header multidict, content-type parsing,
four coroutines (prepare, _start, _prepare_headers, _write_headers) and a C header
serialiser. The relay's answers are always the same shape (200, JSON, a few known
headers, a body in hand), so they are written as bytes built in one join.

A relayed answer's headers are assembled in one place, ``relay.call.answer_headers``
(used by a stream, a ``web.Response`` answer and an async job's result); the common
answer's head lines (``server.handlers``, ``client_header_lines``) are a hand-inlined
copy of it, proven equal by tests/unit/server/test_answer.py.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from multidict import CIMultiDict

from gateway.server.access import GatewayRequest, request_id

_STATUS_LINE = b"HTTP/1.1 200 OK\r\n"
_SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_DRAIN_ABOVE = 0x10000  # StreamWriter.write's own limit
_date_text = ""
_date_line = b""


def _date() -> bytes:
    """The Date header line; aiohttp's own clock text, re-encoded once a second."""
    global _date_text, _date_line
    text = rfc822_formatted_time()
    if text is not _date_text:
        _date_text, _date_line = text, f"Date: {text}\r\n".encode()
    return _date_line


def fits(request: web.BaseRequest) -> bool:
    """Whether ``Answer`` may answer ``request`` (HTTP/1.1; anything else: web.Response)."""
    return request.version == HttpVersion11


class Answer(web.StreamResponse):
    """A 200 with ``headers`` (``Name: value\\r\\n`` lines, without Content-Length, Date,
    Server or Connection) and ``body``: what aiohttp's RequestHandler needs of a response
    (``prepare``, ``write_eof``, ``keep_alive``) and no more. ``status``, ``reason``,
    ``body`` and ``headers`` read like a ``web.Response``'s, for code that keeps an answer.

    ``StreamResponse.__init__`` is not called: it costs ~0.4 µs a request (a header
    multidict, a state dict, the reason lookup), more than the rest of this class. What
    it sets is provided otherwise (tests/unit/server/test_aiohttp_pins.py checks every
    attribute it sets on a fresh response): the status and reason are class constants,
    the headers are read from the header bytes, the state dict is made when first used."""

    _status = 200
    _reason = "OK"
    _keep_alive: bool | None = True

    def __init__(self, headers: bytes, body: bytes) -> None:
        self._head = headers
        self._data = body

    @property
    def body(self) -> bytes:
        return self._data

    @property
    def _headers(self) -> CIMultiDict[str]:  # type: ignore[override]
        out: CIMultiDict[str] = CIMultiDict()
        for line in self._head.decode("latin-1").split("\r\n"):
            if line:
                name, _, value = line.partition(": ")
                out.add(name, value)
        return out

    @cached_property
    def _state(self) -> dict[str | web.ResponseKey[Any], Any]:  # type: ignore[override]
        return {}

    async def prepare(self, request: web.BaseRequest) -> None:
        keep = self._keep_alive = request.keep_alive
        data = self._data
        out = b"".join(
            (
                _STATUS_LINE,
                self._head,
                b"x-request-id: %s\r\n" % request_id(request).encode(),
                b"Content-Length: %d\r\n" % len(data),
                _date(),
                _SERVER,
                b"\r\n" if keep else b"Connection: close\r\n\r\n",
                data,
            )
        )
        # Straight to the transport: what aiohttp's StreamWriter.write and write_eof do
        # for one uncompressed block, without their ~26 lines of Python.
        transport = request.transport
        if transport is None or transport.is_closing():
            call = request.call if isinstance(request, GatewayRequest) else None
            if call is not None:
                call.abandoned = True  # recorded as a 499: the client never got it
            raise ConnectionResetError("Cannot write to closing transport")
        writer = request.writer
        writer.output_size += len(out)  # the answer has begun (_Protocol.handle_error reads it)
        transport.write(out)
        if len(out) > _DRAIN_ABOVE:  # as StreamWriter.write: wait while the client is slow
            await writer.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        return None  # written whole by prepare()
