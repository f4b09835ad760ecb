"""A stream's body, upstream to client, without a coroutine per read.

A stream's ``step`` (``relay_regions``: the framer, then the relay's region function,
``relay.stream``'s watch and translation or ``relay.native``'s) turns each upstream read
into the bytes for the client, which ``ClientPipe.write`` hands to
the client's transport at once. From a pooled upstream (``upstream.poolreply``) the
step runs inside the upstream connection's ``data_received``: no future resolved, no
task woken, no ``StreamResponse.write`` per read. The relay's coroutine sleeps until
the body ends, fails, or the client's transport is full: then reading the upstream
is held (its socket is not read) until the client's buffer drains. Any other reply
(``client: aiohttp``, the in-process mock) is read by the coroutine, with the same step
and the same hold.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol

from aiohttp import web

from gateway.upstream.client import Reply
from gateway.upstream.poolreply import PoolReply

Step = Callable[[bytes], None]
# Bytes in, bytes out: a framer's feed (whole frames out), a relay's region function.
Bytes = Callable[[bytes], bytes]


class Failing(Protocol):
    """A stream's watch that may find the upstream's bytes bad (``relay.watch.StreamWatch``)."""

    @property
    def error(self) -> BaseException | None: ...


class Decoder(Protocol):
    """An upstream's event stream to OpenAI's chunk frames (``relay.translate.UpstreamStream``)."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


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


async def pump(
    reply: Reply,
    chunks: AsyncGenerator[bytes, None],
    step: Step,
    pipe: ClientPipe,
    *,
    end: Callable[[], None] | None = None,
) -> None:
    """Every further read of ``reply`` through ``step`` until the body ends, then ``end``;
    raises what ended it otherwise (the upstream's error, what ``step`` raised)."""
    if isinstance(reply, PoolReply):
        reply.divert(step, pipe.writable)
        while not await reply.settled():
            await pipe.drain()
            reply.release()
    else:
        async for chunk in chunks:
            step(chunk)
            if not pipe.writable():
                await pipe.drain()
    if end is not None:
        end()


def relay_regions(
    request: web.BaseRequest,
    reply: Reply,
    chunks: AsyncGenerator[bytes, None],
    *,
    feed: Bytes,
    region: Bytes,
    watch: Failing | None = None,
    decode: Decoder | None = None,
) -> Awaitable[None]:
    """The rest of ``reply``'s body to the client (its headers and first read sent):
    each read framed (``feed``, whole frames out), what it completes through ``region``
    (the relay's watch and translation: the bytes for the client), written at once
    (``ClientPipe``, ``pump``). ``watch`` (a chat stream's): its ``error``, once set,
    raised after the region that set it has gone out; with it ``region`` may answer
    nothing (b"", not written). Without one (a native stream's ``region`` passes every
    region on) its bytes are written unlooked at: never empty, as an empty write ends a
    chunked body. ``decode``: the upstream's dialect to OpenAI's
    frames, before the framer; what it holds at the end goes through last.

    The step is built here, once a stream: per read it is the framer, ``region`` and a
    write, nothing more (the per-chunk cost of every stream). ``pump``'s coroutine is
    returned, not awaited here: no coroutine frame more on each resumption."""
    pipe = ClientPipe(request)
    write = pipe.write
    if watch is None:

        def step(data: bytes) -> None:
            whole = feed(data)
            if whole:
                write(region(whole))

    else:
        failing = watch

        def step(data: bytes) -> None:
            whole = feed(data)
            if whole:
                out = region(whole)
                if out:
                    write(out)
            if failing.error is not None:
                raise failing.error

    if decode is None:
        return pump(reply, chunks, step, pipe)
    translated, close = decode.feed, decode.close

    def end() -> None:
        tail = close()  # Gemini's last chunk and [DONE] come out at EOF
        if tail:
            step(tail)

    return pump(reply, chunks, lambda data: step(translated(data)), pipe, end=end)
