"""gateway.providers.anthropic, outbound: OpenAI clients in front of an Anthropic upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from gateway.codec import decode_chat
from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import anthropic
from gateway.relay.sse import Framer, split

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def translate(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    decode_chat(raw)  # what the server has checked before the translator runs
    out: dict[str, Any] = json.loads(anthropic.chat_request(raw, model=kw.pop("model", "claude-x"), **kw))
    return out


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": list(messages) or [{"role": "user", "content": "Hi"}], **fields}


def refused(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        anthropic.chat_request(json.dumps(body).encode(), model="claude-x")
    assert info.value.status == 400
    return info.value


# --- chat_request -------------------------------------------------------------------


def test_chat_request_maps_the_fixture() -> None:
    out = translate(json.loads(fixture("chat_request_tools.json")), model="claude-sonnet-4-5")
    assert out == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 500,
        "system": "You are a weather assistant.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's the weather here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {
                        "type": "image",
                        "source": {
                            "type": "url",
                            "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should call the tool.", "signature": "EqQBCgIYAhIM"},
                    {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"location": "Boston, MA"}},
                    {"type": "tool_use", "id": "call_def", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_abc", "content": "22 degrees"},
                    {"type": "tool_result", "tool_use_id": "call_def", "content": [{"type": "text", "text": "10:00"}]},
                    {"type": "text", "text": "Thanks. And tomorrow?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.7,
        "top_p": 0.95,
        "metadata": {"user_id": "user-1234"},
        "tools": [
            {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}},
                    "required": ["location"],
                },
            },
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stream": True,
        "top_k": 40,  # not OpenAI's: forwarded verbatim
    }


def test_chat_request_ignores_gateway_and_advisory_fields() -> None:
    out = translate(
        chat(
            seed=1,
            service_tier="auto",
            stream_options={"include_usage": True},
            fallbacks=["x"],
            mock={"tokens": 3},
            metadata={"k": "v"},
            store=True,
            parallel_tool_calls=True,
            n=1,
            logprobs=False,
            frequency_penalty=0,
        )
    )
    assert out == {"model": "claude-x", "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 4096),
        ({"max_tokens": 10}, 10),
        ({"max_completion_tokens": 20, "max_tokens": 10}, 20),
    ],
)
def test_chat_request_max_tokens_precedence(fields: dict[str, Any], expected: int) -> None:
    assert translate(chat(**fields))["max_tokens"] == expected


def test_chat_request_default_max_tokens_is_a_parameter() -> None:
    assert translate(chat(), default_max_tokens=64)["max_tokens"] == 64


def test_chat_request_system_and_developer_become_system_blocks() -> None:
    out = translate(
        chat(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
        )
    )
    assert out["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}]
    assert out["messages"] == [{"role": "user", "content": "Hi"}]


def test_chat_request_keeps_cache_control_on_parts_and_tools() -> None:
    cache = {"type": "ephemeral"}
    out = translate(
        chat(
            {"role": "system", "content": [{"type": "text", "text": "Long policy.", "cache_control": cache}]},
            {"role": "user", "content": "Hi"},
            tools=[{"type": "function", "function": {"name": "f"}, "cache_control": cache}],
        )
    )
    assert out["system"] == [{"type": "text", "text": "Long policy.", "cache_control": cache}]
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}, "cache_control": cache}]


def test_chat_request_merges_consecutive_same_role_turns() -> None:
    out = translate(
        chat(
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": "four"},
            {"role": "user", "content": "five"},
        )
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}]},
        {"role": "user", "content": "five"},
    ]


def test_chat_request_assistant_refusal_and_unsigned_reasoning() -> None:
    out = translate(
        chat(
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "refusal": "I can't help with that.", "reasoning": "unsigned"},
            {"role": "user", "content": "Why?"},
        )
    )
    # Anthropic rejects a thinking block without its signature: it is not replayed.
    assert out["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "I can't help with that."}]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, {"type": "tool", "name": "f"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": False},
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
        ({}, None),
    ],
)
def test_chat_request_tool_choice_variants(fields: dict[str, Any], expected: dict[str, Any] | None) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    out = translate(chat(tools=tools, **fields))
    assert out.get("tool_choice") == expected
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]


def test_chat_request_stop_string_becomes_a_list() -> None:
    assert translate(chat(stop="###"))["stop_sequences"] == ["###"]


@pytest.mark.parametrize(
    ("effort", "budget"), [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384), ("xhigh", 32768)]
)
def test_chat_request_reasoning_effort_sets_a_thinking_budget(effort: str, budget: int) -> None:
    out = translate(chat(reasoning_effort=effort, max_completion_tokens=100_000))
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert out["max_tokens"] == 100_000


def test_chat_request_reasoning_raises_max_tokens_above_the_budget() -> None:
    out = translate(chat(reasoning_effort="low", max_tokens=300))
    assert out["thinking"]["budget_tokens"] == 2048
    assert out["max_tokens"] == 2048 + 300


def test_chat_request_reasoning_effort_none_sends_no_thinking() -> None:
    assert "thinking" not in translate(chat(reasoning_effort="none"))


def test_chat_request_json_schema_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = translate(chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "output_config" not in translate(chat(response_format={"type": "text"}))


def test_chat_request_user_becomes_metadata_user_id() -> None:
    assert translate(chat(user="u-1"))["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -0.5}, "presence_penalty"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [{"type": "custom", "custom": {"name": "c"}}]}, "tools[0].type"),
    ],
)
def test_chat_request_refuses_what_anthropic_cannot_honour(fields: dict[str, Any], param: str) -> None:
    err = refused(chat(**fields))
    assert err.param == param
    assert err.code == "unsupported_parameter"
    assert "anthropic" in err.message


def test_chat_request_refuses_temperature_above_one() -> None:
    err = refused(chat(temperature=1.5))
    assert (err.param, err.code) == ("temperature", "invalid_value")
    assert translate(chat(temperature=1.0))["temperature"] == 1.0


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_audio", "input_audio": {}}]},
            "messages[0].content[1].type",
        ),
        ({"role": "user", "content": [{"type": "text"}]}, "messages[0].content[0].text"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, "messages[0].content[0].image_url.url"),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            "messages[0].content[0].type",
        ),
        ({"role": "tool", "content": "42"}, "messages[0].tool_call_id"),
        ({"role": "function", "name": "f", "content": "42"}, "messages[0].role"),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}],
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_chat_request_invalid_messages_name_the_param(message: dict[str, Any], param: str) -> None:
    err = refused(chat(message))
    assert err.param == param


def test_chat_request_invalid_body() -> None:
    with pytest.raises(InvalidRequest) as info:
        anthropic.chat_request(b"{not json", model="m")
    assert info.value.code == "invalid_json"
    with pytest.raises(InvalidRequest) as info:
        anthropic.chat_request(b'{"messages": [{"role": "user", "content": 5}]}', model="m")
    assert info.value.param == "messages[0].content"


def test_chat_request_tool_choice_without_tools_is_refused() -> None:
    assert refused(chat(tool_choice="required")).param == "tool_choice"


# --- chat_response ------------------------------------------------------------------


def completion(name: str) -> dict[str, Any]:
    out = anthropic.chat_response(fixture(name), created=1_700_000_000)
    ChatCompletion.model_validate_json(out)  # the OpenAI SDK reads it
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def test_chat_response_text() -> None:
    assert completion("message_text.json") == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi! My name is Claude."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598},
    }


def test_chat_response_tool_use_thinking_and_cache_usage() -> None:
    out = completion("message_tool_use.json")
    assert out["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "I'll check the current weather in San Francisco for you.",
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
            "reasoning": "The user wants the weather in San Francisco. I should call get_weather.",
            "reasoning_signature": SIGNATURE,
        },
        "finish_reason": "tool_calls",
    }
    assert out["usage"] == {
        "prompt_tokens": 50 + 3000 + 1200,
        "completion_tokens": 180,
        "total_tokens": 50 + 3000 + 1200 + 180,
        "prompt_tokens_details": {"cached_tokens": 3000, "cached_read_tokens": 3000, "cached_write_tokens": 1200},
        "completion_tokens_details": {"reasoning_tokens": 120},
    }


def message(content: list[dict[str, Any]], stop_reason: str | None = "end_turn") -> bytes:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    return json.dumps(body).encode()


def test_chat_response_only_tool_calls_has_null_content() -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    out = json.loads(anthropic.chat_response(message([tool], "tool_use"), created=0))
    assert out["choices"][0]["message"]["content"] is None
    assert out["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


def test_chat_response_drops_redacted_thinking_and_server_tool_blocks() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "text", "text": "Done."},
    ]
    out = json.loads(anthropic.chat_response(message(blocks), created=0))
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Done."}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
    ],
)
def test_chat_response_stop_reasons(stop_reason: str | None, finish: str) -> None:
    out = json.loads(anthropic.chat_response(message([{"type": "text", "text": "x"}], stop_reason), created=0))
    assert out["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    "data",
    [
        b"<html>502</html>",
        b'{"type": "message", "content": []}',
        b'{"id": "m", "model": "c", "content": "text"}',
        b'{"id": "m", "model": "c", "content": [{"type": "tool_use", "input": {}}]}',
    ],
)
def test_chat_response_upstream_protocol_errors(data: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        anthropic.chat_response(data, created=0)
    assert info.value.status == 502
    assert "anthropic" in info.value.message


# --- ChatStream ---------------------------------------------------------------------


def run_stream(sse: bytes, *, one_at_a_time: bool) -> tuple[bytes, anthropic.ChatStream]:
    stream = anthropic.ChatStream(created=1_700_000_000)
    framer = Framer()
    if one_at_a_time:
        out = b"".join(stream.feed(framer.feed(frame)) for frame in split(sse))
    else:
        out = stream.feed(framer.feed(sse))
    return out + stream.close(), stream


def chunks(out: bytes) -> list[dict[str, Any]]:
    frames = split(out)
    assert frames[-1] == b"data: [DONE]\n\n"
    return [json.loads(f[len(b"data: ") : -2]) for f in frames[:-1]]


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_use.sse", "stream_thinking.sse"])
def test_chat_stream_whole_and_frame_by_frame_agree(name: str) -> None:
    whole, s1 = run_stream(fixture(name), one_at_a_time=False)
    single, s2 = run_stream(fixture(name), one_at_a_time=True)
    assert whole == single
    assert s1.done and s2.done


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_use.sse", "stream_thinking.sse"])
def test_chat_stream_frames_have_the_relay_shape(name: str) -> None:
    out, _ = run_stream(fixture(name), one_at_a_time=False)
    frames = split(out)
    *content, finish, usage, done = frames
    assert done == b"data: [DONE]\n\n"
    for frame in content:
        assert frame.startswith(b"data: {")
        assert frame.endswith(b'"finish_reason":null}]}\n\n')
        assert b'"usage"' not in frame
        assert b"\n" not in frame[:-2]
    assert b'"delta":{},"finish_reason":"' in finish
    assert json.loads(usage[6:])["choices"] == []
    first = json.loads(content[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert list(first["choices"][0]) == ["index", "delta", "finish_reason"]
    assert list(first)[:4] == ["id", "object", "created", "model"]


def test_chat_stream_text() -> None:
    out = chunks(run_stream(fixture("stream_text.sse"), one_at_a_time=False)[0])
    assert {c["id"] for c in out} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {c["model"] for c in out} == {"claude-opus-4-6"}
    assert {c["object"] for c in out} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in out if c["choices"]) == "Hello!"
    assert out[-2]["choices"][0]["finish_reason"] == "stop"
    assert out[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}


def test_chat_stream_tool_calls_are_indexed_by_order_of_tool_use_blocks() -> None:
    out = chunks(run_stream(fixture("stream_tool_use.sse"), one_at_a_time=True)[0])
    calls: dict[int, dict[str, Any]] = {}
    for c in out:
        for tc in c["choices"][0]["delta"].get("tool_calls", []) if c["choices"] else []:
            call = calls.setdefault(tc["index"], {"arguments": ""})
            if "id" in tc:
                call.update(id=tc["id"], type=tc["type"], name=tc["function"]["name"])
            call["arguments"] += tc["function"]["arguments"]
    assert calls == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA", "unit": "fahrenheit"}',
        },
        # a call without arguments gets "{}", as OpenAI sends it
        1: {"id": "toolu_01Ux7wTfTZXnb3xmbsbbNcHE", "type": "function", "name": "get_time", "arguments": "{}"},
    }
    assert out[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[-1]["usage"] == {
        "prompt_tokens": 472 + 2048,
        "completion_tokens": 89,
        "total_tokens": 472 + 2048 + 89,
        "prompt_tokens_details": {"cached_tokens": 2048, "cached_read_tokens": 2048, "cached_write_tokens": 0},
    }


def test_chat_stream_thinking_and_signature() -> None:
    out = chunks(run_stream(fixture("stream_thinking.sse"), one_at_a_time=False)[0])
    deltas = [c["choices"][0]["delta"] for c in out if c["choices"]]
    # Non-ASCII (the docs' multiplication sign) passes through unmangled.
    assert "".join(d.get("reasoning", "") for d in deltas) == (
        "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n1071 = 2 \u00d7 462 + 147"
        "\n462 = 3 \u00d7 147 + 21\n147 = 7 \u00d7 21 + 0"
    )
    assert [d["reasoning_signature"] for d in deltas if "reasoning_signature" in d] == [SIGNATURE]
    assert "".join(d.get("content", "") for d in deltas) == "The greatest common divisor of 1071 and 462 is **21**."
    assert out[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 180}


def test_chat_stream_message_delta_counts_are_cumulative() -> None:
    sse = fixture("stream_text.sse").replace(
        b'"usage": {"output_tokens": 15}',
        b'"usage": {"input_tokens": 30, "cache_read_input_tokens": 5, "output_tokens": 15}',
    )
    usage = chunks(run_stream(sse, one_at_a_time=False)[0])[-1]["usage"]
    assert usage["prompt_tokens"] == 35
    assert usage["prompt_tokens_details"]["cached_read_tokens"] == 5


def test_chat_stream_error_event_raises_stream_error() -> None:
    stream = anthropic.ChatStream(created=0)
    frames = split(fixture("stream_error.sse"))
    out = b"".join(stream.feed(f) for f in frames[:-1])
    assert b'"content":"Hel"' in out
    with pytest.raises(anthropic.StreamError) as info:
        stream.feed(frames[-1])
    err = info.value
    assert isinstance(err, UpstreamProtocolError)
    assert (err.anthropic_type, err.anthropic_message) == ("overloaded_error", "Overloaded")
    assert err.code == "overloaded_error"
    assert err.status == 502
    assert not stream.done


def test_chat_stream_cut_stream_closes_empty_and_not_done() -> None:
    frames = split(fixture("stream_text.sse"))
    stream = anthropic.ChatStream(created=0)
    assert stream.feed(b"".join(frames[:4]))
    assert stream.close() == b""
    assert not stream.done


@pytest.mark.parametrize(
    "sse",
    [
        b"event: content_block_delta\ndata: {not json}\n\n",
        b'event: content_block_delta\ndata: {"index": 0}\n\n',
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "x"}}\n\n',
        b'event: message_start\ndata: {"type": "message_start"}\n\n',
    ],
)
def test_chat_stream_upstream_protocol_errors(sse: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        anthropic.ChatStream(created=0).feed(sse)
    assert "anthropic" in info.value.message


def test_chat_stream_ignores_pings_comments_and_unknown_events() -> None:
    stream = anthropic.ChatStream(created=0)
    noise = b': keep-alive\n\nevent: ping\ndata: {"type": "ping"}\n\nevent: future\ndata: {"type": "future_event"}\n\n'
    assert stream.feed(noise) == b""


# --- error_body ---------------------------------------------------------------------


def test_error_body_from_fixture() -> None:
    assert json.loads(anthropic.error_body(404, fixture("error_not_found.json"))) == {
        "error": {
            "message": "The requested resource could not be found.",
            "type": "not_found_error",
            "param": None,
            "code": "not_found_error",
        }
    }


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (402, "billing_error", "insufficient_quota"),
        (403, "permission_error", "permission_error"),
        (413, "request_too_large", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "upstream_error"),
        (529, "overloaded_error", "upstream_error"),
        (504, "timeout_error", "upstream_error"),
        (409, "conflict_error", "invalid_request_error"),
        (503, "some_new_error", "upstream_error"),
    ],
)
def test_error_body_maps_types(status: int, kind: str, expected: str) -> None:
    data = json.dumps({"type": "error", "error": {"type": kind, "message": "m"}}).encode()
    assert json.loads(anthropic.error_body(status, data))["error"] == {
        "message": "m",
        "type": expected,
        "param": None,
        "code": kind,
    }


def test_error_body_quotes_a_body_that_is_not_an_error_object() -> None:
    data = b"<html>" + b"x" * 500 + b"</html>"
    err = json.loads(anthropic.error_body(502, data))["error"]
    assert err["type"] == "upstream_error"
    assert err["code"] is None
    assert err["message"] == "anthropic upstream answered HTTP 502: " + ("<html>" + "x" * 194)


def test_chat_request_strips_gemini_thought_signatures_from_tool_ids() -> None:
    # A conversation begun on a Gemini model: its tool call ids carry "|ts:<signature>",
    # which Anthropic's id pattern (^[a-zA-Z0-9_-]+$) refuses.
    out = translate(
        {
            "model": "claude",
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1|ts:c2lnbmF0dXJl",
                            "type": "function",
                            "function": {"name": "w", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1|ts:c2lnbmF0dXJl", "content": "18 C"},
            ],
        }
    )
    assert out["messages"][1]["content"][0]["id"] == "call_1"
    assert out["messages"][2]["content"][0]["tool_use_id"] == "call_1"


# --- file parts -> document blocks ----------------------------------------------------


def test_chat_request_file_parts_become_document_blocks() -> None:
    """PDF -> base64 source; markdown and csv (a data URL, or plain base64 named by
    its filename) -> text source, decoded; filename -> title; cache_control kept."""
    out = translate(json.loads(fixture("chat_request_files.json")), model="claude-sonnet-4-5")
    assert out == json.loads(fixture("messages_files.json"))


def test_chat_request_file_in_a_tool_message_goes_into_the_tool_result() -> None:
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "r.pdf"}}
    out = translate(
        chat(
            {"role": "user", "content": "Read it"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "here"}, pdf]},
        )
    )
    assert out["messages"][-1]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "c1",
            "content": [
                {"type": "text", "text": "here"},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    "title": "r.pdf",
                },
            ],
        }
    ]


def _file_message(file: dict[str, Any], role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": "see"}, {"type": "file", "file": file}]}


@pytest.mark.parametrize(
    ("message", "param", "code"),
    [
        (_file_message({"file_id": "file-abc"}), "messages[0].content[1].file.file_id", "unsupported_parameter"),
        (_file_message({"file_id": "file-abc", "filename": "a.pdf"}), "messages[0].content[1].file.file_id", None),
        (_file_message({"file_data": "JVBERi0="}), "messages[0].content[1].file.file_data", "invalid_value"),
        (_file_message({"file_data": "JVBERi0=", "filename": "a.docx"}), "messages[0].content[1].file.file_data", None),
        (_file_message({"filename": "a.pdf"}), "messages[0].content[1].file.file_data", None),
        (
            _file_message({"file_data": "data:application/msword;base64,0M8R4A=="}),
            "messages[0].content[1].file.file_data",
            "invalid_value",
        ),
        (  # not base64
            _file_message({"file_data": "data:text/plain;base64,not base64!"}),
            "messages[0].content[1].file.file_data",
            None,
        ),
        (  # base64, not UTF-8
            _file_message({"file_data": "data:text/plain;base64,/w=="}),
            "messages[0].content[1].file.file_data",
            None,
        ),
        ({"role": "user", "content": [{"type": "file"}]}, "messages[0].content[0].file", None),
        (
            _file_message({"file_data": "data:application/pdf;base64,JVBERi0="}, role="assistant"),
            "messages[0].content[1].type",
            None,
        ),
        ({"role": "user", "content": [{"type": "video_url", "video_url": {}}]}, "messages[0].content[0].type", None),
    ],
)
def test_chat_request_refuses_untranslatable_files_naming_the_part(
    message: dict[str, Any], param: str, code: str | None
) -> None:
    err = refused(chat(message))
    assert err.param == param
    if code:
        assert err.code == code
    if param.endswith("file_id"):
        assert "only usable with OpenAI-dialect providers" in err.message and "file_data" in err.message
