"""Reading a request body within a size bound and a deadline.

A body already received whole when the handler asks for it (the common case: head and
body in one packet) is returned as is, without a timer. Otherwise it is read under a
deadline: ``timeout_s`` in all, and at least ``min_bytes_per_s`` on average after
RATE_GRACE_S. ``Expect: 100-continue`` is answered here, where the body is wanted,
once its declared length is known to fit. A body the gateway gives up on (too large, too
slow, not decodable) closes the connection after the answer, and what the client still
sends is no longer parsed: a compressed body is not inflated any further.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

# Not re-exported by aiohttp's public modules; pinned by tests/unit/server/test_aiohttp_pins.py.
from aiohttp.http_exceptions import ContentEncodingError

from gateway.errors import (
    ExpectationFailed,
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedContentEncoding,
)
from gateway.metrics import ConnectionStats
from gateway.server.access import GatewayRequest

# A body's first bytes may follow its head by a round trip, or by a 100 Continue: the
# minimum rate is held against it only after this long.
RATE_GRACE_S = 5.0
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# What aiohttp inflates; any other Content-Encoding is refused (aiohttp would pass the
# bytes through as if they were not encoded).
KNOWN_ENCODINGS = frozenset(("gzip", "deflate", "identity"))


class BodyLimits:
    """How long a server waits for request bodies (``server.body_*``)."""

    __slots__ = ("min_bytes_per_s", "stats", "timeout_s")

    def __init__(self, *, timeout_s: float, min_bytes_per_s: int, stats: ConnectionStats) -> None:
        self.timeout_s = timeout_s
        self.min_bytes_per_s = min_bytes_per_s
        self.stats = stats


async def read_bounded(request: web.BaseRequest, *, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes ``limit`` bytes
    (announced or actually sent: chunked and compressed bodies are counted too)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _give_up(request, PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes"))
    encoding = request.headers.get(hdrs.CONTENT_ENCODING)
    if encoding is not None and encoding.lower() not in KNOWN_ENCODINGS:
        raise _give_up(
            request,
            UnsupportedContentEncoding(
                f"unsupported Content-Encoding {encoding!r}: send the body as gzip, deflate or identity"
            ),
        )
    content = request.content
    if content.is_eof():  # all of it is here: no wait, no timer
        # What was fed (inflated, for a compressed body), all of it buffered: counted
        # before it is joined.
        if content.total_bytes > limit:
            raise _give_up(request, PayloadTooLarge(f"request body exceeds the limit of {limit} bytes"))
        try:
            # The buffer whole, in one call (the common body is one chunk: no copy), not
            # readany(): no coroutine to run, nothing more to wait for.
            return content.read_nowait()
        except web.RequestPayloadError as e:
            raise _give_up(request, _undecodable(e, encoding)) from None
    return await _read_waiting(request, limit=limit, encoding=encoding)


async def _read_waiting(request: web.BaseRequest, *, limit: int, encoding: str | None) -> bytes:
    """The body of a request whose body is still arriving, under its deadlines."""
    expect = request.headers.get(hdrs.EXPECT)
    if expect is not None and request.version >= HttpVersion11:
        if expect.lower() != "100-continue":
            raise _give_up(request, ExpectationFailed(f"unsupported Expect: {expect!r}; only 100-continue is"))
        transport = request.transport
        if transport is not None:  # not through the writer: the answer has not begun
            transport.write(CONTINUE)
    limits: BodyLimits | None = getattr(request.protocol, "body_limits", None)
    if limits is None:
        return await _read_all(request, limit=limit, encoding=encoding)
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + limits.timeout_s
    rate = limits.min_bytes_per_s

    def deadline(size: int) -> float:
        return min(end, start + RATE_GRACE_S + size / rate) if rate else end

    content = request.content
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline(0)) as timer:
            while chunk := await content.readany():
                size += len(chunk)
                if size > limit:
                    raise _give_up(request, PayloadTooLarge(f"request body exceeds the limit of {limit} bytes"))
                parts.append(chunk)
                timer.reschedule(deadline(size))
    except TimeoutError:
        limits.stats.body_timeouts += 1
        raise _give_up(
            request,
            RequestTimeout(
                f"request body not received in time: {size} bytes in {loop.time() - start:.1f} s "
                f"(at most {limits.timeout_s:g} s, at least {rate} bytes/s)"
            ),
        ) from None
    except web.RequestPayloadError as e:
        raise _give_up(request, _undecodable(e, encoding)) from None
    return b"".join(parts)


async def _read_all(request: web.BaseRequest, *, limit: int, encoding: str | None) -> bytes:
    """Without deadlines (a server without BodyLimits: the mock upstream)."""
    parts, size = [], 0
    try:
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise _give_up(request, PayloadTooLarge(f"request body exceeds the limit of {limit} bytes"))
            parts.append(chunk)
    except web.RequestPayloadError as e:
        raise _give_up(request, _undecodable(e, encoding)) from None
    return b"".join(parts)


def _undecodable(e: web.RequestPayloadError, encoding: str | None) -> GatewayError:
    if isinstance(e.__cause__, ContentEncodingError):
        return InvalidRequest(
            f"request body is not valid {encoding} data, as its Content-Encoding header says",
            code="invalid_content_encoding",
        )
    return InvalidRequest(f"malformed request body: {e}", code="malformed_body")


def _give_up(request: web.BaseRequest, err: GatewayError) -> GatewayError:
    if isinstance(request, GatewayRequest):
        request.close_after_answer()
    return err
