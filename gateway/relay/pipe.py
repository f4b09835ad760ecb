"""A stream's body, upstream to client, without a coroutine per read.

The relay's ``step`` (frame, watch, translate: ``relay.stream``, ``relay.native``) turns
each upstream read into the bytes for the client, which ``ClientPipe.write`` hands to
the client's transport at once. From a pooled upstream (``upstream.poolreply``) the
step runs inside the upstream connection's ``data_received``: no future resolved, no
task woken, no ``StreamResponse.write`` per read. The relay's coroutine sleeps until
the body ends, fails, or the client's transport is full: then reading the upstream
is held (its socket is not read) until the client's buffer drains. Any other reply
(``client: aiohttp``, the in-process mock) is read by the coroutine, with the same step
and the same hold.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from gateway.upstream.client import Reply
from gateway.upstream.poolreply import PoolReply

Step = Callable[[bytes], None]


class ClientPipe:
    """The client's side of a prepared stream response: what is written goes to its
    transport now, as the response's own writer would (chunked or not)."""

    __slots__ = ("_chunked", "_protocol", "_transport", "_writer")

    def __init__(self, request: web.BaseRequest) -> None:
        writer = request.writer
        writer.send_headers()  # aiohttp holds them back to coalesce with a first write
        self._writer = writer
        self._protocol = request.protocol
        self._transport = request.transport
        self._chunked: bool = getattr(writer, "chunked", True)  # StreamWriter's; HTTP/1.0: False

    def write(self, data: bytes) -> None:
        """``data`` to the client; a client gone is a ConnectionError (as aiohttp raises)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed its connection")
        self._writer.output_size += len(data)
        transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)

    def writable(self) -> bool:
        """False while the client's transport is over its high-water mark."""
        return not self._protocol.writing_paused

    async def drain(self) -> None:
        await self._writer.drain()


async def pump(reply: Reply, chunks: AsyncGenerator[bytes, None], step: Step, pipe: ClientPipe) -> None:
    """Every further read of ``reply`` through ``step`` until the body ends; raises what
    ended it otherwise (the upstream's error, what ``step`` raised)."""
    if isinstance(reply, PoolReply):
        reply.divert(step, pipe.writable)
        while not await reply.settled():
            await pipe.drain()
            reply.release()
        return
    async for chunk in chunks:
        step(chunk)
        if not pipe.writable():
            await pipe.drain()
