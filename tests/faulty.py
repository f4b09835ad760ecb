"""A faulty upstream of the test suite's own: a raw HTTP/1.1 server on 127.0.0.1 whose
answers are scripted, byte for byte, per scenario.

The first segment of the request path names the scenario, so one server plays many
broken upstreams at once: a gateway provider with ``base_url: {faulty.url("trickle")}/v1``
reaches the ``trickle`` script. A script gets the parsed request and the connection's
writer and may do anything an upstream can: send a partial head, trickle bytes, send no
framing and close, reset, or go silent. After it returns, the connection is read for the
next request unless the script closed it.

It runs an asyncio loop in a background thread of the test process; the gateway under
test is a separate process and reaches it over a real socket.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import msgspec

from tests.loopserver import LoopServer


class Request(NamedTuple):
    method: str
    path: str  # without the scenario segment: "/v1/chat/completions"
    headers: dict[str, str]  # lower-case names
    body: bytes


Script = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


class FaultyUpstream(LoopServer):
    """``up.scripts[name] = script``; ``up.url(name)`` is that scenario's base URL."""

    name = "faulty-upstream"

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        # With TLS it is reached as https://localhost (the name its certificate carries).
        super().__init__(ssl_context=ssl_context)
        self.scripts: dict[str, Script] = {}
        self.requests: list[tuple[str, Request]] = []  # (scenario, request), in arrival order
        self.connections = 0
        self.start()

    def url(self, scenario: str) -> str:
        if self._ssl is not None:
            return f"https://localhost:{self.port}/{scenario}"
        return f"http://127.0.0.1:{self.port}/{scenario}"

    def on(self, name: str) -> Callable[[Script], Script]:
        """Decorator: ``@up.on("reset") async def _(req, w): ...``."""

        def register(script: Script) -> Script:
            self.scripts[name] = script
            return script

        return register

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while not writer.is_closing():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                line, *fields = head[:-4].decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ", 2)
                headers = {}
                for field in fields:
                    name, _, value = field.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                _, scenario, rest = target.split("/", 2) if target.count("/") >= 2 else ("", target[1:], "")
                request = Request(method, "/" + rest, headers, body)
                self.requests.append((scenario, request))
                script = self.scripts.get(scenario)
                if script is None:
                    await respond(writer, 404, b'{"error":{"message":"no such scenario"}}')
                    continue
                await script(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()


# What scripts send.

COMPLETION = msgspec.json.encode(
    {
        "id": "chatcmpl-faulty",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)


def chunk_frame(content: str, *, finish: str | None = None) -> bytes:
    """One OpenAI stream chunk as an SSE frame."""
    delta = {"content": content} if finish is None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    obj = {"id": "chatcmpl-faulty", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


USAGE_FRAME = (
    b'data: {"id":"chatcmpl-faulty","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
)
DONE = b"data: [DONE]\n\n"
STREAM = chunk_frame("o") + chunk_frame("k") + chunk_frame("", finish="stop") + USAGE_FRAME + DONE


def head(status: int = 200, *, content_type: str = "application/json", extra: str = "", length: int | None) -> bytes:
    """A response head; ``length`` None: no framing header at all (close-delimited)."""
    framing = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{framing}{extra}\r\n".encode("latin-1")


async def respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, *, content_type: str = "application/json", extra: str = ""
) -> None:
    """A whole Content-Length answer, keep-alive."""
    writer.write(head(status, content_type=content_type, extra=extra, length=len(body)) + body)
    await writer.drain()


async def respond_chunked(writer: asyncio.StreamWriter, parts: list[bytes], *, gap_s: float = 0.0) -> None:
    """A chunked event stream, one HTTP chunk per part, ``gap_s`` apart."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for part in parts:
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        await writer.drain()
        if gap_s:
            await asyncio.sleep(gap_s)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
