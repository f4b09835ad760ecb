"""gateway.providers.anthropic, inbound: Anthropic SDK clients in front of the OpenAI pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from gateway.codec import decode_chat
from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import anthropic
from gateway.relay.sse import split

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
EVENT = TypeAdapter(RawMessageStreamEvent)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def translate(body: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
    raw, model, stream = anthropic.messages_request(json.dumps(body).encode())
    decode_chat(raw)  # the pipeline accepts what the translator makes
    out: dict[str, Any] = json.loads(raw)
    return out, model, stream


def msgs(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "max_tokens": 256,
        "messages": list(messages) or [{"role": "user", "content": "Hello, Claude"}],
        **fields,
    }


def refused(body: dict[str, Any] | bytes) -> InvalidRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(InvalidRequest) as info:
        anthropic.messages_request(raw)
    assert info.value.status == 400
    return info.value


# --- messages_request ---------------------------------------------------------------


def test_messages_request_maps_the_fixture() -> None:
    out, model, stream = translate(json.loads(fixture("messages_request_tools.json")))
    assert (model, stream) == ("claude-sonnet-4-5", False)
    assert out == {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are a weather assistant."}]},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                    {
                        "type": "text",
                        "text": "What is the weather like where this photo was taken? I think it's San Francisco.",
                    },
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "San Francisco, CA", "unit": "celsius"}',
                        },
                    }
                ],
                "reasoning": "The user wants the weather in San Francisco.",
                "reasoning_signature": SIGNATURE,
            },
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"role": "user", "content": [{"type": "text", "text": "And in Paris?"}]},
        ],
        "max_completion_tokens": 1024,
        "stop": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        },
                        "required": ["location"],
                    },
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }


def test_messages_request_stream_asks_for_usage() -> None:
    out, _, stream = translate(msgs(stream=True))
    assert stream is True
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_messages_request_minimal() -> None:
    out, model, stream = translate(msgs())
    assert (model, stream) == ("gpt-4o", False)
    assert out == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hello, Claude"}],
        "max_completion_tokens": 256,
    }


def test_messages_request_system_string_and_url_image() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    out, _, _ = translate(msgs({"role": "user", "content": [image]}, system="Be brief."))
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "f"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
    ],
)
def test_messages_request_tool_choice_variants(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    out, _, _ = translate(msgs(tools=tools, tool_choice=choice))
    assert {k: out[k] for k in expected} == expected
    assert out["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 8192}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 16384}}, "high"),
        ({"thinking": {"type": "enabled", "budget_tokens": 60000}}, "high"),
        ({"thinking": {"type": "disabled"}}, None),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, "xhigh"),
        ({"output_config": {"effort": "low"}}, "low"),
    ],
)
def test_messages_request_thinking_becomes_reasoning_effort(fields: dict[str, Any], effort: str | None) -> None:
    out, _, _ = translate(msgs(max_tokens=100_000, **fields))
    assert out.get("reasoning_effort") == effort


def test_messages_request_output_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out, _, _ = translate(msgs(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_messages_request_tool_result_error_and_images() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "is_error": True,
        "content": [
            {"type": "text", "text": "screenshot failed halfway"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ],
    }
    out, _, _ = translate(
        msgs(
            {"role": "user", "content": "Take a screenshot"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}]},
            {"role": "user", "content": [result]},
        )
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}],
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_1",
            "content": [{"type": "text", "text": "Error:"}, {"type": "text", "text": "screenshot failed halfway"}],
        },
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}],
        },
    ]


def test_messages_request_drops_redacted_thinking() -> None:
    out, _, _ = translate(
        msgs(
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [{"type": "redacted_thinking", "data": "EmwK"}, {"type": "text", "text": "Yo"}],
            },
        )
    )
    assert out["messages"][1] == {"role": "assistant", "content": "Yo"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": "many", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 1}, "messages"),
        ({"model": "m", "max_tokens": 1, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ],
)
def test_messages_request_validates_as_anthropic_does(body: dict[str, Any], param: str) -> None:
    assert refused(body).param == param


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (
            [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}],
            "messages[0].content[0].source.type",
        ),
        ([{"type": "document", "source": {"type": "file", "file_id": "f"}}], "messages[0].content[0].source.type"),
        ([{"type": "document", "source": {"type": "content", "content": "x"}}], "messages[0].content[0].source.type"),
        ([{"type": "document"}], "messages[0].content[0].source"),
        ([{"type": "document", "source": {"type": "text"}}], "messages[0].content[0].source.data"),
        ([{"type": "document", "source": {"type": "base64", "data": "x"}}], "messages[0].content[0].source.media_type"),
        ([{"type": "container_upload", "file_id": "f"}], "messages[0].content[0].type"),
        ([{"type": "text"}], "messages[0].content[0].text"),
        ([{"text": "no type"}], "messages[0].content[0].type"),
        ([{"type": "image"}], "messages[0].content[0].source"),
        ([{"type": "image", "source": {"type": "file", "file_id": "f"}}], "messages[0].content[0].source.type"),
        ([{"type": "image", "source": {"type": "base64", "data": "x"}}], "messages[0].content[0].source.media_type"),
        ([{"type": "tool_result", "content": "x"}], "messages[0].content[0].tool_use_id"),
        (
            [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}],
            "messages[0].content[0].content[0].source",
        ),
        ([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "messages[0].content[0].type"),
    ],
)
def test_messages_request_validates_user_blocks(content: list[dict[str, Any]], param: str) -> None:
    assert refused(msgs({"role": "user", "content": content})).param == param


@pytest.mark.parametrize(
    ("content", "param"),
    [
        ([{"type": "tool_use", "name": "f", "input": {}}], "messages[1].content[0].id"),
        ([{"type": "tool_use", "id": "t", "input": {}}], "messages[1].content[0].name"),
        ([{"type": "thinking", "thinking": "x"}], "messages[1].content[0].signature"),
        ([{"type": "image", "source": {"type": "url", "url": "https://x"}}], "messages[1].content[0].type"),
    ],
)
def test_messages_request_validates_assistant_blocks(content: list[dict[str, Any]], param: str) -> None:
    assert refused(msgs({"role": "user", "content": "x"}, {"role": "assistant", "content": content})).param == param


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tools": [{"input_schema": {}}]}, "tools[0].name"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"system": [{"type": "image"}]}, "system[0].type"),
        ({"system": [{"type": "text"}]}, "system[0].text"),
    ],
)
def test_messages_request_validates_fields(fields: dict[str, Any], param: str) -> None:
    assert refused(msgs(**fields)).param == param


def test_messages_request_invalid_json() -> None:
    assert refused(b"{nope").code == "invalid_json"


# --- messages_response --------------------------------------------------------------


def answer(data: bytes) -> dict[str, Any]:
    out = anthropic.messages_response(data)
    Message.model_validate_json(out)  # the Anthropic SDK reads it
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def test_messages_response_from_fixture() -> None:
    assert answer(fixture("openai_completion.json")) == {
        "type": "message",
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "role": "assistant",
        "model": "gpt-4.1-2025-04-14",
        "content": [
            {"type": "text", "text": "Let me look that up."},
            {"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {"location": "Boston, MA"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1117 - 1024,
            "output_tokens": 46,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
        },
    }


def completion(message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    return json.dumps(body).encode()


def test_messages_response_reasoning_becomes_thinking() -> None:
    out = answer(completion({"content": "42", "reasoning": "think", "reasoning_signature": "sig"}))
    assert out["content"] == [
        {"type": "thinking", "thinking": "think", "signature": "sig"},
        {"type": "text", "text": "42"},
    ]
    out = answer(completion({"content": "42", "reasoning_content": "think"}))
    assert out["content"][0] == {"type": "thinking", "thinking": "think", "signature": ""}


def test_messages_response_gateway_usage_with_cache_writes_and_reasoning() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 30, "cached_read_tokens": 30, "cached_write_tokens": 20},
        "completion_tokens_details": {"reasoning_tokens": 10},
        "cost": {"total_cost": 0.1},
    }
    out = answer(completion({"content": "x"}, usage=usage))
    assert out["usage"] == {
        "input_tokens": 50,
        "output_tokens": 50,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens_details": {"thinking_tokens": 10},
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_messages_response_stop_reasons(finish: str, stop: str) -> None:
    assert answer(completion({"content": "x"}, finish))["stop_reason"] == stop


def test_messages_response_refusal_and_parts() -> None:
    out = answer(completion({"content": None, "refusal": "No."}, "content_filter"))
    assert out["content"] == [{"type": "text", "text": "No."}]
    out = answer(completion({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}))
    assert out["content"] == [{"type": "text", "text": "ab"}]


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"id": "x", "choices": []}',
        b'{"id": "x", "choices": [{"index": 0}]}',
        completion({"tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]}),
        completion({"tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]}),
    ],
)
def test_messages_response_upstream_protocol_errors(data: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        anthropic.messages_response(data)
    assert info.value.status == 502
    assert "OpenAI" in info.value.message


# --- MessagesStream -----------------------------------------------------------------


def events(out: bytes) -> list[tuple[str, dict[str, Any]]]:
    parsed = []
    for frame in split(out):
        head, data = frame[:-2].split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ")
        body = json.loads(data[6:])
        assert body["type"] == head[7:].decode()
        parsed.append((body["type"], body))
    return parsed


def accumulate(out: bytes) -> Any:
    """The final message as the Anthropic SDK builds it from the events."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for _, body in events(out):
        snapshot = accumulate_event(event=EVENT.validate_python(body), current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def run_stream(sse: bytes, *, one_at_a_time: bool) -> bytes:
    stream = anthropic.MessagesStream()
    if one_at_a_time:
        return b"".join(stream.feed(f) for f in split(sse))
    return stream.feed(sse)


def test_messages_stream_whole_and_frame_by_frame_agree() -> None:
    sse = fixture("openai_stream.sse")
    assert run_stream(sse, one_at_a_time=False) == run_stream(sse, one_at_a_time=True)


def test_messages_stream_event_sequence() -> None:
    kinds = [k for k, _ in events(run_stream(fixture("openai_stream.sse"), one_at_a_time=True))]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 4


def test_messages_stream_accumulates_in_the_sdk() -> None:
    message = accumulate(run_stream(fixture("openai_stream.sse"), one_at_a_time=False))
    assert message.id == "chatcmpl-123"
    assert message.model == "gpt-4o-mini"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Weather needs a tool."
    assert message.content[1].text == "Checking now."
    assert (message.content[2].id, message.content[2].name) == ("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather")
    assert message.content[2].input == {"location": "Paris"}
    assert (message.content[3].name, message.content[3].input) == ("get_time", {})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1117 - 1024, 46)
    assert message.usage.cache_read_input_tokens == 1024
    assert message.usage.cache_creation_input_tokens == 0


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_messages_stream_without_usage_ends_with_zero_counts() -> None:
    sse = openai_chunk({"role": "assistant", "content": "Hi"}) + openai_chunk({}, "length") + b"data: [DONE]\n\n"
    message = accumulate(run_stream(sse, one_at_a_time=True))
    assert message.content[0].text == "Hi"
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)


