"""gateway.providers.gemini, inbound: a google-genai client's request to the OpenAI
pipeline and the OpenAI answers back; the round trip; the real SDK on both ends."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import gemini

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def to_openai(body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(gemini.generate_request(json.dumps(body).encode(), model="gpt-x", stream=stream))
    return out


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def test_generate_request_sdk_fixture() -> None:
    """The body google-genai 3.4 sent (recorded), with its snake_case nested fields."""
    out = json.loads(gemini.generate_request(fixture("request_sdk.json"), model="gpt-x", stream=True))
    assert out["model"] == "gpt-x" and out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}
    assert out["messages"] == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1_0|ts:c2lnMTIz",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp":21}', "tool_call_id": "call_1_0|ts:c2lnMTIz"},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert {k: out[k] for k in ("temperature", "top_p", "n", "stop", "max_completion_tokens", "seed")} == {
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 1,
        "stop": ["END"],
        "max_completion_tokens": 100,
        "seed": 7,
    }
    assert (out["presence_penalty"], out["frequency_penalty"]) == (0.1, 0.2)
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
    }
    assert out["reasoning_effort"] == "low"  # thinking_budget 1024
    assert "top_k" not in out


def test_generate_request_not_streaming_has_no_stream_options() -> None:
    out = to_openai({"contents": [user({"text": "Hi"})]})
    assert out == {"model": "gpt-x", "messages": [{"role": "user", "content": "Hi"}], "stream": False}


def test_generate_request_media_and_multiple_system_parts() -> None:
    out = to_openai(
        {
            "systemInstruction": {"parts": [{"text": "A"}, {"text": "B"}]},
            "contents": [
                user(
                    {"inlineData": {"mimeType": "audio/mpeg", "data": "SUQz"}},
                    {"inline_data": {"mime_type": "application/pdf", "data": "JVBE"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a.jpg"}},
                    {"text": "thinking aloud", "thought": True},
                )
            ],
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        },
    ]


def test_generate_request_function_responses_match_calls_by_id_then_name() -> None:
    out = to_openai(
        {
            "contents": [
                user({"text": "go"}),
                {
                    "role": "model",
                    "parts": [
                        {"text": "plan", "thought": True},
                        {"functionCall": {"name": "a", "args": {"x": 1}}},
                        {"functionCall": {"name": "a", "args": {"x": 2}}},
                        {"functionCall": {"id": "fc-b", "name": "b"}},
                    ],
                },
                user(
                    {"functionResponse": {"id": "fc-b", "name": "b", "response": {"content": "B"}}},
                    {"functionResponse": {"name": "a", "response": {"output": 1}}},
                    {"functionResponse": {"name": "a", "response": {"output": 2}}},
                    {"text": "and now?"},
                ),
            ]
        }
    )
    calls = out["messages"][1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1_1", "call_1_2", "fc-b"]
    assert out["messages"][1]["content"] is None
    assert out["messages"][2:] == [
        {"role": "tool", "content": "B", "tool_call_id": "fc-b"},
        {"role": "tool", "content": '{"output":1}', "tool_call_id": "call_1_1"},
        {"role": "tool", "content": '{"output":2}', "tool_call_id": "call_1_2"},
        {"role": "user", "content": "and now?"},
    ]


@pytest.mark.parametrize(
    ("config", "choice"),
    [
        ({"mode": "NONE"}, "none"),
        ({"mode": "AUTO"}, "auto"),
        ({"mode": "ANY"}, "required"),
        ({"mode": "any", "allowedFunctionNames": ["f"]}, {"type": "function", "function": {"name": "f"}}),
        (
            {"mode": "ANY", "allowedFunctionNames": ["f", "g"]},
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "f"}},
                        {"type": "function", "function": {"name": "g"}},
                    ],
                },
            },
        ),
        (
            {"mode": "VALIDATED", "allowedFunctionNames": ["f"]},
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]},
            },
        ),
        ({"mode": "VALIDATED"}, "auto"),
    ],
)
def test_generate_request_tool_config(config: dict[str, Any], choice: Any) -> None:
    out = to_openai({"contents": [user({"text": "x"})], "toolConfig": {"functionCallingConfig": config}})
    assert out["tool_choice"] == choice


def test_generate_request_tool_config_unspecified_is_left_out() -> None:
    out = to_openai({"contents": [user({"text": "x"})], "toolConfig": {"functionCallingConfig": {}}})
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"thinkingLevel": "low"}, "low"),
        ({"thinking_level": "HIGH"}, "high"),
        ({"thinkingBudget": 0}, "none"),
        ({"thinkingBudget": 512}, "minimal"),
        ({"thinkingBudget": 8192}, "medium"),
        ({"thinkingBudget": 20000}, "high"),
        ({"thinkingBudget": 30000}, "xhigh"),
        ({"thinkingBudget": -1}, None),
        ({"includeThoughts": True}, None),
    ],
)
def test_generate_request_thinking(thinking: dict[str, Any], effort: str | None) -> None:
    out = to_openai({"contents": [user({"text": "x"})], "generationConfig": {"thinkingConfig": thinking}})
    assert out.get("reasoning_effort") == effort


def test_generate_request_openapi_schema_becomes_json_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "max_items": 3},
            "note": {"type": "STRING", "nullable": True},
        },
        "required": ["tags"],
        "propertyOrdering": ["tags", "note"],
    }
    expected = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "note": {"type": ["string", "null"]},
        },
        "required": ["tags"],
    }
    out = to_openai(
        {
            "contents": [user({"text": "x"})],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}],
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema, "topK": 3},
        }
    )
    assert out["tools"][0]["function"]["parameters"] == expected
    assert out["response_format"]["json_schema"]["schema"] == expected


def test_generate_request_json_mode_and_logprobs() -> None:
    out = to_openai(
        {
            "contents": [user({"text": "x"})],
            "generationConfig": {"responseMimeType": "application/json", "responseLogprobs": True, "logprobs": 2},
        }
    )
    assert out["response_format"] == {"type": "json_object"}
    assert (out["logprobs"], out["top_logprobs"]) == (True, 2)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"contents": []}, "contents", "invalid_value"),
        ({}, "contents", "invalid_value"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "contents[0].role", "invalid_value"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents[0].parts", "invalid_value"),
        ({"contents": [user({"videoMetadata": {}})]}, "contents[0].parts[0]", "invalid_value"),
        ({"contents": [user({"text": 3})]}, "contents[0].parts[0].text", "invalid_value"),
        (
            {"contents": [user({"functionResponse": {"name": "f", "response": {}}})]},
            "contents[0].parts[0].functionResponse",
            "invalid_value",
        ),
        ({"contents": [user({"functionCall": {"name": "f"}})]}, "contents[0].parts[0].functionCall", "invalid_value"),
        ({"contents": [user({"executableCode": {"code": "1"}})]}, "contents[0].parts[0]", "unsupported_parameter"),
        (
            {"contents": [{"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": "x"}}]}]},
            "contents[0].parts[0]",
            "unsupported_parameter",
        ),
        (
            {"contents": [user({"fileData": {"mimeType": "video/mp4", "fileUri": "https://x/v.mp4"}})]},
            "contents[0].parts[0].fileData.mimeType",
            "unsupported_parameter",
        ),
        (
            {"contents": [user({"text": "x"})], "cachedContent": "cachedContents/abc"},
            "cachedContent",
            "unsupported_parameter",
        ),
        ({"contents": [user({"text": "x"})], "tools": [{"googleSearch": {}}]}, "tools[0]", "unsupported_parameter"),
        (
            {"contents": [user({"text": "x"})], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "toolConfig.functionCallingConfig.mode",
            "invalid_value",
        ),
        (
            {"contents": [user({"text": "x"})], "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}},
            "generationConfig.responseModalities",
            "unsupported_parameter",
        ),
        (
            {"contents": [user({"text": "x"})], "generationConfig": {"responseMimeType": "text/x.enum"}},
            "generationConfig.responseMimeType",
            "unsupported_parameter",
        ),
        (
            {"contents": [user({"text": "x"})], "generationConfig": {"speechConfig": {"voiceConfig": {}}}},
            "generationConfig.speechConfig",
            "unsupported_parameter",
        ),
    ],
)
def test_generate_request_refuses_with_param(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        gemini.generate_request(json.dumps(body).encode(), model="m", stream=False)
    assert (e.value.status, e.value.param, e.value.code) == (400, param, code)


@pytest.mark.parametrize(("body", "code"), [(b"{nope", "invalid_json"), (b"[]", "invalid_value")])
def test_generate_request_refuses_bodies(body: bytes, code: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        gemini.generate_request(body, model="m", stream=False)
    assert e.value.code == code


def test_generate_response_fixture() -> None:
    out = json.loads(gemini.generate_response(fixture("openai_completion.json")))
    assert out == {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "I'll look that up."},
                        {
                            "functionCall": {
                                "name": "get_weather",
                                "args": {"city": "Paris", "unit": "celsius"},
                                "id": "call_q8Xk2Rk1mZJ0b5H3yS6tLwVe",
                            }
                        },
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 2006,
            "candidatesTokenCount": 44,
            "totalTokenCount": 2306,
            "cachedContentTokenCount": 1920,
            "thoughtsTokenCount": 256,
        },
        "modelVersion": "gpt-4.1-2025-04-14",
        "responseId": "chatcmpl-CBxqP8WgXh1Lr3W7n2xWmZk0Qe9aF",
    }


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("tool_calls", "STOP"), ("content_filter", "SAFETY")],
)
def test_generate_response_finish_reasons(reason: str, expected: str) -> None:
    body = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "y"}, "finish_reason": reason}],
    }
    out = json.loads(gemini.generate_response(json.dumps(body).encode()))
    assert out["candidates"][0]["finishReason"] == expected


def test_generate_response_reasoning_and_logprobs() -> None:
    body = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
                "logprobs": {"content": [{"token": "4", "logprob": -0.01, "bytes": [52], "top_logprobs": []}]},
                "finish_reason": "stop",
            }
        ],
    }
    [cand] = json.loads(gemini.generate_response(json.dumps(body).encode()))["candidates"]
    assert cand["content"]["parts"] == [{"text": "2+2", "thought": True}, {"text": "4"}]
    assert cand["logprobsResult"] == {
        "topCandidates": [],
        "chosenCandidates": [{"token": "4", "logProbability": -0.01}],
    }


@pytest.mark.parametrize("body", [b"nope", b'{"choices": [{"message": {"content": 5}}]}'])
def test_generate_response_rejects_what_is_not_a_completion(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        gemini.generate_response(body)


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_generate_error_statuses(status: int, name: str) -> None:
    body = b'{"error":{"message":"went wrong","type":"x","param":null,"code":null}}'
    assert json.loads(gemini.generate_error(status, body)) == {
        "error": {"code": status, "message": "went wrong", "status": name}
    }


def test_generate_error_not_json() -> None:
    assert json.loads(gemini.generate_error(502, b"bad gateway"))["error"]["message"] == "bad gateway"


# The round trip: OpenAI -> Gemini -> OpenAI keeps the meaning.

ROUND_TRIPS: list[dict[str, Any]] = [
    {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.5,
        "max_completion_tokens": 64,
    },
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ],
            },
        ],
        "stop": ["\n\n"],
        "seed": 3,
        "n": 2,
        "response_format": {"type": "json_object"},
    },
    {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9|ts:c2ln",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9|ts:c2ln", "content": "cold"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "description": "w", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "reasoning_effort": "high",
        "top_p": 0.8,
        "presence_penalty": 0.3,
        "frequency_penalty": 0.1,
    },
]


@pytest.mark.parametrize("request_body", ROUND_TRIPS)
def test_round_trip_keeps_meaning(request_body: dict[str, Any]) -> None:
    body = {"model": "gpt-x", **request_body}
    upstream = gemini.chat_request(json.dumps(body).encode())
    back = json.loads(gemini.generate_request(upstream, model="gpt-x", stream=False))
    back.pop("stream")
    for m in body["messages"]:
        if m["role"] == "assistant":
            m.setdefault("content", None)
    assert back == body


# The real google-genai SDK on both ends of the inbound direction.

Handler = Callable[[httpx.Request], httpx.Response]


def sdk_client(handler: Handler) -> genai.Client:
    transport = httpx.MockTransport(handler)
    options = types.HttpOptions(base_url="http://gateway.test/genai", httpx_client=httpx.Client(transport=transport))
    return genai.Client(api_key="test-key", http_options=options)


def test_sdk_reads_generate_response() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(gemini.generate_request(request.content, model="gpt-x", stream=False))
        return httpx.Response(200, content=gemini.generate_response(fixture("openai_completion.json")))

    r = sdk_client(handler).models.generate_content(model="gemini-2.5-flash", contents="Weather in Paris?")
    assert json.loads(seen[0])["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert r.text == "I'll look that up."
    assert r.function_calls is not None and r.function_calls[0].args == {"city": "Paris", "unit": "celsius"}
    assert r.usage_metadata is not None and r.usage_metadata.thoughts_token_count == 256
    assert r.response_id == "chatcmpl-CBxqP8WgXh1Lr3W7n2xWmZk0Qe9aF"


def test_sdk_reads_generate_stream() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params.get("alt") == "sse"
        body = gemini.GenerateStream().feed(fixture("openai_stream.sse"))
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    chunks = list(sdk_client(handler).models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    assert [c.text for c in chunks[:2]] == ["Checking", " now."]
    assert chunks[-1].function_calls is not None and chunks[-1].function_calls[0].name == "get_weather"
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.total_token_count == 78


def test_sdk_raises_on_generate_error_and_error_frames() -> None:
    def unary(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, content=gemini.generate_error(429, b'{"error":{"message":"slow down","type":"rate_limit_error"}}')
        )

    with pytest.raises(genai_errors.ClientError) as e:
        sdk_client(unary).models.generate_content(model="m", contents="Hi")
    assert (e.value.code, e.value.status, e.value.message) == (429, "RESOURCE_EXHAUSTED", "slow down")

    def stream(request: httpx.Request) -> httpx.Response:
        s = gemini.GenerateStream()
        body = s.feed(
            b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        )
        body += s.feed(
            b'data: {"error":{"message":"upstream timed out","type":"upstream_error","code":"upstream_timeout"}}\n\n'
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with pytest.raises(genai_errors.ServerError) as s_err:
        list(sdk_client(stream).models.generate_content_stream(model="m", contents="Hi"))
    assert s_err.value.code == 504


def test_generate_request_inline_documents_become_file_parts() -> None:
    """Non-image inline data (camelCase or snake_case) -> an OpenAI file part with a
    data URL and a filename from its type; images stay image parts."""
    out = json.loads(gemini.generate_request(fixture("request_files.json"), model="gpt-x", stream=False))
    assert out == json.loads(fixture("openai_request_files.json"))


def test_generate_request_url_safe_base64_becomes_standard() -> None:
    """google-genai sends bytes as URL-safe base64 (``-``, ``_``); OpenAI's data URLs and
    Anthropic's sources read standard base64 only."""
    raw = b"\xfb\xff>?"  # standard "+/8+Pw==", URL-safe "-_8-Pw"
    out = to_openai(
        {
            "contents": [
                user(
                    {"inlineData": {"mimeType": "application/pdf", "data": "-_8-Pw"}},
                    {"inlineData": {"mimeType": "image/png", "data": "-_8-Pw=="}},
                )
            ]
        }
    )
    (pdf, png) = out["messages"][0]["content"]
    assert pdf["file"]["file_data"] == "data:application/pdf;base64,+/8+Pw=="
    assert png["image_url"]["url"] == "data:image/png;base64,+/8+Pw=="
    assert base64.b64decode("+/8+Pw==") == raw
