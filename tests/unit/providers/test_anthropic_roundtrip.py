"""gateway.providers.anthropic: through the dialect and back keeps the meaning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from gateway.codec import decode_chat
from gateway.providers import anthropic
from gateway.relay.sse import split

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
EVENT = TypeAdapter(RawMessageStreamEvent)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def normal(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI request with equivalent spellings made one: string content as one text
    part, arguments parsed, the stream's usage request (the inbound side adds it) dropped."""
    out = {k: v for k, v in body.items() if k not in ("stream_options", "model")}
    messages = []
    for m in body["messages"]:
        m = dict(m)
        if isinstance(m.get("content"), str):
            m["content"] = [{"type": "text", "text": m["content"]}]
        for call in m.get("tool_calls", []):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"] or "{}")
        messages.append(m)
    out["messages"] = messages
    return out


def there_and_back(body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    decode_chat(raw)
    upstream = anthropic.chat_request(raw, model="claude-sonnet-4-5")
    back, model, stream = anthropic.messages_request(upstream)
    decode_chat(back)
    assert model == "claude-sonnet-4-5"
    assert stream is bool(body.get("stream"))
    out: dict[str, Any] = json.loads(back)
    return out


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Name three primes."},
            {"role": "assistant", "content": "2, 3, 5."},
            {"role": "user", "content": "Three more."},
        ],
        "max_completion_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
        "user": "user-7",
        "stream": True,
    },
    "tools": {
        "model": "claude",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning": "Two cities, two calls.",
                "reasoning_signature": "c2lnbmF0dXJl",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "24C"},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "max_completion_tokens": 300,
    },
    "images_and_schema": {
        "model": "claude",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe both."},
                    {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
        },
        "reasoning_effort": "medium",
        "tools": [TOOL],
        "tool_choice": "required",
        "max_completion_tokens": 20000,
    },
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_roundtrip_chat_request_keeps_its_meaning(name: str) -> None:
    body = REQUESTS[name]
    assert normal(there_and_back(body)) == normal(body)


def test_roundtrip_messages_request_keeps_its_meaning() -> None:
    original = json.loads(fixture("messages_request_tools.json"))
    chat, _, _ = anthropic.messages_request(json.dumps(original).encode())
    again = json.loads(anthropic.chat_request(chat, model=original["model"]))
    # The system's cache_control has no OpenAI field to ride on; the rest survives.
    del original["system"][0]["cache_control"]
    again_system = again.pop("system")
    assert [again_system] == [b["text"] for b in original.pop("system")]
    assert again == original


@pytest.mark.parametrize("name", ["message_text.json", "message_tool_use.json"])
def test_roundtrip_message_answer_keeps_its_meaning(name: str) -> None:
    original = json.loads(fixture(name))
    back = json.loads(anthropic.messages_response(anthropic.chat_response(fixture(name), created=1)))
    for key in ("id", "model", "role", "stop_reason", "content"):
        assert back[key] == original[key]
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        assert back["usage"][key] == original["usage"][key]


def accumulate(sse: bytes) -> Any:
    snapshot = None
    bufs: dict[int, bytes] = {}
    for frame in split(sse):
        body = json.loads(frame[frame.index(b"data: ") + 6 : -2])
        if body["type"] == "ping":
            continue
        event = EVENT.validate_python(body)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_use.sse", "stream_thinking.sse"])
def test_roundtrip_stream_keeps_its_meaning(name: str) -> None:
    sse = fixture(name)
    openai = anthropic.ChatStream(created=1)
    events = anthropic.MessagesStream()
    back = b"".join(events.feed(openai.feed(frame)) for frame in split(sse))
    original, again = accumulate(sse), accumulate(back)
    assert again.id == original.id
    assert again.model == original.model
    assert again.stop_reason == original.stop_reason
    assert [b.to_dict() for b in again.content] == [b.to_dict() for b in original.content]
    assert again.usage.input_tokens == original.usage.input_tokens
    assert again.usage.output_tokens == original.usage.output_tokens
    assert (again.usage.cache_read_input_tokens or 0) == (original.usage.cache_read_input_tokens or 0)
