"""The pool's per-origin connection cap against scripted servers on 127.0.0.1: requests
past the cap wait for a released connection, first come first served; a wait past
``pool_timeout_s`` is PoolExhausted; the origin's count of live connections stays exact
through failed connects, TLS failures, proxies and tunnels, the stale keep-alive retry,
and requests cancelled while opening or waiting. Through a gateway process: the 503
(upstream_pool_exhausted) at the cap, a fallback serving instead, no strike on the key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.config.proxy import Proxy
from gateway.errors import PoolExhausted, UpstreamConnectError, UpstreamTimeout
from gateway.upstream.origin import Origin, limit_origins
from gateway.upstream.pool import Pool
from tests.conftest import Proc, free_port, serve_config
from tests.faulty import COMPLETION, Request, respond
from tests.integration.test_pool import CONTENT_LENGTH, HEAD, OK_BODY, Server, fetch, send_bytes
from tests.proxy import ForwardProxy


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout=20))  # type: ignore[arg-type]


def slow(delay_s: float) -> Server:
    """Answers every request after ``delay_s``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay_s)
        writer.write(CONTENT_LENGTH)
        await writer.drain()

    return Server(answer)


def capped(pool: Pool, url: str, cap: int, wait_s: float = 5.0, *, proxy: Proxy | None = None) -> Origin:
    origin = pool.origin(url, proxy=proxy)
    origin.limit(max_connections=cap, pool_timeout_s=wait_s)
    return origin


async def junk_server() -> asyncio.Server:
    """Answers a connection with a plain HTTP error and closes it: a TLS handshake fails."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def until(check: object, *, timeout_s: float = 5.0) -> None:
    """Until ``check()`` is true (bounded)."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_pool_cap_third_request_waits_for_a_released_connection() -> None:
    async def main() -> None:
        server = slow(0.3)
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        origin = capped(pool, url, 2)
        t0 = time.monotonic()
        results = await asyncio.gather(*(fetch(pool, url) for _ in range(3)))
        elapsed = time.monotonic() - t0
        assert results == [(200, OK_BODY)] * 3
        assert server.connections == 2  # the third reused one the first two released
        assert 0.55 < elapsed < 3  # two rounds of 0.3 s
        assert origin.opened == 2 and len(origin.idle) == 2 and not origin.waiters
        pool.close()
        assert origin.opened == 0
        server.close()

    run(main())


def test_pool_cap_wait_past_pool_timeout_is_pool_exhausted() -> None:
    async def main() -> None:
        server = slow(30)  # hung
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        origin = capped(pool, url, 1, 0.2)
        hung = asyncio.ensure_future(fetch(pool, url))
        await until(lambda: server.requests == 1)
        t0 = time.monotonic()
        with pytest.raises(PoolExhausted) as caught:
            await fetch(pool, url)
        assert 0.15 < time.monotonic() - t0 < 1.5
        assert caught.value.status == 503 and caught.value.code == "upstream_pool_exhausted"
        message = caught.value.message
        assert f"connection pool of {url} exhausted" in message
        assert "all 1 connections busy" in message and "within 0.2 s" in message
        # Bounded by the request's own deadline when that comes first.
        origin.limit(max_connections=1, pool_timeout_s=30)
        t0 = time.monotonic()
        with pytest.raises(PoolExhausted, match=r"none free within 0\.\d+ s"):
            await fetch(pool, url, total_s=0.1)
        assert time.monotonic() - t0 < 1.5
        assert (origin.opened, len(origin.waiters)) == (1, 0)
        hung.cancel()  # the client went away: its connection closes, its slot is free
        with pytest.raises(asyncio.CancelledError):
            await hung
        assert origin.opened == 0
        pool.close()
        server.close()

    run(main())


def test_pool_cap_cancelled_waiter_leaks_no_slot_and_no_wakeup() -> None:
    async def main() -> None:
        server = slow(0.3)
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        origin = capped(pool, url, 1)
        first = asyncio.ensure_future(fetch(pool, url))
        await until(lambda: server.requests == 1)
        gone = asyncio.ensure_future(fetch(pool, url))  # its client goes away while it waits
        third = asyncio.ensure_future(fetch(pool, url))
        await until(lambda: len(origin.waiters) == 2)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert len(origin.waiters) == 1
        # The released connection goes to the waiter after the cancelled one.
        assert await first == (200, OK_BODY)
        assert await third == (200, OK_BODY)
        assert server.connections == 1 and origin.opened == 1 and not origin.waiters
        pool.close()
        server.close()

    run(main())


