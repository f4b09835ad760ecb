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


async def stream(target: Target, chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """The upstream's event stream as OpenAI chunk frames: framed, then translated; what
    the translator holds at the end (Gemini has no closing event) comes out at EOF."""
    created = int(time.time())
    tr: anthropic.ChatStream | gemini.ChatStream
    if target.provider.dialect == "anthropic":
        tr = anthropic.ChatStream(created=created)
    else:
        tr = gemini.ChatStream(model=target.model, created=created)
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
