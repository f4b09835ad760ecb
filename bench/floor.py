"""The floor: the thinnest forwarder on the gateway's own stack.

aiohttp's low-level ``web.Server`` on uvloop and one shared ``ClientSession``, and
nothing else: no validation, no routing, no accounting, no enrichment. Every request is
sent to the upstream as it came (same path, same body) and the answer relayed (whole, or
chunk by chunk for event streams). What the gateway costs beyond this is what its
features cost.

    .venv/bin/python -m bench.floor --port 8081 --upstream http://127.0.0.1:9000
    .venv/bin/python -m bench.floor --pool ...   # the same on the gateway's own pool

``--pool`` swaps ``ClientSession`` for ``gateway.upstream.pool``: the thinnest forwarder on the
gateway's upstream client, so gateway+pool minus floor+pool is what validation, routing
and accounting cost under load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import aiohttp
import uvloop
from aiohttp import web


async def serve_pooled(port: int, upstream: str) -> None:
    """The same forwarder on the gateway's own upstream pool instead of ``ClientSession``:
    what the gateway costs beyond this is what its features cost (issue 5)."""
    from gateway.upstream.pool import Pool, request_head

    pool = Pool()
    origin = pool.origin(upstream)
    heads: dict[str, bytes] = {}

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/health":
            return web.Response(body=b'{"status":"ok"}', content_type="application/json")
        body = await request.read()
        head = heads.get(request.path)
        if head is None:
            head = heads[request.path] = request_head("POST", request.path, {"Content-Type": "application/json"})
        reply = await pool.request(origin, head, body, connect_s=10.0, first_byte_s=300.0)
        try:
            ctype = next((v for k, v in reply.headers if k.lower() == b"content-type"), b"").decode()
            if not ctype.startswith("text/event-stream"):
                return web.Response(status=reply.status, body=await reply.read(), headers={"Content-Type": ctype})
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            async for chunk in reply.chunks():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            reply.close()

    server = web.Server(handler, handler_cancellation=True, access_log=None)
    listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", port, backlog=2048)
    try:
        await asyncio.Event().wait()
    finally:
        listener.close()
        pool.close()


async def serve(port: int, upstream: str, *, tuned: bool) -> None:
    if tuned:
        # Every ClientSession knob that could shave per-request work (issue 5 asked
        # whether tuning alone closes the gap; bench/README.md has the answer).
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, resolver=aiohttp.AsyncResolver(), ttl_dns_cache=None, enable_cleanup_closed=False
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            read_bufsize=2**16,
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
        )
    else:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, resolver=aiohttp.AsyncResolver()),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    json_headers = {"Content-Type": "application/json"}

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/health":
            return web.Response(body=b'{"status":"ok"}', content_type="application/json")
        body = await request.read()
        async with session.post(upstream + request.path, data=body, headers=json_headers) as up:
            if up.content_type != "text/event-stream":
                return web.Response(status=up.status, body=await up.read(), content_type=up.content_type)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    server = web.Server(handler, handler_cancellation=True, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", port, backlog=2048)
    try:
        await asyncio.Event().wait()
    finally:
        listener.close()
        await session.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="base URL of the upstream, e.g. http://127.0.0.1:9000")
    p.add_argument("--tuned", action="store_true", help="every ClientSession knob set for speed")
    p.add_argument("--pool", action="store_true", help="the gateway's own upstream pool, not ClientSession")
    args = p.parse_args()
    upstream = args.upstream.rstrip("/")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve_pooled(args.port, upstream) if args.pool else serve(args.port, upstream, tuned=args.tuned))


if __name__ == "__main__":
    main()
