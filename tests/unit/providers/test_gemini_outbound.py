"""gateway.providers.gemini, outbound: an OpenAI client's request to a Gemini upstream
and Gemini's unary answers and errors back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import gemini

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def to_gemini(**fields: Any) -> dict[str, Any]:
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi"}], **fields}
    out: dict[str, Any] = json.loads(gemini.chat_request(json.dumps(body).encode()))
    return out


def refused(**fields: Any) -> InvalidRequest:
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi"}], **fields}
    with pytest.raises(InvalidRequest) as e:
        gemini.chat_request(json.dumps(body).encode())
    assert e.value.status == 400
    return e.value


TOOL_TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and the time?"},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_1|ts:c2lnMTIz",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1|ts:c2lnMTIz", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
    {"role": "user", "content": "Thanks"},
]


def test_chat_request_maps_generation_config() -> None:
    out = to_gemini(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        n=2,
        stop=["END", "STOP"],
        max_tokens=100,
        max_completion_tokens=200,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logprobs=True,
        top_logprobs=3,
        stream=True,
        stream_options={"include_usage": True},
        user="u-1",
        service_tier="auto",
        parallel_tool_calls=False,
        fallbacks=["other"],
        mock={"tokens": 3},
    )
    assert out["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40.0,
        "candidateCount": 2,
        "maxOutputTokens": 200,
        "stopSequences": ["END", "STOP"],
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "seed": 7,
        "responseLogprobs": True,
        "logprobs": 3,
    }
    assert "model" not in out and "stream" not in out
    assert set(out) == {"contents", "generationConfig"}


def test_chat_request_max_tokens_and_string_stop() -> None:
    cfg = to_gemini(max_tokens=50, stop="END")["generationConfig"]
    assert cfg == {"maxOutputTokens": 50, "stopSequences": ["END"]}


def test_chat_request_plain_has_no_generation_config() -> None:
    assert to_gemini() == {"contents": [{"parts": [{"text": "Hi"}], "role": "user"}]}


def test_chat_request_system_developer_and_merged_turns() -> None:
    out = to_gemini(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "One"},
            {"role": "user", "content": [{"type": "text", "text": "Two"}]},
            {"role": "assistant", "content": "Un, deux."},
        ]
    )
    assert out["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Answer in French."}]}
    assert out["contents"] == [
        {"parts": [{"text": "One"}, {"text": "Two"}], "role": "user"},
        {"parts": [{"text": "Un, deux."}], "role": "model"},
    ]


def test_chat_request_images_audio_and_files() -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.WEBP?size=2"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/render"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]
    parts = to_gemini(messages=[{"role": "user", "content": content}])["contents"][0]["parts"]
    assert parts == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.WEBP?size=2", "mimeType": "image/webp"}},
        {"fileData": {"fileUri": "https://example.com/render", "mimeType": "image/jpeg"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


def test_chat_request_tool_calls_results_and_signatures() -> None:
    out = to_gemini(messages=TOOL_TURN)
    assert out["contents"] == [
        {"parts": [{"text": "Weather in Paris and the time?"}], "role": "user"},
        {
            "parts": [
                {"text": "Let me check."},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"},
                    "thoughtSignature": "c2lnMTIz",
                },
                {"functionCall": {"name": "get_time", "args": {}, "id": "call_2"}},
            ],
            "role": "model",
        },
        {
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}, "id": "call_1"}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}, "id": "call_2"}},
                {"text": "Thanks"},
            ],
            "role": "user",
        },
    ]


def test_chat_request_gemini3_unsigned_calls_get_the_placeholder() -> None:
    messages = [*TOOL_TURN[:2], *TOOL_TURN[2:4]]
    messages[1] = {**messages[1], "tool_calls": [{**messages[1]["tool_calls"][1], "id": "call_1"}]}
    messages[2] = {**messages[2], "tool_call_id": "call_1"}
    messages = messages[:3]
    out = to_gemini(model="gemini-3-pro-preview", messages=messages)
    assert out["contents"][1]["parts"][1]["thoughtSignature"] == "skip_thought_signature_validator"
    # 2.5 models do not check signatures: nothing is invented for them.
    assert "thoughtSignature" not in to_gemini(messages=messages)["contents"][1]["parts"][1]


def test_chat_request_tools_and_declarations() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}
    out = to_gemini(
        tools=[
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": params}},
            {"type": "function", "function": {"name": "ping", "strict": True}},
        ]
    )
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema": params},
                {"name": "ping"},
            ]
        }
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]},
            },
            {"mode": "VALIDATED", "allowedFunctionNames": ["f"]},
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "g"}}]},
            },
            {"mode": "ANY", "allowedFunctionNames": ["g"]},
        ),
    ],
)
def test_chat_request_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    assert to_gemini(tool_choice=choice)["toolConfig"] == {"functionCallingConfig": config}


def test_chat_request_response_format() -> None:
    assert to_gemini(response_format={"type": "text"}).get("generationConfig") is None
    assert to_gemini(response_format={"type": "json_object"})["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    rf = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}}
    assert to_gemini(response_format=rf)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [
        ("none", {"thinkingBudget": 0}),
        ("minimal", {"includeThoughts": True, "thinkingBudget": 512}),
        ("low", {"includeThoughts": True, "thinkingBudget": 1024}),
        ("medium", {"includeThoughts": True, "thinkingBudget": 8192}),
        ("high", {"includeThoughts": True, "thinkingBudget": 24576}),
        ("xhigh", {"includeThoughts": True, "thinkingBudget": 32768}),
    ],
)
def test_chat_request_reasoning_effort(effort: str, thinking: dict[str, Any]) -> None:
    assert to_gemini(reasoning_effort=effort)["generationConfig"] == {"thinkingConfig": thinking}


def test_chat_request_legacy_function_message() -> None:
    out = to_gemini(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "function", "name": "lookup", "content": "42"},
        ]
    )
    assert out["contents"] == [
        {
            "parts": [{"text": "Hi"}, {"functionResponse": {"name": "lookup", "response": {"content": "42"}}}],
            "role": "user",
        }
    ]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"logit_bias": {"50256": -100}}, "logit_bias", "unsupported_parameter"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type", "unsupported_parameter"),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({"tool_choice": {"type": "mcp"}}, "tool_choice.type", "invalid_value"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"reasoning_effort": "maximal"}, "reasoning_effort", "invalid_value"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages", "invalid_value"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]},
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
            "messages[0].content[0].image_url.url",
            "invalid_value",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}
                ]
            },
            "messages[0].content[0].image_url.url",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]},
            "messages[0].content[0].file.file_id",
            "unsupported_parameter",
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
                ]
            },
            "messages[0].content[0].type",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[0].tool_call_id",
            "invalid_value",
        ),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name", "invalid_value"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_value"),
    ],
)
def test_chat_request_refuses_with_param(fields: dict[str, Any], param: str, code: str) -> None:
    e = refused(**fields)
    assert (e.param, e.code) == (param, code)
    assert "gemini" in e.message


@pytest.mark.parametrize(("arguments", "what"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_chat_request_refuses_bad_tool_arguments(arguments: str, what: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    e = refused(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}])
    assert e.param == "messages[1].tool_calls[0].function.arguments"
    assert what in e.message


def test_chat_request_refuses_invalid_json() -> None:
    with pytest.raises(InvalidRequest) as e:
        gemini.chat_request(b"{nope")
    assert e.value.code == "invalid_json"


def test_chat_response_tool_call_fixture() -> None:
    out = json.loads(gemini.chat_response(fixture("response_tool_call.json"), model="gemini-flash", created=1700))
    parts = json.loads(fixture("response_tool_call.json"))["candidates"][0]["content"]["parts"]
    sig = parts[2]["thoughtSignature"]
    [choice] = out["choices"]
    calls = choice["message"]["tool_calls"]
    assert out["id"] == "kX1daPnPL4ntnsEPv9qR4Qo"
    assert (out["object"], out["created"], out["model"]) == ("chat.completion", 1700, "gemini-flash")
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check that for you."
    assert choice["message"]["reasoning"].startswith("**Checking the forecast**")
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
        {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
    ]
    first, second = calls[0]["id"], calls[1]["id"]
    assert first.endswith("|ts:" + sig) and "|ts:" not in second
    assert first.split("|")[0].endswith("_0") and second.endswith("_1")
    assert first.startswith("call_") and first.split("_")[1] == second.split("_")[1]
    assert out["usage"] == {
        "prompt_tokens": 1200,
        "completion_tokens": 128,
        "total_tokens": 1328,
        "prompt_tokens_details": {"cached_tokens": 1024, "cached_read_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 88},
    }
    # The same answer always gets the same ids.
    again = json.loads(gemini.chat_response(fixture("response_tool_call.json"), model="m", created=1))
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] == first


def test_chat_response_signature_round_trips_to_the_next_request() -> None:
    out = json.loads(gemini.chat_response(fixture("response_tool_call.json"), model="m", created=1))
    message = out["choices"][0]["message"]
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in message["tool_calls"]]
    nxt = to_gemini(messages=[{"role": "user", "content": "Weather?"}, {"role": "assistant", **message}, *results])
    parts = json.loads(fixture("response_tool_call.json"))["candidates"][0]["content"]["parts"]
    sent = nxt["contents"][1]["parts"]
    assert sent[1]["thoughtSignature"] == parts[2]["thoughtSignature"]
    assert "thoughtSignature" not in sent[2]
    assert [p["functionResponse"]["name"] for p in nxt["contents"][2]["parts"]] == ["get_weather", "get_time"]
    assert sent[1]["functionCall"]["id"] == nxt["contents"][2]["parts"][0]["functionResponse"]["id"]


def test_chat_response_text_and_max_tokens() -> None:
    out = json.loads(gemini.chat_response(fixture("response_text.json"), model="m", created=1))
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "AI learns patterns from data to make predictions."},
            "finish_reason": "length",
        }
    ]
    assert out["usage"] == {"prompt_tokens": 8, "completion_tokens": 10, "total_tokens": 18}


def test_chat_response_blocked_prompt() -> None:
    out = json.loads(gemini.chat_response(fixture("response_blocked.json"), model="m", created=1))
    assert out["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter"}
    ]
    assert out["usage"]["prompt_tokens"] == 12


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
def test_chat_response_finish_reasons(reason: str, expected: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "finishReason": reason}]}
    out = json.loads(gemini.chat_response(json.dumps(body).encode(), model="m", created=1))
    assert out["choices"][0]["finish_reason"] == expected


def test_chat_response_candidates_become_choices_and_ids_are_generated() -> None:
    body = {
        "candidates": [
            {"content": {"parts": [{"text": "A"}], "role": "model"}, "finishReason": "STOP", "index": 0},
            {"content": {"parts": [{"text": "B"}], "role": "model"}, "finishReason": "STOP", "index": 1},
        ]
    }
    out = json.loads(gemini.chat_response(json.dumps(body).encode(), model="m", created=1))
    assert [(c["index"], c["message"]["content"]) for c in out["choices"]] == [(0, "A"), (1, "B")]
    assert out["id"].startswith("chatcmpl-")
    assert "usage" not in out  # none reported: the gateway counts


def test_chat_response_keeps_gemini_call_ids_and_logprobs() -> None:
    body = {
        "candidates": [
            {
                "content": {"parts": [{"functionCall": {"id": "fc-9", "name": "f", "args": {}}}], "role": "model"},
                "finishReason": "STOP",
                "logprobsResult": {
                    "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1}]}],
                    "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}],
                },
            }
        ]
    }
    [choice] = json.loads(gemini.chat_response(json.dumps(body).encode(), model="m", created=1))["choices"]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "fc-9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert choice["logprobs"] == {
        "content": [{"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}]
    }


@pytest.mark.parametrize("body", [b"<html>502</html>", b'{"candidates": 3}', b"{}", b'{"candidates": []}'])
def test_chat_response_rejects_what_is_not_a_response(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as e:
        gemini.chat_response(body, model="m", created=1)
    assert e.value.status == 502
    assert "gemini" in e.value.message


@pytest.mark.parametrize(
    ("status", "name", "kind", "code", "message"),
    [
        (429, "error_429.json", "rate_limit_error", "RESOURCE_EXHAUSTED", "You exceeded your current quota"),
        (400, "error_400_list.json", "invalid_request_error", "INVALID_ARGUMENT", "Invalid JSON payload"),
    ],
)
def test_error_body_fixtures(status: int, name: str, kind: str, code: str, message: str) -> None:
    err = json.loads(gemini.error_body(status, fixture(name)))["error"]
    assert (err["type"], err["code"], err["param"]) == (kind, code, None)
    assert err["message"].startswith(message)


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (401, "authentication_error", "UNAUTHENTICATED"),
        (403, "permission_error", "PERMISSION_DENIED"),
        (503, "server_error", "UNAVAILABLE"),
    ],
)
def test_error_body_not_json(status: int, kind: str, code: str) -> None:
    err = json.loads(gemini.error_body(status, b"<html>Service Unavailable</html>"))["error"]
    assert (err["type"], err["code"]) == (kind, code)
    assert "Service Unavailable" in err["message"] and str(status) in err["message"]


def test_chat_request_file_parts_become_inline_data() -> None:
    """A data URL's type (parameters dropped), or plain base64 typed by its filename."""
    out = json.loads(gemini.chat_request(fixture("chat_request_files.json")))
    assert out == json.loads(fixture("contents_files.json"))


@pytest.mark.parametrize(
    ("file", "param"),
    [
        ({"file_id": "file-abc"}, "messages[0].content[1].file.file_id"),
        ({"file_data": "JVBERi0="}, "messages[0].content[1].file.file_data"),
        ({"file_data": "JVBERi0=", "filename": "deck.pptx"}, "messages[0].content[1].file.file_data"),
        ({"file_data": "data:application/pdf,JVBERi0="}, "messages[0].content[1].file.file_data"),
        ({}, "messages[0].content[1].file.file_data"),
        (None, "messages[0].content[1].file"),
    ],
)
def test_chat_request_refuses_untranslatable_files_naming_the_part(file: dict[str, Any] | None, param: str) -> None:
    part: dict[str, Any] = {"type": "file"} if file is None else {"type": "file", "file": file}
    e = refused(messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, part]}])
    assert e.param == param
