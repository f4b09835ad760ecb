"""The private parts of aiohttp the server relies on, one test each: an aiohttp upgrade
that renames or repurposes one fails here, by name, before it fails in production.
Everything else the server uses is aiohttp's public API (``aiohttp.web``,
``aiohttp.http``, ``aiohttp.abc``, ``web.Server(request_factory=...)``)."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import HttpProcessingError, HttpRequestParser, HttpVersion10, RawRequestMessage
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import ERROR
from multidict import CIMultiDict

from gateway.server.answer import Answer


async def _never(request: web.BaseRequest) -> web.StreamResponse:
    raise AssertionError("not called")


@pytest.fixture
def handler() -> Iterator[web.RequestHandler]:
    """A connection's protocol, as web.Server makes it, not yet connected."""
    loop = asyncio.new_event_loop()
    try:
        yield web.RequestHandler(web.Server(_never, loop=loop), loop=loop)
    finally:
        loop.close()


def _source(fn: object) -> str:
    return inspect.getsource(fn)  # type: ignore[arg-type]


def test_pin_request_count_counts_parsed_heads(handler: web.RequestHandler) -> None:
    # server.protocol's head timer: a head is complete when data_received raised the count.
    assert handler._request_count == 0
    assert "self._request_count += 1" in _source(web.RequestHandler.data_received)


def test_pin_waiter_is_the_wait_for_the_next_request(handler: web.RequestHandler) -> None:
    # server.protocol's head timer: a pending _waiter means the connection is between requests.
    assert handler._waiter is None
    waits = r"self\._waiter = loop\.create_future\(\)\s+await self\._waiter"
    assert re.search(waits, _source(web.RequestHandler.start))


def test_pin_close_flag_set_by_close(handler: web.RequestHandler) -> None:
    # server.protocol's head timer starts no timer on a connection already closing.
    assert handler._close is False
    handler.close()
    assert handler._close is True


def test_pin_force_close_flag_set_by_force_close(handler: web.RequestHandler) -> None:
    # server.protocol: no timer and no 408 on a connection already being cut.
    assert handler._force_close is False
    handler.force_close()
    assert handler._force_close is True


def test_pin_current_request_is_the_request_being_handled(handler: web.RequestHandler) -> None:
    # server.app: a reload waits for the requests running on the old routes; a shutdown
    # ends the handlers of connections with a request.
    assert handler._current_request is None
    source = _source(web.RequestHandler._handle_request)
    assert "self._current_request = request" in source
    assert "self._current_request = None" in source


def test_pin_task_handler_is_the_connections_task(handler: web.RequestHandler) -> None:
    # server.app's shutdown cancels it (with a message) to end a request past the grace.
    assert handler._task_handler is None
    assert "self._task_handler = task" in _source(web.RequestHandler.connection_made)


def test_pin_request_in_progress_flag(handler: web.RequestHandler) -> None:
    # server.protocol.Server.in_flight: the drain waits while a connection has a request.
    assert handler._request_in_progress is False
    source = _source(web.RequestHandler._handle_request)
    assert "self._request_in_progress = True" in source
    assert "self._request_in_progress = False" in source


def test_pin_prepare_hook_is_called_by_every_prepare() -> None:
    # server.access.GatewayRequest: the one per-response hook of the low-level server
    # (x-request-id on every answer, Connection: close after a given-up body).
    hook = web.BaseRequest._prepare_hook
    assert inspect.iscoroutinefunction(hook)
    assert list(inspect.signature(hook).parameters) == ["self", "response"]
    assert "await request._prepare_hook(self)" in _source(web.StreamResponse._start)


def test_pin_error_message_stands_in_for_an_unparsed_request() -> None:
    # server.protocol.Server._request answers it on HTTP/1.1, not ERROR's HTTP/1.0.
    assert isinstance(ERROR, RawRequestMessage)
    assert ERROR.version == HttpVersion10
    assert "message = ERROR" in _source(web.RequestHandler.start)


