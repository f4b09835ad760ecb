"""The upstream pool against scripted HTTP servers on 127.0.0.1: keep-alive reuse, idle
connections the server closed, chunked and Content-Length bodies, responses split at
every byte, a 1 MB body, a reset mid-body, TLS with a self-signed certificate, DNS; the
whole-response deadline, close-delimited bodies, the head and body caps, idle connections
closed on time."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from gateway.upstream import origin as origin_module
from gateway.upstream import poolreply
from gateway.upstream.pool import Pool, request_head

HEAD = request_head("POST", "/v1/chat/completions", {"Content-Type": "application/json"})
OK_BODY = b'{"ok":true}'
CONTENT_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n" + OK_BODY


def chunked(body: bytes, *, parts: int = 3) -> bytes:
    step = max(1, len(body) // parts)
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), step):
        piece = body[i : i + step]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Counts connections; answers every request on a connection with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self.closed = 0  # connections ended (by either side)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                self.requests += 1
                await self.answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_context)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        self._server.close()


def send_bytes(data: bytes, *, close: bool = False) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()

    return answer


async def fetch(pool: Pool, url: str, **kw: float | None) -> tuple[int, bytes]:
    bounds = {k: kw[k] for k in ("total_s", "max_body_bytes") if k in kw}
    reply = await pool.request(
        pool.origin(url),
        HEAD,
        b'{"x":1}',
        connect_s=kw.get("connect_s", 5),
        first_byte_s=kw.get("first_byte_s", 5),
        **bounds,  # type: ignore[arg-type]
    )
    reply.watch_idle(kw.get("idle_s", 5))
    try:
        return reply.status, await reply.read()
    finally:
        reply.close()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_pool_keep_alive_reuses_one_connection() -> None:
    async def main() -> None:
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start()
        pool = Pool()
        for _ in range(20):
            assert await fetch(pool, f"http://127.0.0.1:{port}") == (200, OK_BODY)
        assert (server.connections, server.requests) == (1, 20)
        pool.close()
        server.close()

    run(main())


def test_pool_server_closing_idle_connection_is_survived() -> None:
    async def main() -> None:
        # Keep-alive announced, but the server closes right after each answer: the idle
        # connection the pool holds is dead when reused.
        server = Server(send_bytes(CONTENT_LENGTH, close=True))
        port = await server.start()
        pool = Pool()
        for _ in range(5):
            assert await fetch(pool, f"http://127.0.0.1:{port}") == (200, OK_BODY)
            await asyncio.sleep(0.02)  # the close reaches the pool, or (raced) the retry covers it
        assert server.requests == 5 and server.connections == 5
        pool.close()
        server.close()

    run(main())


def test_pool_connection_close_header_retires_connection() -> None:
    async def main() -> None:
        answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\n" + OK_BODY
        server = Server(send_bytes(answer))
        port = await server.start()
        pool = Pool()
        for _ in range(3):
            assert await fetch(pool, f"http://127.0.0.1:{port}") == (200, OK_BODY)
        assert server.connections == 3  # never reused
        pool.close()
        server.close()

    run(main())


@pytest.mark.parametrize("size", [0, 1, 1000, 1024 * 1024])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_pool_bodies(size: int, framing: str) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    if framing == "chunked":
        answer = chunked(body, parts=7)
    else:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def main() -> None:
        server = Server(send_bytes(answer))
        port = await server.start()
        pool = Pool()
        for _ in range(2):  # the second on the reused connection
            assert await fetch(pool, f"http://127.0.0.1:{port}") == (200, body)
        assert server.connections == 1
        pool.close()
        server.close()

    run(main())


def test_pool_response_split_at_every_byte() -> None:
    answer = chunked(b'data: {"a":1}\n\ndata: [DONE]\n\n', parts=2)

    async def main() -> None:
        for cut in range(1, len(answer)):

            async def split(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: int = cut) -> None:
                writer.write(answer[:cut])
                await writer.drain()
                await asyncio.sleep(0.001)
                writer.write(answer[cut:])
                await writer.drain()

            server = Server(split)
            port = await server.start()
            pool = Pool()
            assert await fetch(pool, f"http://127.0.0.1:{port}") == (200, b'data: {"a":1}\n\ndata: [DONE]\n\n')
            pool.close()
            server.close()

    run(main())


def test_pool_reset_mid_body_is_an_error_and_retires() -> None:
    async def main() -> None:
        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
            await writer.drain()
            writer.transport.abort()

        server = Server(reset)
        port = await server.start()
        pool = Pool()
        with pytest.raises(UpstreamProtocolError, match="closed the connection"):
            await fetch(pool, f"http://127.0.0.1:{port}")
        assert pool.origin(f"http://127.0.0.1:{port}").idle == []
        pool.close()
        server.close()

    run(main())


def test_pool_garbage_is_a_protocol_error() -> None:
    async def main() -> None:
        server = Server(send_bytes(b"SSH-2.0-OpenSSH\r\n\r\n"))
        port = await server.start()
        pool = Pool()
        with pytest.raises(UpstreamProtocolError, match="malformed HTTP response"):
            await fetch(pool, f"http://127.0.0.1:{port}")
        pool.close()
        server.close()

    run(main())


def test_pool_timeouts() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(2)

        async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            await writer.drain()
            await asyncio.sleep(2)

        pool = Pool()
        for answer, match in ((silent, "no response in time"), (stalls, "went idle")):
            server = Server(answer)
            port = await server.start()
            with pytest.raises(UpstreamTimeout, match=match):
                await fetch(pool, f"http://127.0.0.1:{port}", first_byte_s=0.2, idle_s=0.2)
            server.close()
        pool.close()

    run(main())


def test_pool_connect_refused_and_dns() -> None:
    async def main() -> None:
        pool = Pool()
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start()
        # "localhost" goes through aiodns (c-ares reads /etc/hosts), then is cached.
        assert await fetch(pool, f"http://localhost:{port}") == (200, OK_BODY)
        server.close()
        await server._server.wait_closed()
        with pytest.raises(UpstreamConnectError):
            await fetch(pool, f"http://127.0.0.1:{port}/")
        with pytest.raises(UpstreamConnectError, match="cannot resolve"):
            await fetch(pool, "http://no-such-host.invalid/")
        pool.close()

    run(main())


def test_pool_tls_self_signed_needs_its_ca(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start(server_ctx)
        url = f"https://localhost:{port}"
        with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(Pool(), url)  # the system's CAs do not know it: verification on by default
        trusted = Pool(ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert await fetch(trusted, url) == (200, OK_BODY)
        trusted.close()
        server.close()

    run(main())


def test_pool_concurrent_requests_all_complete() -> None:
    # A closed loop, as a load generator drives it: many workers, each sending its next
    # request as soon as the last is answered. A response that completes in the read that
    # brings its headers hands its connection back at once; the next request taking it
    # must not lose its own wake-up.
    async def main() -> None:
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"

        async def worker() -> int:
            done = 0
            for _ in range(50):
                assert await fetch(pool, url) == (200, OK_BODY)
                done += 1
            return done

        results = await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(32))), timeout=20)
        assert sum(results) == 32 * 50 == server.requests
        assert server.connections <= 32
        pool.close()
        server.close()

    run(main())


def test_pool_deadline_holds_against_a_trickle() -> None:
    # Never idle (a byte every 50 ms), never done in time: the deadline is absolute.
    async def main() -> None:
        async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)

        server = Server(trickle)
        port = await server.start()
        pool = Pool()
        with pytest.raises(UpstreamTimeout, match="did not complete"):
            await fetch(pool, f"http://127.0.0.1:{port}", first_byte_s=None, idle_s=None, total_s=0.5)
        assert pool.origin(f"http://127.0.0.1:{port}").idle == []
        # Headers that never come: the same deadline, with no first-byte bound.
        server.answer = send_bytes(b"")
        with pytest.raises(UpstreamTimeout, match="no response in time"):
            await fetch(pool, f"http://127.0.0.1:{port}", first_byte_s=None, idle_s=None, total_s=0.3)
        pool.close()
        server.close()

    run(main())


@pytest.mark.parametrize("body", [b"", OK_BODY, b"x" * 300_000])
def test_pool_close_delimited_body_completes(body: bytes) -> None:
    async def main() -> None:
        server = Server(send_bytes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body, close=True))
        port = await server.start()
        pool = Pool()
        for _ in range(2):
            assert await fetch(pool, f"http://127.0.0.1:{port}") == (200, body)
        assert server.connections == 2  # never reused
        pool.close()
        server.close()

    run(main())


def test_pool_head_caps() -> None:
    async def main() -> None:
        pool = Pool()
        long_line = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 9000 + b"\r\nContent-Length: 11\r\n\r\n" + OK_BODY
        endless = b"HTTP/1.1 200 OK\r\n" + (b"X-Pad: " + b"p" * 1000 + b"\r\n") * 200  # and never a blank line
        for answer, match in ((long_line, "header line over 8190"), (endless, "head over 65536")):
            server = Server(send_bytes(answer))
            port = await server.start()
            with pytest.raises(UpstreamProtocolError, match=match):
                await fetch(pool, f"http://127.0.0.1:{port}")
            server.close()
        pool.close()

    run(main())


def test_pool_read_refuses_a_body_over_its_cap() -> None:
    async def main() -> None:
        body = b"x" * 100_000
        server = Server(send_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
        port = await server.start()
        pool = Pool()
        with pytest.raises(UpstreamProtocolError, match="over 10000 bytes"):
            await fetch(pool, f"http://127.0.0.1:{port}", max_body_bytes=10_000)
        assert await fetch(pool, f"http://127.0.0.1:{port}", max_body_bytes=len(body)) == (200, body)
        pool.close()
        server.close()

    run(main())


def test_pool_close_before_any_response_byte_is_a_connect_error() -> None:
    async def main() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = Server(hang_up)
        port = await server.start()
        pool = Pool()
        with pytest.raises(UpstreamConnectError, match="before answering"):
            await fetch(pool, f"http://127.0.0.1:{port}")
        pool.close()
        server.close()

    run(main())


def test_pool_idle_connections_closed_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(origin_module, "IDLE_S", 0.2)

    async def main() -> None:
        server = Server(send_bytes(CONTENT_LENGTH))
        port = await server.start()
        pool = Pool()
        url = f"http://127.0.0.1:{port}"
        # Two connections idle at once, then one reused: only unused ones expire.
        await asyncio.gather(fetch(pool, url), fetch(pool, url))
        assert server.connections == 2 and len(pool.origin(url).idle) == 2
        for _ in range(100):  # bounded: up to 5 s
            if server.closed == 2:
                break
            await asyncio.sleep(0.05)
        assert server.closed == 2  # closed by the pool without being used again
        assert pool.origin(url).idle == []
        assert await fetch(pool, url) == (200, OK_BODY)  # a fresh one
        assert server.connections == 3
        pool.close()
        server.close()

    run(main())


def test_pool_connection_released_after_a_paused_read_reads_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole answer that reaches the pool's high-water mark, left unread by its consumer:
    the connection goes back to the idle stack reading, and the next request on it is
    answered (it was left paused: the next request waited for its timeout)."""
    big = b"x" * (300 * 1024)
    # The mark at the body's size: reading pauses exactly as the last body byte comes in,
    # however the kernel splits the reads (a lower mark could pause it short of the end).
    monkeypatch.setattr(poolreply, "HIGH_WATER_BYTES", len(big))
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)

    async def main() -> None:
        server = Server(send_bytes(answer))
        port = await server.start()
        pool = Pool()
        origin = pool.origin(f"http://127.0.0.1:{port}")
        reply = await pool.request(origin, HEAD, b"{}", connect_s=5, first_byte_s=5)
        for _ in range(500):  # until the whole answer is in (bounded: 5 s)
            if reply._done:
                break
            await asyncio.sleep(0.01)
        assert reply._done
        reply.close()  # not read: the consumer went away
        assert server.connections == 1
        status, body = await fetch(pool, f"http://127.0.0.1:{port}", first_byte_s=3, idle_s=3)
        assert (status, len(body)) == (200, len(big))
        assert server.connections == 1  # the same connection, reused
        pool.close()
        server.close()

    run(main())