def test_pool_cap_waiter_cancelled_as_it_is_served_passes_it_on() -> None:
    """A connection (or a slot) handed to a waiter whose request is cancelled before it
    runs goes to the next waiter, or back to the stack: never lost."""

    async def main() -> None:
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        origin = capped(pool, url, 1)
        assert await fetch(pool, url) == (200, OK_BODY)
        conn = origin.take()  # in use, as a request would hold it
        assert conn is not None and origin.opened == 1
        # A connection handed over: back to the stack.
        waiter = asyncio.ensure_future(origin.wait(deadline=None))
        await until(lambda: len(origin.waiters) == 1)
        origin.release(conn)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert origin.idle == [conn] and origin.opened == 1 and not origin.waiters
        # A slot handed over (the connection closed): given back.
        conn = origin.take()
        assert conn is not None
        waiter = asyncio.ensure_future(origin.wait(deadline=None))
        await until(lambda: len(origin.waiters) == 1)
        conn.retire()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert origin.opened == 0 and not origin.waiters
        assert await fetch(pool, url) == (200, OK_BODY)
        pool.close()
        server.close()

    run(main())


def test_pool_cap_failed_connects_leave_no_count() -> None:
    async def main() -> None:
        pool = Pool()
        refused = f"http://127.0.0.1:{free_port()}"
        origin = capped(pool, refused, 1, 0.2)
        for _ in range(3):  # each would wait for the last one's slot if it leaked
            with pytest.raises(UpstreamConnectError):
                await fetch(pool, refused)
        assert origin.opened == 0
        with pytest.raises(UpstreamConnectError, match="cannot resolve"):
            await fetch(pool, "http://no-such-host.invalid")
        assert pool.origin("http://no-such-host.invalid").opened == 0
        # TLS with a server that speaks plain HTTP: the handshake fails.
        server = await junk_server()
        port = server.sockets[0].getsockname()[1]
        tls = capped(pool, f"https://127.0.0.1:{port}", 1, 0.2)
        for _ in range(2):
            with pytest.raises(UpstreamConnectError):
                await fetch(pool, f"https://127.0.0.1:{port}")
        assert tls.opened == 0
        pool.close()
        server.close()

    run(main())


def test_pool_cap_stale_keep_alive_retry_keeps_the_count() -> None:
    async def main() -> None:
        # The server closes each connection right after its answer: a reused one is dead.
        server = Server(send_bytes(CONTENT_LENGTH, close=True))
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        origin = capped(pool, url, 1, 0.5)
        for _ in range(5):
            assert await fetch(pool, url) == (200, OK_BODY)
        await until(lambda: server.closed == 5)
        await until(lambda: origin.opened == 0)
        pool.close()
        server.close()

    run(main())


def test_pool_cap_cancelled_while_opening_gives_the_slot_back() -> None:
    async def main() -> None:
        # A "proxy" that accepts and never answers CONNECT: the open hangs in the tunnel.
        accepted: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            await reader.read()

        mute = await asyncio.start_server(silent, "127.0.0.1", 0)
        proxy = Proxy(f"http://127.0.0.1:{mute.sockets[0].getsockname()[1]}")
        pool = Pool()
        url = "https://origin.invalid:443"
        origin = capped(pool, url, 1, 0.2, proxy=proxy)
        opening = asyncio.ensure_future(pool.request(origin, HEAD, b"{}", connect_s=10, first_byte_s=10, total_s=10))
        await until(lambda: len(accepted) == 1)
        assert origin.opened == 1
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert origin.opened == 0
        # The connect timeout, the same.
        with pytest.raises(UpstreamTimeout):
            await pool.request(origin, HEAD, b"{}", connect_s=0.2, first_byte_s=10)
        assert origin.opened == 0
        pool.close()
        for w in accepted:
            w.close()
        mute.close()

    run(main())