def test_messages_stream_signature_delta() -> None:
    sse = (
        openai_chunk({"reasoning": "hmm"})
        + openai_chunk({"reasoning_signature": "sig"})
        + openai_chunk({"content": "ok"}, "stop")
        + b"data: [DONE]\n\n"
    )
    message = accumulate(run_stream(sse, one_at_a_time=False))
    assert (message.content[0].thinking, message.content[0].signature) == ("hmm", "sig")
    assert message.content[1].text == "ok"
    assert message.stop_reason == "end_turn"


def test_messages_stream_in_band_error_becomes_an_error_event() -> None:
    err = b'data: {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": null}}\n\n'
    stream = anthropic.MessagesStream()
    out = stream.feed(openai_chunk({"content": "Hi"}) + err)
    kind, body = events(out)[-1]
    assert kind == "error"
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}
    ErrorResponse.model_validate(body)
    assert stream.feed(b"data: [DONE]\n\n") == b""


def test_messages_stream_repeated_tool_call_id_stays_one_block() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    again = {"index": 0, "id": "call_1", "function": {"arguments": '{"a": 1}'}}
    sse = openai_chunk({"tool_calls": [call]}) + openai_chunk({"tool_calls": [again]}, "tool_calls")
    message = accumulate(run_stream(sse + b"data: [DONE]\n\n", one_at_a_time=False))
    assert [(b.type, b.id, b.input) for b in message.content] == [("tool_use", "call_1", {"a": 1})]


