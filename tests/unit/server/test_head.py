"""server.head against aiohttp's own request parser (the C one where it is built): which
repeated headers are served, how a refused head is re-read, and what a malformed
request's detail says (never a client's header value)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, InvalidURLError, LineTooLong

from gateway.server.head import HARMLESS_REPEATS, MAX_DETAIL_CHARS, FirstHead, drop_repeats, malformed_detail

SECRET = "sk-live-0123456789abcdef"


async def _never(request: web.BaseRequest) -> web.StreamResponse:
    raise AssertionError("not called")


class _Conn(web.RequestHandler):
    """A connection's protocol, as the gateway's makes it: its parser in a FirstHead."""

    __slots__ = ("auto_decompress",)

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(manager, loop=loop)
        self.auto_decompress = True
        self._parser = FirstHead(self, self._parser)  # type: ignore[assignment]


@pytest.fixture
def conn() -> Iterator[_Conn]:
    loop = asyncio.new_event_loop()
    try:
        yield _Conn(web.Server(_never, loop=loop), loop=loop)
    finally:
        loop.close()


def feed(conn: _Conn, *packets: bytes) -> list[Any]:
    messages: list[Any] = []
    for packet in packets:
        parser: Any = conn._parser
        messages += parser.feed_data(packet)[0]
    return messages


HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
BODY = b'{"model":"mock/m"}'


def test_head_repeated_user_agent_is_read_with_the_first_kept(conn: _Conn) -> None:
    # As google-genai sends it: two names differing in case, two values.
    raw = HEAD + b"User-Agent: a/1\r\nuser-agent: b/2\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    ((msg, payload),) = feed(conn, raw)
    assert msg.headers.getall("User-Agent") == ["a/1"]
    assert msg.should_close  # where the next request begins is not known for certain
    assert payload.read_nowait() == BODY
    assert not isinstance(conn._parser, FirstHead)


def test_head_repeats_in_a_head_of_many_packets_with_its_end_after_the_refusal(conn: _Conn) -> None:
    raw = HEAD + b"User-Agent: a\r\nContent-Type: x\r\nUser-Agent: b\r\nContent-Type: y\r\nX-A: 1\r\n\r\n"
    packets = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    ((msg, _),) = feed(conn, *packets)
    assert (msg.headers.getall("User-Agent"), msg.headers.getall("Content-Type")) == (["a"], ["x"])
    assert msg.headers["X-A"] == "1"


@pytest.mark.parametrize(
    "lines",
    [
        b"Host: y\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"User-Agent: a\r\nUser-Agent: b\r\nHost: y\r\n",  # a harmless repeat hides no other
    ],
    ids=["host", "content-length-differing", "content-length-equal", "transfer-encoding", "ua-and-host"],
)
def test_head_repeats_that_matter_are_refused(conn: _Conn, lines: bytes) -> None:
    # Refused by aiohttp's singleton rule or by llhttp itself (Content-Length, chunked twice).
    with pytest.raises(BadHttpMessage, match=r"(?i)duplicate|transfer-encoding"):
        feed(conn, HEAD + lines + b"\r\n")


def test_head_only_a_connections_first_head_is_read_again(conn: _Conn) -> None:
    (first,) = feed(conn, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not first[0].should_close
    with pytest.raises(BadHttpMessage, match="Duplicate 'User-Agent'"):
        feed(conn, b"GET /b HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n")


def test_head_drop_repeats_keeps_the_first_and_everything_else() -> None:
    head = b"GET / HTTP/1.1\r\nUser-Agent: a\r\nX: 1\r\nUSER-AGENT: b\r\nX: 2\r\nHost: h"
    assert drop_repeats(head) == b"GET / HTTP/1.1\r\nUser-Agent: a\r\nX: 1\r\nX: 2\r\nHost: h"
    assert b"host" not in HARMLESS_REPEATS and b"content-length" not in HARMLESS_REPEATS
    assert b"transfer-encoding" not in HARMLESS_REPEATS


def _refusal(conn: _Conn, raw: bytes) -> BaseException:
    with pytest.raises(BadHttpMessage) as info:
        feed(conn, raw)
    return info.value


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"\x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"\x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"x" * 9000 + b"\r\n\r\n",
        b"GET /?key=" + SECRET.encode() + b" HTTP/1.1 x\r\nHost: x\r\n\r\n",
        b"GET /?key=" + SECRET.encode() + b"\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["control-char", "nul", "too-long", "bad-version", "bad-target"],
)
def test_head_malformed_detail_quotes_no_client_bytes(conn: _Conn, raw: bytes) -> None:
    exc = _refusal(conn, raw)
    assert SECRET[:8] in str(exc)  # aiohttp's own message quotes it
    detail = malformed_detail(exc)
    assert detail and "sk-" not in detail and "\n" not in detail, detail
    assert len(detail) <= MAX_DETAIL_CHARS


def test_head_malformed_detail_names_the_header_and_the_repeat(conn: _Conn) -> None:
    exc = _refusal(conn, b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"\x01\r\n\r\n")
    assert malformed_detail(exc) == "Invalid header value char (header Authorization)"
    assert malformed_detail(BadHttpMessage("Duplicate 'Host' header found.")) == "Duplicate 'Host' header found"
    assert malformed_detail(BadHttpMessage("Missing 'Host' header in request.")) == "Missing 'Host' header in request"
    assert malformed_detail(InvalidURLError("http:" + SECRET)) == "invalid request target"
    llhttp = "Transfer-Encoding can't be present with Content-Length"
    assert malformed_detail(BadHttpMessage(llhttp + ":\n\n  b'x'\n  ^")) == llhttp
    # A value too long is quoted without its name: a "name:" in it must not be taken for one.
    assert malformed_detail(LineTooLong(b"user:" + SECRET.encode(), 8190)) == "Got more than 8190 bytes when reading"
