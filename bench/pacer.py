"""A lean paced upstream for stream capacity runs: the mock's streams, at a fraction of its CPU.

``gateway mock`` paces each stream with a coroutine (one task wake-up and one aiohttp
write per token); carrying 1,500 paced streams it needs most of a core by itself, so on
a two-core machine the mock and the load client saturate their core before the server
under test does. This server answers ``POST .../chat/completions`` with the same frames
the mock streams (role chunk, ``--tokens`` content chunks, the finish chunk, the usage
chunk, ``[DONE]``; HTTP/1.1 chunked, keep-alive) from an asyncio Protocol: the frames
are built once, each stream is one object whose next write is one ``call_at`` timer, and
a write is one ``transport.write`` of prebuilt bytes. ``"mock": {"tokens", "itl_ms"}``
in the request body sets a stream's length and pace, as with the mock (``--tokens``,
``--itl-ms``: for a request without it, as a peer gateway that drops unknown fields sends). Anything else
(``GET /health`` included) is answered 200 ``{}``. ``Connection: close`` is honoured. Not a product: a bench instrument.

    .venv/bin/python -m bench.pacer --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket

import uvloop

_CHUNK = (
    b'data: {"id":"chatcmpl-pacer","object":"chat.completion.chunk","created":1796400000,"model":"gpt-x",'
    b'"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n'
)
_USAGE = (
    b'data: {"id":"chatcmpl-pacer","object":"chat.completion.chunk","created":1796400000,"model":"gpt-x",'
    b'"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}\n\n'
)
_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_TOKENS = re.compile(rb'"tokens"\s*:\s*(\d+)')
_ITL = re.compile(rb'"itl_ms"\s*:\s*([0-9.]+)')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


DEFAULTS = [20, 0.0]  # tokens, seconds between them: for a request without a "mock" field


def chunked(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)


ROLE = chunked(_CHUNK % (b'{"role":"assistant","content":""}', b"null"))
# Two token texts of one length, alternating: LiteLLM ends a stream with an error after 100
# identical content chunks in a row (its guard against a model stuck in a loop).
TOKENS = (chunked(_CHUNK % (b'{"content":" token"}', b"null")), chunked(_CHUNK % (b'{"content":" Token"}', b"null")))
FINISH = chunked(_CHUNK % (b"{}", b'"stop"'))
DONE = chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"


class Upstream(asyncio.Protocol):
    """One client connection: requests parsed by hand, one stream at a time."""

    __slots__ = ("buf", "close", "itl", "left", "loop", "next", "timer", "tokens", "transport")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.left = self.tokens = 0
        self.close = False
        self.itl = self.next = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.timer is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            m = _LENGTH.search(head)
            size = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + size:
                return
            body, self.buf = self.buf[end + 4 : end + 4 + size], self.buf[end + 4 + size :]
            self.close = _CLOSE.search(head) is not None
            if head.startswith(b"POST") and b"/chat/completions" in head.split(b"\r\n", 1)[0]:
                self.start(body)
            else:
                self.transport.write(_OK)  # type: ignore[union-attr]

    def start(self, body: bytes) -> None:
        tokens, itl = _TOKENS.search(body), _ITL.search(body)
        self.tokens = self.left = int(tokens.group(1) if tokens else DEFAULTS[0])
        self.itl = float(itl.group(1)) / 1000 if itl else DEFAULTS[1]
        self.transport.write(_HEAD + ROLE)  # type: ignore[union-attr]
        self.next = self.loop.time() + self.itl
        self.timer = self.loop.call_at(self.next, self.tick)

    def tick(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.timer = None
            return
        if self.left:
            self.left -= 1
            transport.write(TOKENS[self.left & 1])
            self.next += self.itl
            self.timer = self.loop.call_at(self.next, self.tick)
            return
        n = self.tokens
        transport.write(FINISH + chunked(_USAGE % (8, n, 8 + n)) + DONE)
        self.timer = None
        if self.close:
            transport.close()
        elif self.buf:
            self.data_received(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096, reuse_address=True)
    for sock in server.sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tokens", type=int, default=20, help='tokens a stream, without a "mock" field (default 20)')
    p.add_argument("--itl-ms", type=float, default=0.0, help='ms between tokens, without a "mock" field (default 0)')
    args = p.parse_args()
    DEFAULTS[:] = [args.tokens, args.itl_ms / 1000]
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