def test_pin_parser_is_what_data_received_feeds(handler: web.RequestHandler) -> None:
    # server.head.FirstHead stands in for a connection's parser (BaseProtocol's _parser)
    # until its first head is parsed, and puts a new one there.
    assert isinstance(handler._parser, HttpRequestParser)
    assert "self._parser.feed_data(data)" in _source(web.RequestHandler.data_received)


def test_pin_request_parser_arguments(handler: web.RequestHandler) -> None:
    # server.head.new_parser builds one as RequestHandler.__init__ does, from what it kept.
    source = _source(web.RequestHandler.__init__)
    call = re.search(r"parser = HttpRequestParser\((.*?)\n        \)", source, re.S)
    assert call is not None
    args = [a.strip() for a in call[1].split(",") if a.strip()]
    assert args == [
        "self",
        "loop",
        "read_bufsize",
        "max_line_size=max_line_size",
        "max_field_size=max_field_size",
        "max_headers=max_headers",
        "payload_exception=RequestPayloadError",
        "auto_decompress=auto_decompress",
        "max_msg_queue_size=MAX_MSG_QUEUE_SIZE",
    ]
    assert "self._read_bufsize = read_bufsize" in source
    assert "self._max_msg_queue_size = MAX_MSG_QUEUE_SIZE" in source
    assert handler._loop is not None and handler._read_bufsize > 0 and handler._max_msg_queue_size > 0


@pytest.mark.parametrize("parser_class", [HttpRequestParser, HttpRequestParserPy], ids=["c", "python"])
def test_pin_repeated_singleton_refusal_message(handler: web.RequestHandler, parser_class: type) -> None:
    # server.head.repeated_harmless recognises the refusal by its message; the C parser
    # is the one in use where it is built.
    parser = parser_class(handler, handler._loop, 2**16)
    with pytest.raises(BadHttpMessage) as info:
        parser.feed_data(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\nuser-agent: b\r\n\r\n")
    # (the C parser names the header as aiohttp spells it, the Python one as sent)
    assert info.value.message.lower() == "duplicate 'user-agent' header found."


def test_pin_content_encoding_error() -> None:
    # server.protocol and server.body: a body aiohttp cannot inflate is a 415, not a 400.
    assert issubclass(ContentEncodingError, HttpProcessingError)
    assert ContentEncodingError("brotli (br)").message == "brotli (br)"


def test_pin_rfc822_formatted_time_is_cached_text() -> None:
    # server.answer's Date header: aiohttp's clock text, the same object within a second.
    text = rfc822_formatted_time()
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", text)
    assert any(rfc822_formatted_time() is rfc822_formatted_time() for _ in range(3))


def test_answer_has_what_stream_response_init_sets() -> None:
    """Answer skips StreamResponse.__init__ (its cost is per request): every attribute
    that initialiser sets must still be readable on an Answer, and read right."""
    fresh = web.StreamResponse()
    answer = Answer(b"Content-Type: application/json\r\nx-provider: mock\r\n", b"{}")
    for name, value in vars(fresh).items():
        assert isinstance(getattr(answer, name), type(value)), name
    assert (answer.status, answer.reason, answer.keep_alive, answer.body) == (200, "OK", True, b"{}")
    assert answer.headers == CIMultiDict({"Content-Type": "application/json", "x-provider": "mock"})
    assert answer.content_type == "application/json"
    assert not answer.prepared
    note = web.ResponseKey("note", int)
    answer[note] = 1  # a response is a mapping too
    assert answer[note] == 1 and len(answer) == 1


def test_stream_writer_parts_the_client_pipe_uses(handler: web.RequestHandler) -> None:
    """``relay.pipe.ClientPipe`` writes a prepared stream's body to the transport itself:
    it needs the writer's ``send_headers`` (headers held back to coalesce), its
    ``chunked`` flag and ``output_size`` count, and the protocol's ``writing_paused``."""
    from aiohttp.http_writer import StreamWriter

    loop = asyncio.new_event_loop()
    try:
        writer = StreamWriter(handler, loop)
        assert callable(writer.send_headers) and writer.chunked is False and writer.output_size == 0
        writer.enable_chunking()
        assert writer.chunked is True
    finally:
        loop.close()
    assert handler.writing_paused is False
    handler.pause_writing()
    assert handler.writing_paused is True
