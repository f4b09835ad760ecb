"""The CONNECT tunnel through a forward proxy, for an https origin behind one: what the
gateway says to the proxy before TLS with the origin starts on the same transport.
Which proxy applies, and its parsed URL (``Proxy``), come from ``gateway.config.proxy``.
"""

from __future__ import annotations

import asyncio

from gateway.config.proxy import Proxy
from gateway.errors import UpstreamConnectError, UpstreamProtocolError

# What a proxy answers to CONNECT before the tunnel is open: a status line and a few
# headers. Bounds what is buffered from a proxy that never ends its head.
MAX_CONNECT_HEAD_BYTES = 16 * 1024


class Tunnel(asyncio.Protocol):
    """A connection to a proxy until its answer to CONNECT: then ``start_tls`` moves the
    transport to the origin's TLS."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, proxy: Proxy, origin: str) -> None:
        self._proxy = proxy
        self._origin = origin
        self._buffer = b""
        self._answer: asyncio.Future[bytes] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def itself(self) -> Tunnel:
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._answer.done():
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end >= 0:
            self._answer.set_result(self._buffer[:end])
        elif len(self._buffer) > MAX_CONNECT_HEAD_BYTES:
            self._answer.set_exception(
                UpstreamProtocolError(
                    f"proxy {self._proxy.name} sent a CONNECT answer over {MAX_CONNECT_HEAD_BYTES} bytes"
                )
            )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._answer.done():
            self._answer.set_exception(
                UpstreamConnectError(f"proxy {self._proxy.name} closed the connection before answering CONNECT")
            )

    async def establish(self, authority: str, *, authorization: str | None) -> None:
        """CONNECT ``authority`` (host:port); an answer other than 2xx is an
        UpstreamConnectError naming the proxy and its status, never its credentials."""
        assert self.transport is not None
        auth = f"Proxy-Authorization: {authorization}\r\n" if authorization else ""
        self.transport.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode("latin-1"))
        head = await self._answer
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise UpstreamProtocolError(f"proxy {self._proxy.name} sent a malformed CONNECT answer: {line[:100]!r}")
        if not 200 <= int(code) < 300:
            raise UpstreamConnectError(
                f"proxy {self._proxy.name} refused CONNECT to {self._origin}: HTTP {code} {reason[:100]}".rstrip()
            )