def test_messages_stream_chunk_with_null_error_is_content() -> None:
    frame = openai_chunk({"content": "Hi"}).replace(b'"choices"', b'"error": null, "choices"')
    message = accumulate(run_stream(frame + b"data: [DONE]\n\n", one_at_a_time=False))
    assert message.content[0].text == "Hi"


def test_messages_stream_garbage_is_an_upstream_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        anthropic.MessagesStream().feed(b"data: <html>\n\n")


def test_messages_stream_empty_stream_still_starts_and_stops() -> None:
    kinds = [k for k, _ in events(anthropic.MessagesStream().feed(b"data: [DONE]\n\n"))]
    assert kinds == ["message_start", "message_delta", "message_stop"]


# --- messages_error -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "invalid_request_error"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_messages_error_type_follows_the_status(status: int, kind: str) -> None:
    body = b'{"error":{"message":"boom","type":"x","param":null,"code":null}}'
    out = json.loads(anthropic.messages_error(status, body))
    assert out == {"type": "error", "error": {"type": kind, "message": "boom"}}
    ErrorResponse.model_validate(out)


def test_messages_error_quotes_a_body_that_is_not_an_error_object() -> None:
    out = json.loads(anthropic.messages_error(502, b"<html>" + b"y" * 300))
    assert out["error"]["message"] == "HTTP 502: <html>" + "y" * 194


# --- document blocks -> file parts -----------------------------------------------------


def test_messages_request_documents_become_file_and_text_parts() -> None:
    """base64 -> a file part (data URL, title as filename, else document.pdf); text ->
    text parts (title, then the text); context -> a text part after the document; a
    document in a tool_result -> the user message after the tool message."""
    out, _, _ = translate(json.loads(fixture("messages_request_documents.json")))
    assert out == json.loads(fixture("openai_request_documents.json"))


@pytest.mark.parametrize(
    ("block", "param"),
    [
        (
            {"type": "document", "source": {"type": "text", "data": "x"}, "citations": {"enabled": True}},
            "messages[0].content[0].citations",
        ),
        (
            {"type": "document", "source": {"type": "text", "data": "x"}, "citations": "yes"},
            "messages[0].content[0].citations",
        ),
        (
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
            "messages[0].content[0].source.type",
        ),
    ],
)
def test_messages_request_refuses_what_only_anthropic_reads(block: dict[str, Any], param: str) -> None:
    err = refused(msgs({"role": "user", "content": [block]}))
    assert err.param == param and err.code == "invalid_value"
