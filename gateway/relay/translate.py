"""Where a provider speaks another dialect than the client: the OpenAI request, answer,
error and stream translated on the way by the dialect's ``translator``
(``providers.dialect``; ``providers.anthropic``, ``providers.gemini``).

OpenAI-dialect and mock providers take none of this: their bodies pass as bytes. For the
others, the translated answer is an OpenAI one, so accounting, ``usage.cost`` and
``extra_fields`` work on it exactly as on a native answer.
"""

from __future__ import annotations

import time

from gateway.providers.dialect import ChatStream, Dialect, FrameTranslator, Translator
from gateway.providers.registry import DIALECTS
from gateway.relay.sse import Framer
from gateway.routing.table import Target

# An error event the upstream itself sent mid-stream (not bytes the gateway could not read).
STREAM_ERRORS = tuple(d.translator.stream_error for d in DIALECTS.values() if d.translator is not None)


def _translator(target: Target) -> Translator:
    tr = target.provider.wire.translator
    assert tr is not None, "only a translated provider's requests come here"
    return tr


def request(target: Target, body: bytes) -> bytes:
    """The client's OpenAI chat request in the target's dialect (InvalidRequest when it
    asks for what the dialect cannot do)."""
    return _translator(target).chat_request(body, model=target.model)


def answer(target: Target, data: bytes) -> bytes:
    """A 2xx answer in the target's dialect as an OpenAI chat.completion."""
    return _translator(target).chat_response(data, model=target.model, created=int(time.time()))


def error(target: Target, status: int, data: bytes) -> bytes:
    """An error answer in the target's dialect as an OpenAI error body."""
    return _translator(target).error_body(status, data)


def chat_stream(target: Target) -> ChatStream:
    """A translator of the target's event frames into OpenAI chunk frames."""
    return _translator(target).chat_stream(model=target.model, created=int(time.time()))


class UpstreamStream:
    """The upstream's event stream as OpenAI chunk frames, read by read: framed, then
    translated; what the translator holds at the end (Gemini has no closing event)
    comes out of ``close``."""

    __slots__ = ("_feed", "_frame", "close")

    def __init__(self, target: Target) -> None:
        tr = chat_stream(target)
        self._frame, self._feed, self.close = Framer().feed, tr.feed, tr.close

    def feed(self, data: bytes) -> bytes:
        frames = self._frame(data)
        return self._feed(frames) if frames else b""


# The client side, at an SDK drop-in route: the pipeline's OpenAI answer, stream and
# error back into the client's own dialect.


def client_answer(client: Dialect, data: bytes, *, request: bytes) -> bytes:
    """``request``: the client's own body (``Call.client_body``)."""
    inbound = client.inbound
    assert inbound is not None, "only a dialect with SDK routes is a client"
    return inbound.answer(data, request=request)


def client_stream(client: Dialect, *, request: bytes) -> FrameTranslator:
    """Feed it whole OpenAI frames (``data: [DONE]`` included); it returns the client's."""
    inbound = client.inbound
    assert inbound is not None, "only a dialect with SDK routes is a client"
    return inbound.stream(request=request)
