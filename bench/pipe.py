"""The relay floor for streams: a bare uvloop TCP pipe.

Every client connection gets its own upstream connection, and every byte read on one
side is written to the other inside ``data_received``: asyncio Protocols only, no HTTP
parsing, no coroutine, no per-request work. Whatever a relayed event costs a proxy
beyond what it costs this pipe is what the proxy does with it (parsing, framing,
accounting, its coroutines and timers). With flow control (an upstream read is paused
while the client's transport is above its high-water mark) and close propagation (either
side closing closes the other, after what is buffered is written).

    .venv/bin/python -m bench.pipe --port 8082 --upstream 127.0.0.1:9000

It is not an HTTP server: its ``/health`` is the upstream's, which is what ``spawn``
checks (the pipe is up once a request passes through it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket

import uvloop


class Upstream(asyncio.Protocol):
    """The pipe's upstream side: bytes from the upstream go to the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client.upstream_ready(self)

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)

    def eof_received(self) -> bool | None:
        self.client.transport.close()  # flushes what is buffered, then closes
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()

    # The client asks: pause reading the upstream while its transport is full.
    def pause_writing(self) -> None:  # upstream's own buffer full: stop reading the client
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class Client(asyncio.Protocol):
    """The pipe's client side: opens the upstream connection, forwards the request."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream_addr = upstream
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.up: Upstream | None = None
        self.pending: list[bytes] = []  # client bytes read before the upstream connected
        self.eof = False  # the client half-closed before the upstream connected
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.create_connection(lambda: Upstream(self), *self.upstream_addr))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[object]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.transport.close()

    def upstream_ready(self, up: Upstream) -> None:
        self.up = up
        if self.closed:
            up.transport.close()  # type: ignore[union-attr]
            return
        sock = up.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for data in self.pending:
            up.transport.write(data)  # type: ignore[union-attr]
        self.pending.clear()
        if self.eof:
            self.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.up is None:
            self.pending.append(data)
        else:
            self.up.transport.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.up is not None and self.up.transport is not None and self.up.transport.can_write_eof():
            self.up.transport.write_eof()  # half-close: the answer may still come
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()

    # Flow control: the client's transport is above its high-water mark.
    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()


async def serve(port: int, upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream), "127.0.0.1", port, backlog=4096)
    async with server:
        await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="host:port of the upstream, e.g. 127.0.0.1:9000")
    args = p.parse_args()
    host, _, port = args.upstream.removeprefix("http://").rstrip("/").rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port, (host, int(port))))


if __name__ == "__main__":
    main()
