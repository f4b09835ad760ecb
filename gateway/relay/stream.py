"""Streaming: upstream SSE bytes go to the client as they arrive.

The upstream is opened before the client's headers are written, so a failure before
the first byte is an ordinary HTTP error (and may fall back); after it, failures are
reported in-band as an OpenAI error frame and the stream ends.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.errors import UpstreamError
from gateway.relay.call import FALLBACK_HEADER, PROVIDER_HEADER, Call, may_fall_back, status_error
from gateway.upstream import Reply

log = logging.getLogger("gateway.relay")

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Tells nginx-style proxies in front of the gateway not to buffer the stream.
    "X-Accel-Buffering": "no",
}


async def _open(call: Call) -> tuple[Reply, int]:
    first: UpstreamError | None = None
    for index, (target, body) in enumerate(call.targets):
        provider = target.provider
        reply: Reply | None = None
        try:
            reply = await provider.send(call.endpoint, body, stream=True)
            if 200 <= reply.status < 300:
                return reply, index
            data = await reply.read()
            reply.close()
            raise status_error(provider.name, reply.status, provider.redact(data))
        except UpstreamError as e:
            if reply is not None:
                reply.close()
            first = first or e
            if not may_fall_back(e):
                break
    assert first is not None
    raise first


async def stream(call: Call, request: web.BaseRequest) -> web.StreamResponse:
    reply, index = await _open(call)
    try:
        resp = web.StreamResponse(headers=SSE_HEADERS)
        resp.headers[PROVIDER_HEADER] = call.targets[index][0].provider.name
        if index:
            resp.headers[FALLBACK_HEADER] = str(index)
        await resp.prepare(request)
        write = resp.write
        try:
            async for chunk in reply.chunks():
                await write(chunk)
        except UpstreamError as e:
            log.warning("stream from provider failed mid-way: %s", e.message)
            await write(b"data: " + e.body() + b"\n\n")
        await resp.write_eof()
        return resp
    except ConnectionError:
        # The client went away; closing the reply (below) closes the upstream.
        log.debug("client disconnected mid-stream")
        return resp
    finally:
        reply.close()
