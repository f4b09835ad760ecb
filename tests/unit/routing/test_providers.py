"""gateway.routing.providers: the in-process mock provider's replies."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import msgspec
import pytest

from gateway.accounting.pricing import Pricing
from gateway.config import ProviderConfig
from gateway.relay.stream import is_event_stream
from gateway.routing.providers import Provider
from gateway.upstream.mock import MockTransport


def content_type(*, stream: bool, **mock: Any) -> str | None:
    cfg = msgspec.convert({"dialect": "mock"}, ProviderConfig)
    provider = Provider("mock", cfg, pricing=cast(Pricing, None), transport=MockTransport(cfg))  # pricing is only kept
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "mock": mock})

    async def send() -> str | None:
        reply = await provider.send("chat", body.encode(), stream=stream, timeouts=None)
        reply.close()
        return reply.content_type

    return asyncio.run(send())


def test_mock_reply_declares_its_content_type() -> None:
    assert content_type(stream=True) == "text/event-stream"
    assert content_type(stream=False) == "application/json"
    assert content_type(stream=True, fail_status=429) == "application/json"  # an error body, not a stream


@pytest.mark.parametrize(
    ("declared", "relayed"),
    [
        ("text/event-stream", True),
        ("Text/Event-Stream; charset=utf-8", True),
        (None, True),  # nothing declared: the framer judges the bytes
        ("application/json", False),
        ("text/json", False),
        ("text/html; charset=utf-8", False),
        ("", False),
    ],
)
def test_is_event_stream(declared: str | None, relayed: bool) -> None:
    assert is_event_stream(declared) is relayed
