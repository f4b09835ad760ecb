"""A forward HTTP proxy of the test suite's own, on 127.0.0.1: CONNECT tunnels (for https
origins) and absolute-form requests (``POST http://host:port/path``, for http origins),
with optional Basic authentication (407 when missing or wrong). It records what it
proxied, so a test can tell a request went through it.

Like ``tests.faulty``, it runs an asyncio loop in a background thread of the test
process; the gateway under test is a separate process and reaches it over a real socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from urllib.parse import urlsplit

from tests.loopserver import LoopServer

REJECT = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="t"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
)


class ForwardProxy(LoopServer):
    """``proxy.tunnels``: the authorities CONNECTed to; ``proxy.forwarded``: the
    absolute-form targets forwarded; ``proxy.refused``: requests answered 407."""

    name = "forward-proxy"

    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self._expected = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user is not None else None
        )
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []
        self.refused = 0
        self.start()

    def url(self, *, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    @staticmethod
    async def _head(reader: asyncio.StreamReader) -> tuple[str, str, list[tuple[str, str]]] | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        line, *fields = raw[:-4].decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = [(n.strip(), v.strip()) for n, _, v in (f.partition(":") for f in fields)]
        return method, target, headers

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        if self._expected is None:
            return True
        return any(n.lower() == "proxy-authorization" and v == self._expected for n, v in headers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamWriter, asyncio.Task[None]] | None = None
        upstream_at = ""
        try:
            while True:
                head = await self._head(reader)
                if head is None:
                    return
                method, target, headers = head
                if not self._authorized(headers):
                    self.refused += 1
                    writer.write(REJECT)
                    await writer.drain()
                    return
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                # Absolute form: to origin form, without the proxy's own header, to the
                # origin over one connection per client connection (and origin).
                parts = urlsplit(target)
                authority = f"{parts.hostname}:{parts.port or 80}"
                if upstream is None or upstream_at != authority:
                    if upstream is not None:
                        upstream[0].close()
                    r, w = await asyncio.open_connection(parts.hostname, parts.port or 80)
                    upstream, upstream_at = (w, asyncio.ensure_future(_pipe(r, writer))), authority
                self.forwarded.append(target)
                kept = [(n, v) for n, v in headers if n.lower() != "proxy-authorization"]
                length = int(next((v for n, v in kept if n.lower() == "content-length"), "0"))
                body = await reader.readexactly(length)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                out = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in kept) + "\r\n"
                upstream[0].write(out.encode("latin-1") + body)
                await upstream[0].drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if upstream is not None:
                upstream[0].close()
                upstream[1].cancel()
            writer.close()

    async def _tunnel(self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, port = authority.rpartition(":")
        try:
            r, w = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        self.tunnels.append(authority)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        back = asyncio.ensure_future(_pipe(r, writer))
        try:
            await _pipe(reader, w)
        finally:
            back.cancel()
            w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes one way until the reading side ends; then the writing side is closed."""
    try:
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