def test_pool_cap_through_a_proxy() -> None:
    async def main() -> None:
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start()
        junk = await junk_server()
        forward = ForwardProxy()
        try:
            pool = Pool()
            proxy = Proxy(forward.url())
            # An http origin: requests to the proxy in absolute form, counted as the origin's.
            plain = capped(pool, f"http://127.0.0.1:{port}", 1, 0.2, proxy=proxy)
            for _ in range(3):
                reply = await pool.request(plain, plain.head("POST", "/x", {}), b"{}", connect_s=5, first_byte_s=5)
                assert (reply.status, await reply.read()) == (200, OK_BODY)
            assert plain.opened == 1 and forward.forwarded
            # An https origin tunnelled to a server that speaks plain HTTP: TLS fails in the tunnel.
            tls = capped(pool, f"https://127.0.0.1:{junk.sockets[0].getsockname()[1]}", 1, 0.2, proxy=proxy)
            for _ in range(2):
                with pytest.raises(UpstreamConnectError):
                    await pool.request(tls, tls.head("POST", "/x", {}), b"{}", connect_s=5, first_byte_s=5)
            assert tls.opened == 0 and forward.tunnels
            pool.close()
            assert plain.opened == 0
        finally:
            forward.stop()
            server.close()
            junk.close()

    run(main())


def test_pool_cap_changed_by_a_new_config() -> None:
    """Providers sharing an origin: the largest cap wins. A raised cap lets a waiter open
    at once; over a lowered one, idle connections close, then those released, until it
    holds."""

    async def main() -> None:
        server = slow(0.2)
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        origin = pool.origin(url)
        limit_origins([(origin, 1, 0.5), (origin, 3, 0.1), (origin, 2, 2.0)])
        assert (origin.max_connections, origin.pool_timeout_s) == (3, 2.0)
        origin.limit(max_connections=1, pool_timeout_s=5)
        first = asyncio.ensure_future(fetch(pool, url))
        await until(lambda: server.requests == 1)
        second = asyncio.ensure_future(fetch(pool, url))
        await until(lambda: len(origin.waiters) == 1)
        origin.limit(max_connections=2, pool_timeout_s=5)  # the waiter opens its own now
        assert not origin.waiters and origin.opened == 2
        assert await asyncio.gather(first, second) == [(200, OK_BODY)] * 2
        assert server.connections == 2 and origin.opened == 2
        origin.limit(max_connections=1, pool_timeout_s=5)  # an idle one closes at once
        assert origin.opened == 1 and len(origin.idle) == 1
        assert await asyncio.gather(fetch(pool, url), fetch(pool, url)) == [(200, OK_BODY)] * 2
        assert server.connections == 2 and origin.opened == 1
        pool.close()
        server.close()

    run(main())


# Through a gateway process: provider "capped" (one connection, a 0.3 s wait) in front of
# an upstream that holds each request HOLD_S; "spare" is the in-process mock.
HOLD_S = 3.0
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gw(faulty: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    @faulty.on("cap-hold")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(HOLD_S)
        await respond(w, 200, COMPLETION)

    config = {
        "providers": {
            "capped": {
                "base_url": faulty.url("cap-hold") + "/v1",
                "keys": [{"name": "only", "value": "sk-capped-key-0123456789"}],
                "max_connections": 1,
                "pool_timeout_s": 0.3,
            },
            "spare": {"dialect": "mock"},
        }
    }
    proc = serve_config(config, tmp_path_factory.mktemp("pool-cap"))
    yield proc
    proc.stop()


def _chat(gw: Proc, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(gw.url + CHAT, json=body, timeout=30)


def test_gateway_pool_exhausted_is_503_then_the_fallback_serves(gw: Proc) -> None:
    with ThreadPoolExecutor(1) as ex:
        holding = ex.submit(_chat, gw, "capped/m")  # takes the one connection for HOLD_S
        time.sleep(0.5)
        for _ in range(3):  # three in a row: were it the key's fault, it would cool now
            t0 = time.monotonic()
            r = _chat(gw, "capped/m")
            assert 0.25 < time.monotonic() - t0 < 2
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "upstream_pool_exhausted" and err["type"] == "upstream_error"
            assert err["message"].startswith("provider 'capped': connection pool of http://127.0.0.1:")
            assert "all 1 connections busy, none free within 0.3 s" in err["message"]
        r = _chat(gw, "capped/m", fallbacks=["spare/mock-chat"])
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "mock-chat"
        assert holding.result().status_code == 200  # the one connection's own request
    health = httpx.get(gw.url + "/health?providers=1", timeout=5).json()
    assert health["providers"]["capped"]["keys"] == [
        {"name": "only", "cooling_down": False, "cooldown_remaining_s": 0.0}
    ]
