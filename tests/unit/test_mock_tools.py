"""gateway.providers.mock answering with tool calls: the plan, the unary body, the
streamed frames (OpenAI's wire shapes) and the Anthropic / Gemini reverse translators
fed with them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec
import pytest

from gateway.config import MockConfig
from gateway.errors import InvalidRequest
from gateway.providers import Endpoint, anthropic, gemini, mock

NO_FAULT = (0.5, 0.5, 0.5)
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
SEARCH: dict[str, Any] = {
    "type": "function",
    "function": {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
}
WEATHER_ARGS = '{"city":"mock","unit":"celsius"}'


def make_plan(
    body: dict[str, Any],
    *,
    endpoint: Endpoint = "chat",
    config: MockConfig | None = None,
    rolls: tuple[float, float, float] = NO_FAULT,
    serial: int = 1,
) -> mock.Plan:
    req = mock.decode(json.dumps(body).encode())
    return mock.plan(req, endpoint=endpoint, config=config or MockConfig(), rolls=rolls, created=7, serial=serial)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "mock-chat", "messages": [{"role": "user", "content": "weather in Paris?"}], **fields}


def tools_chat(**fields: Any) -> dict[str, Any]:
    return chat(tools=[WEATHER, SEARCH], **fields)


def payloads(p: mock.Plan) -> list[dict[str, Any]]:
    """The JSON of every frame but [DONE], checking the SSE framing on the way."""
    out = list(mock.frames(p))
    assert out[-1] == b"data: [DONE]\n\n"
    parsed = []
    for frame in out[:-1]:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        assert b"\n" not in frame[len(b"data: ") : -2]
        parsed.append(msgspec.json.decode(frame[len(b"data: ") : -2]))
    return parsed


def arguments_of(p: mock.Plan) -> str:
    body = msgspec.json.decode(mock.completion_body(p))
    args: str = body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    return args


def arguments_for(parameters: Any) -> Any:
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    return json.loads(arguments_of(make_plan(chat(tools=[tool]))))


def usage_tokens(args: str) -> int:
    return max(1, len(args) // 4) + 1


# --- plan -----------------------------------------------------------------------------


def test_plan_tools_make_a_tool_call() -> None:
    p = make_plan(tools_chat(), config=MockConfig(tokens=20), serial=42)
    assert p.tool_call == mock.ToolCall(id="call_mock000000000042", name="get_weather", arguments=WEATHER_ARGS)
    assert p.finish_reason == "tool_calls"
    assert p.tokens == usage_tokens(WEATHER_ARGS)


def test_plan_tool_call_ids_differ_per_answer_and_fit_40_chars() -> None:
    calls = [make_plan(tools_chat(), serial=s).tool_call for s in (1, 2, 999_999_999_999)]
    ids = {c.id for c in calls if c is not None}
    assert len(ids) == 3
    assert all(i.startswith("call_mock") and len(i) <= 40 for i in ids)


def test_plan_tool_choice_forces_named_tool() -> None:
    choice = {"type": "function", "function": {"name": "search"}}
    p = make_plan(tools_chat(tool_choice=choice))
    assert p.tool_call is not None
    assert p.tool_call.name == "search"
    assert p.tool_call.arguments == '{"query":"mock"}'


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_plan_tool_choice_auto_or_required_calls_first_tool(choice: str) -> None:
    p = make_plan(tools_chat(tool_choice=choice))
    assert p.tool_call is not None and p.tool_call.name == "get_weather"


def test_plan_tool_choice_unknown_tool_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as exc:
        make_plan(tools_chat(tool_choice={"type": "function", "function": {"name": "nope"}}))
    assert exc.value.param == "tool_choice"
    assert exc.value.status == 400
    assert "nope" in exc.value.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": 5}, "tools"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": []}}}]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": 5}, "tool_choice"),
        ({"tools": [WEATHER], "messages": {"role": "user"}}, "messages"),
    ],
)
def test_plan_bad_tool_shapes_are_invalid_request(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        make_plan(chat(**fields))
    assert exc.value.param == param
    assert exc.value.message.startswith(f"mock provider: invalid {param}: ")


def test_planner_reports_tool_errors_with_their_param() -> None:
    planner = mock.Planner(MockConfig())
    with pytest.raises(InvalidRequest) as exc:
        planner(
            json.dumps(tools_chat(tool_choice={"type": "function", "function": {"name": "x"}})).encode(),
            endpoint="chat",
        )
    assert exc.value.param == "tool_choice"
    p = planner(json.dumps(tools_chat()).encode(), endpoint="chat")
    assert p.tool_call is not None and p.tool_call.id == "call_mock000000000002"


def test_plan_messages_not_decoded_without_tools() -> None:
    # A request without tools keeps messages as raw bytes: even a shape the tool path
    # rejects is not looked at.
    p = make_plan({"model": "m", "messages": {"role": "tool"}})
    assert p.tool_call is None and p.finish_reason == "stop"


def test_plan_text_after_tool_result() -> None:
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    p = make_plan(tools_chat(messages=messages), config=MockConfig(tokens=5))
    assert p.tool_call is None
    assert p.finish_reason == "stop"
    assert p.tokens == 5
    # A user turn after the tool result: the model calls again.
    again = make_plan(tools_chat(messages=[*messages, {"role": "user", "content": "and Rome?"}]))
    assert again.tool_call is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"tool_choice": "none"},
        {"mock": {"tool_calls": False}},
        {"tools": []},
        {"tools": None},
    ],
)
def test_plan_answers_text(fields: dict[str, Any]) -> None:
    body = {**tools_chat(stream=True), **fields}
    plain = chat(stream=True)
    p = make_plan(body, config=MockConfig(tokens=6))
    assert p.tool_call is None
    assert p.finish_reason == "stop"
    # Byte for byte the answer to the same request without tools (prompt size aside).
    q = msgspec.structs.replace(make_plan(plain, config=MockConfig(tokens=6)), prompt_tokens=p.prompt_tokens)
    assert list(mock.frames(p)) == list(mock.frames(q))


def test_plan_text_endpoint_ignores_tools() -> None:
    p = make_plan({"model": "m", "prompt": "hi", "tools": [WEATHER]}, endpoint="text")
    assert p.tool_call is None
    assert msgspec.json.decode(mock.completion_body(p))["choices"][0]["text"]


def test_plan_tool_call_ignores_token_cap() -> None:
    p = make_plan(tools_chat(max_tokens=1), config=MockConfig(tokens=50))
    assert p.finish_reason == "tool_calls"
    assert p.tokens == usage_tokens(WEATHER_ARGS)


def test_plan_reset_from_rolls_lands_within_the_argument_pieces() -> None:
    p = make_plan(tools_chat(stream=True), config=MockConfig(tokens=1000, reset_rate=1.0), rolls=(0.0, 0.0, 0.99))
    pieces = -(-len(WEATHER_ARGS) // 8)
    assert p.reset_after == int(0.99 * pieces)


# --- arguments ------------------------------------------------------------------------


def test_arguments_required_only_with_enum_first_value() -> None:
    assert json.loads(WEATHER_ARGS) == {"city": "mock", "unit": "celsius"}
    assert arguments_of(make_plan(chat(tools=[WEATHER]))) == WEATHER_ARGS


def test_arguments_placeholder_per_type_when_required_absent() -> None:
    props = {
        "s": {"type": "string"},
        "i": {"type": "integer"},
        "n": {"type": "number"},
        "b": {"type": "boolean"},
        "a": {"type": "array", "items": {"type": "string"}},
        "o": {"type": "object", "properties": {"x": {"type": "string"}}},
        "e": {"type": "integer", "enum": [3, 4]},
        "z": {"type": "null"},
        "u": {"type": "whatever"},
        "m": {"description": "no type"},
        "opt": {"type": ["null", "string"]},
    }
    got = arguments_for({"type": "object", "properties": props})
    assert list(got) == list(props)  # the schema's order
    assert got == {
        "s": "mock",
        "i": 1,
        "n": 1.5,
        "b": True,
        "a": ["mock"],  # one element of its items
        "o": {"x": "mock"},  # filled as the top level is: every property when required is absent
        "e": 3,
        "z": None,
        "u": None,
        "m": None,
        "opt": "mock",
    }


def test_arguments_follow_required_order_and_unknown_names() -> None:
    params = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["b", "x"],
    }
    got = arguments_for(params)
    assert list(got) == ["b", "x"]
    assert got == {"b": 1, "x": None}


@pytest.mark.parametrize("parameters", [None, {}, {"type": "object"}, {"type": "object", "required": []}])
def test_arguments_empty_object_without_properties(parameters: Any) -> None:
    assert arguments_for(parameters) == {}


def test_arguments_without_parameters_key() -> None:
    tool = {"type": "function", "function": {"name": "ping"}}
    assert arguments_of(make_plan(chat(tools=[tool]))) == "{}"


def test_arguments_non_ascii_enum_survives() -> None:
    got = arguments_for({"properties": {"w": {"enum": ['é"ü', "x"]}}})
    assert got == {"w": 'é"ü'}


# --- completion_body ------------------------------------------------------------------


def test_completion_body_tool_call_exact_shape() -> None:
    p = make_plan(tools_chat(), serial=5)
    data = msgspec.json.decode(mock.completion_body(p))
    completion = usage_tokens(WEATHER_ARGS)
    assert data == {
        "id": "chatcmpl-mock000000000005",
        "object": "chat.completion",
        "created": 7,
        "model": "mock-chat",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_mock000000000005",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": p.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": p.prompt_tokens + completion,
        },
    }


def test_completion_body_tool_call_without_usage() -> None:
    data = msgspec.json.decode(mock.completion_body(make_plan(tools_chat(mock={"usage": False}))))
    assert "usage" not in data
    assert data["choices"][0]["finish_reason"] == "tool_calls"


def test_completion_body_tool_call_with_quotes_in_model_and_name() -> None:
    tool = {"type": "function", "function": {"name": 'we"ird%s', "parameters": {"properties": {"q": {"enum": ["%d"]}}}}}
    p = make_plan({"model": 'a"%s', "messages": [], "tools": [tool]})
    data = msgspec.json.decode(mock.completion_body(p))
    assert data["model"] == 'a"%s'
    call = data["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": 'we"ird%s', "arguments": '{"q":"%d"}'}
    assert all(c["model"] == 'a"%s' for c in payloads(msgspec.structs.replace(p, stream=True)))


# --- frames ---------------------------------------------------------------------------


def test_frames_tool_call_exact_shapes() -> None:
    p = make_plan(tools_chat(stream=True), serial=3)
    chunks = payloads(p)
    for c in chunks:
        assert c["id"] == "chatcmpl-mock000000000003"
        assert c["object"] == "chat.completion.chunk"
        assert c["created"] == 7
        assert c["model"] == "mock-chat"
        assert set(c) == {"id", "object", "created", "model", "choices"}
    choices = [c["choices"] for c in chunks]
    assert all(len(ch) == 1 and ch[0]["index"] == 0 and ch[0]["logprobs"] is None for ch in choices)
    first, *pieces, last = (ch[0] for ch in choices)
    assert first["finish_reason"] is None
    assert first["delta"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": "call_mock000000000003",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
    }
    assert len(pieces) == -(-len(WEATHER_ARGS) // 8) >= 2
    for piece in pieces:
        assert piece["finish_reason"] is None
        (tc,) = piece["delta"]["tool_calls"]
        assert piece["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": tc["function"]["arguments"]}}]}
        assert 0 < len(tc["function"]["arguments"]) <= 8
    assert last == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}


def test_frames_argument_pieces_concatenate_to_unary_arguments() -> None:
    for tools in ([WEATHER], [SEARCH], [{"type": "function", "function": {"name": "ping"}}]):
        streamed = make_plan(chat(tools=tools, stream=True))
        unary = make_plan(chat(tools=tools))
        pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in payloads(streamed)[1:-1]]
        assert len(pieces) >= 1
        assert "".join(pieces) == arguments_of(unary)


def test_frames_tool_call_usage_chunk_only_with_include_usage() -> None:
    without = payloads(make_plan(tools_chat(stream=True)))
    assert all("usage" not in c for c in without)
    p = make_plan(tools_chat(stream=True, stream_options={"include_usage": True}))
    with_usage = payloads(p)
    assert len(with_usage) == len(without) + 1
    last = with_usage[-1]
    assert last["choices"] == []
    completion = usage_tokens(WEATHER_ARGS)
    assert last["usage"] == {
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": p.prompt_tokens + completion,
    }
    assert with_usage[-2]["choices"][0]["finish_reason"] == "tool_calls"


# --- paced and faults -------------------------------------------------------------------


async def collect(p: mock.Plan) -> list[bytes]:
    return [frame async for frame in mock.paced(p)]


@pytest.mark.parametrize("reset_after", [0, 1, 3])
def test_paced_tool_call_reset_after_counts_frames(reset_after: int) -> None:
    p = make_plan(tools_chat(stream=True, mock={"reset_after": reset_after}))
    got: list[bytes] = []

    async def run() -> None:
        async for frame in mock.paced(p):
            got.append(frame)

    with pytest.raises(mock.MockReset):
        asyncio.run(run())
    assert got == list(mock.frames(p))[:reset_after]


def test_paced_tool_call_end_after_and_garbage_after() -> None:
    ended = make_plan(tools_chat(stream=True, mock={"end_after": 2}))
    assert asyncio.run(collect(ended)) == list(mock.frames(ended))[:2]
    garbled = make_plan(tools_chat(stream=True, mock={"garbage_after": 2}))
    assert asyncio.run(collect(garbled)) == [*list(mock.frames(garbled))[:2], mock.GARBAGE]


def test_paced_tool_call_waits_ttft_and_itl() -> None:
    p = make_plan(tools_chat(stream=True, mock={"ttft_ms": 40, "itl_ms": 15}))
    n_pieces = -(-len(WEATHER_ARGS) // 8)
    start = time.monotonic()
    got = asyncio.run(collect(p))
    elapsed = time.monotonic() - start
    assert got == list(mock.frames(p))
    # ttft before the first frame, itl before each argument piece and the finish.
    assert elapsed >= 0.04 + (n_pieces + 1) * 0.015 - 0.01
    assert mock.unary_delay_s(msgspec.structs.replace(p, stream=False)) == pytest.approx(0.04 + (n_pieces - 1) * 0.015)


# --- the reverse translators -----------------------------------------------------------


def test_anthropic_messages_response_has_tool_use() -> None:
    p = make_plan(tools_chat())
    out = msgspec.json.decode(anthropic.messages_response(mock.completion_body(p)))
    assert out["content"] == [
        {"type": "tool_use", "id": "call_mock000000000001", "name": "get_weather", "input": json.loads(WEATHER_ARGS)}
    ]
    assert out["stop_reason"] == "tool_use"
    assert out["usage"]["output_tokens"] == usage_tokens(WEATHER_ARGS)


def test_gemini_generate_response_has_function_call() -> None:
    p = make_plan(tools_chat())
    out = msgspec.json.decode(gemini.generate_response(mock.completion_body(p)))
    (cand,) = out["candidates"]
    assert cand["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": json.loads(WEATHER_ARGS), "id": "call_mock000000000001"}}
    ]
    assert cand["finishReason"] == "STOP"  # what Gemini itself says after a function call


def anthropic_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in data.split(b"\n\n"):
        if block:
            name, payload = block.split(b"\n")
            events.append(
                (name.removeprefix(b"event: ").decode(), msgspec.json.decode(payload.removeprefix(b"data: ")))
            )
    return events


def test_anthropic_messages_stream_has_tool_use_block() -> None:
    p = make_plan(tools_chat(stream=True, stream_options={"include_usage": True}))
    tr = anthropic.MessagesStream()
    events = anthropic_events(b"".join(tr.feed(f) for f in mock.frames(p)))
    assert tr.done
    names = [n for n, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [e for n, e in events if n == "content_block_start"]
    assert starts == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "call_mock000000000001", "name": "get_weather", "input": {}},
        }
    ]
    partial = "".join(e["delta"]["partial_json"] for n, e in events if n == "content_block_delta" and e["index"] == 0)
    assert json.loads(partial) == json.loads(WEATHER_ARGS)
    assert names.count("content_block_stop") == 1
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == usage_tokens(WEATHER_ARGS)


def test_gemini_generate_stream_has_function_call() -> None:
    p = make_plan(tools_chat(stream=True, stream_options={"include_usage": True}))
    tr = gemini.GenerateStream()
    out = b"".join(tr.feed(f) for f in mock.frames(p))
    frames = [msgspec.json.decode(f.removeprefix(b"data: ")) for f in out.split(b"\r\n\r\n") if f]
    calls = [
        part["functionCall"]
        for f in frames
        for cand in f.get("candidates", [])
        for part in cand["content"]["parts"]
        if "functionCall" in part
    ]
    assert calls == [{"name": "get_weather", "args": json.loads(WEATHER_ARGS), "id": "call_mock000000000001"}]
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
    assert frames[-1]["usageMetadata"]["candidatesTokenCount"] == usage_tokens(WEATHER_ARGS)


def test_anthropic_route_request_gets_tool_use_then_text() -> None:
    """What ``gateway mock``'s /v1/messages does: the request through the reverse
    translator, planned, the answer back."""
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    turn: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 50,
        "tools": [tool],
        "messages": [{"role": "user", "content": "weather?"}],
    }
    planner = mock.Planner(MockConfig(tokens=4))
    body, _, _ = anthropic.messages_request(json.dumps(turn).encode())
    out = msgspec.json.decode(anthropic.messages_response(mock.completion_body(planner(body, endpoint="chat"))))
    (use,) = out["content"]
    assert use["type"] == "tool_use" and use["input"] == {"city": "mock", "unit": "celsius"}
    turn["messages"] += [
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"}]},
    ]
    body, _, _ = anthropic.messages_request(json.dumps(turn).encode())
    out = msgspec.json.decode(anthropic.messages_response(mock.completion_body(planner(body, endpoint="chat"))))
    assert [b["type"] for b in out["content"]] == ["text"]
    assert out["stop_reason"] == "end_turn"


def test_gemini_route_request_gets_function_call() -> None:
    decl = {"name": "search", "parametersJsonSchema": SEARCH["function"]["parameters"]}
    req = {"contents": [{"role": "user", "parts": [{"text": "find"}]}], "tools": [{"functionDeclarations": [decl]}]}
    body = gemini.generate_request(json.dumps(req).encode(), model="gemini-x", stream=False)
    out = msgspec.json.decode(
        gemini.generate_response(mock.completion_body(mock.Planner(MockConfig())(body, endpoint="chat")))
    )
    assert out["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == {"query": "mock"}


def test_arguments_strict_function_fills_every_property_and_nested_refs() -> None:
    params = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "where": {"$ref": "#/$defs/Point"},
            "lost": {"$ref": "#/$defs/Nowhere"},  # unreadable: null, not an error, for tools
        },
        "required": ["city"],
        "$defs": {"Point": {"type": "object", "properties": {"lat": {"type": "number", "maximum": 1}}}},
    }
    tool = {"type": "function", "function": {"name": "f", "parameters": params}}
    assert json.loads(arguments_of(make_plan(chat(tools=[tool])))) == {"city": "mock"}
    strict = {"type": "function", "function": {"name": "f", "parameters": params, "strict": True}}
    got = json.loads(arguments_of(make_plan(chat(tools=[strict]))))
    assert got == {"city": "mock", "where": {"lat": 1}, "lost": None}
