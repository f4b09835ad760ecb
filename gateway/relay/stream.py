"""Streaming: upstream SSE bytes go to the client as they arrive.

The upstream is opened before the client's headers are written, so a failure before
the first byte is an ordinary HTTP error (and may fall back); after it, failures are
reported in-band as an OpenAI error frame and the stream ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from aiohttp import web

from gateway.errors import UpstreamError, UpstreamProtocolError
from gateway.relay.call import FALLBACK_HEADER, PROVIDER_HEADER, Call, may_fall_back, status_error
from gateway.upstream import Reply

log = logging.getLogger("gateway.relay")

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Tells nginx-style proxies in front of the gateway not to buffer the stream.
    "X-Accel-Buffering": "no",
}


class _Opened:
    """An upstream stream whose first chunk has arrived, not yet sent to the client."""

    __slots__ = ("reply", "chunks", "first", "index")

    def __init__(self, reply: Reply, chunks: AsyncGenerator[bytes, None], first: bytes, index: int) -> None:
        self.reply, self.chunks, self.first, self.index = reply, chunks, first, index


async def _first_chunk(reply: Reply, provider: str) -> tuple[AsyncGenerator[bytes, None], bytes]:
    chunks = reply.chunks()
    first = await anext(chunks, b"")
    if not first:
        raise UpstreamProtocolError(f"provider '{provider}' closed the stream before sending anything")
    return chunks, first


async def _open(call: Call) -> _Opened:
    """The first target whose stream yields a first chunk. Waiting for that chunk
    before answering the client makes a silent upstream a 504 (or a fallback), not an
    in-band error after a 200."""
    first_error: UpstreamError | None = None
    for index, (target, body) in enumerate(call.targets):
        provider = target.provider
        reply: Reply | None = None
        try:
            reply = await provider.send(call.endpoint, body, stream=True)
            if not 200 <= reply.status < 300:
                data = await reply.read()
                raise status_error(provider.name, reply.status, provider.redact(data))
            chunks, first = await _first_chunk(reply, provider.name)
            return _Opened(reply, chunks, first, index)
        except UpstreamError as e:
            if reply is not None:
                reply.close()
            first_error = first_error or e
            if not may_fall_back(e):
                break
    assert first_error is not None
    raise first_error


async def stream(call: Call, request: web.BaseRequest) -> web.StreamResponse:
    opened = await _open(call)
    reply, chunks = opened.reply, opened.chunks
    resp = web.StreamResponse(headers=SSE_HEADERS)
    try:
        resp.headers[PROVIDER_HEADER] = call.targets[opened.index][0].provider.name
        if opened.index:
            resp.headers[FALLBACK_HEADER] = str(opened.index)
        await resp.prepare(request)
        write = resp.write
        await write(opened.first)
        try:
            async for chunk in chunks:
                await write(chunk)
        except UpstreamError as e:
            log.warning("stream from provider failed mid-way: %s", e.message)
            await write(b"data: " + e.body() + b"\n\n")
        await resp.write_eof()
    except ConnectionError:
        # The client went away; closing the reply (below) closes the upstream.
        log.debug("client disconnected mid-stream")
    finally:
        reply.close()
        await chunks.aclose()
    return resp
