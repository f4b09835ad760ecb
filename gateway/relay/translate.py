"""Where a provider speaks another dialect than the client: the OpenAI request, answer,
error and stream translated on the way (``providers.anthropic``, ``providers.gemini``).

OpenAI-dialect and mock providers take none of this: their bodies pass as bytes. For the
others, the translated answer is an OpenAI one, so accounting, ``usage.cost`` and
``extra_fields`` work on it exactly as on a native answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

from gateway.providers import anthropic, gemini
from gateway.relay.sse import Framer
from gateway.routing.table import Target

TRANSLATED = frozenset({"anthropic", "gemini"})
# An error event the upstream itself sent mid-stream (not bytes the gateway could not read).
STREAM_ERRORS = (anthropic.StreamError, gemini.StreamError)


def request(target: Target, body: bytes) -> bytes:
    """The client's OpenAI chat request in the target's dialect (InvalidRequest when it
    asks for what the dialect cannot do)."""
    if target.provider.dialect == "anthropic":
        return anthropic.chat_request(body, model=target.model)
    return gemini.chat_request(body)


def answer(target: Target, data: bytes) -> bytes:
    """A 2xx answer in the target's dialect as an OpenAI chat.completion."""
    if target.provider.dialect == "anthropic":
        return anthropic.chat_response(data, created=int(time.time()))
    return gemini.chat_response(data, model=target.model, created=int(time.time()))


def error(target: Target, status: int, data: bytes) -> bytes:
    """An error answer in the target's dialect as an OpenAI error body."""
    if target.provider.dialect == "anthropic":
        return anthropic.error_body(status, data)
    return gemini.error_body(status, data)


def chat_stream(target: Target) -> anthropic.ChatStream | gemini.ChatStream:
    """A translator of the target's event frames into OpenAI chunk frames."""
    created = int(time.time())
    if target.provider.dialect == "anthropic":
        return anthropic.ChatStream(created=created)
    return gemini.ChatStream(model=target.model, created=created)


async def stream(target: Target, chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """The upstream's event stream as OpenAI chunk frames: framed, then translated; what
    the translator holds at the end (Gemini has no closing event) comes out at EOF."""
    tr = chat_stream(target)
    frame, feed = Framer().feed, tr.feed
    try:
        async for data in chunks:
            frames = frame(data)
            if frames:
                out = feed(frames)
                if out:
                    yield out
        tail = tr.close()
        if tail:
            yield tail
    finally:
        await chunks.aclose()


# The client side, at an SDK drop-in route: the pipeline's OpenAI answer, stream and
# error back into the client's own dialect.


def client_answer(client: str, data: bytes) -> bytes:
    if client == "anthropic":
        return anthropic.messages_response(data)
    return gemini.generate_response(data)


def client_stream(client: str) -> anthropic.MessagesStream | gemini.GenerateStream:
    """Feed it whole OpenAI frames (``data: [DONE]`` included); it returns the client's."""
    if client == "anthropic":
        return anthropic.MessagesStream()
    return gemini.GenerateStream()
