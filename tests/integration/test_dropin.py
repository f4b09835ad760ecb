"""SDK drop-in routes: the official ``anthropic`` and ``google-genai`` SDKs against a real
gateway, whose upstream is one ``gateway mock`` answering OpenAI's, Anthropic's and
Gemini's wire formats and recording what it received. Each SDK reaches a target of its
own dialect (passed through), an OpenAI-dialect target and the other dialect (both
translated), unary and streaming, with tool calls, errors and fallbacks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import Proc, free_port, metric, start_mock

KEY = "sk-dropin-upstream-0123456789"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("dropin-up"), "--api-key", KEY, "--record", "50")
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp(f"gw-dropin-{request.param}")
    key = [{"value": "env.DROPIN_KEY"}]
    providers: dict[str, dict[str, Any]] = {
        "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
        "gemini": {"dialect": "gemini", "base_url": up.url, "keys": key},
        "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key},
        # Nothing listens there: connection refused, a retryable failure.
        "dead": {"dialect": "anthropic", "base_url": f"http://127.0.0.1:{free_port()}", "keys": key},
    }
    for p in providers.values():
        p["client"] = request.param
    cfg = d / "gateway.json"
    cfg.write_text(json.dumps({"providers": providers, "default_provider": "up"}))
    port = free_port()
    proc = Proc(
        ["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log", env={"DROPIN_KEY": KEY}
    )
    yield proc
    proc.stop()
    assert KEY not in proc.log.read_text()


def _clear(up: Proc) -> None:
    httpx.delete(up.url + "/mock/requests")


def _seen(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


def _claude(gw: Proc) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key="unused", max_retries=0)


def _genai(gw: Proc, version: str = "v1beta") -> genai.Client:
    opts = types.HttpOptions(base_url=gw.url + "/genai", api_version=version, retry_options=None)
    return genai.Client(api_key="unused", http_options=opts)


# The upstream path each target is reached at, by model.
ANTHROPIC_MODELS = {
    "claude-x": "/v1/messages",  # bare: the route's own provider, passed through
    "up/gpt-x": "/v1/chat/completions",
    "gemini/gem-x": "/v1beta/models/gem-x:generateContent",
}
GENAI_MODELS = {
    "gem-x": "/v1beta/models/gem-x:generateContent",
    "up/gpt-x": "/v1/chat/completions",
    "anthropic/claude-x": "/v1/messages",
}
TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
}


# --- Anthropic SDK --------------------------------------------------------------------


@pytest.mark.parametrize("model", list(ANTHROPIC_MODELS))
def test_anthropic_sdk_unary(gw: Proc, up: Proc, model: str) -> None:
    _clear(up)
    with _claude(gw) as client:
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=7,
            system="Be brief.",
            messages=[{"role": "user", "content": "Say something."}],
            extra_body={"top_k": 5},  # no OpenAI equivalent: only a pass-through keeps it
        )
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "max_tokens"
    (block,) = msg.content
    assert block.type == "text" and len(block.text.split()) == 7
    assert msg.usage.output_tokens == 7 and msg.usage.input_tokens > 0
    provider = model.split("/")[0] if "/" in model else "anthropic"
    assert raw.headers["x-bifrost-provider"] == provider
    (seen,) = _seen(up)
    assert seen["path"] == ANTHROPIC_MODELS[model]
    body = json.loads(seen["body"])
    if "/" not in model:  # passed through: the SDK's own body, byte for byte
        assert body == {
            "max_tokens": 7,
            "messages": [{"role": "user", "content": "Say something."}],
            "model": "claude-x",
            "system": "Be brief.",
            "top_k": 5,
        }
    elif provider == "up":
        assert body["model"] == "gpt-x" and body["max_completion_tokens"] == 7
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert "Be brief." in json.dumps(body["systemInstruction"])


@pytest.mark.parametrize("model", list(ANTHROPIC_MODELS))
def test_anthropic_sdk_stream_matches_unary(gw: Proc, up: Proc, model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "Stream something."}]
    with _claude(gw) as client:
        whole = client.messages.create(model=model, max_tokens=9, messages=messages)
        with client.messages.stream(model=model, max_tokens=9, messages=messages) as s:
            events = [e.type for e in s]
            final = s.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 9


@pytest.mark.parametrize("model", list(ANTHROPIC_MODELS))
@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_sdk_tool_loop(gw: Proc, model: str, streamed: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with _claude(gw) as client:
        if streamed:
            with client.messages.stream(model=model, max_tokens=20, messages=messages, tools=[TOOL]) as s:  # type: ignore[list-item]
                first = s.get_final_message()
        else:
            first = client.messages.create(model=model, max_tokens=20, messages=messages, tools=[TOOL])  # type: ignore[list-item]
        assert first.stop_reason == "tool_use"
        (use,) = [b for b in first.content if b.type == "tool_use"]
        assert use.name == "get_weather" and use.input == {"city": "mock", "unit": "celsius"}
        messages += [
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C"}]},
        ]
        second = client.messages.create(model=model, max_tokens=4, messages=messages, tools=[TOOL])  # type: ignore[list-item]
    assert second.stop_reason == "max_tokens" and second.content[0].type == "text"


def test_anthropic_sdk_passthrough_is_accounted(gw: Proc) -> None:
    before = metric(gw, "gateway_tokens_total", provider="anthropic", direction="output")
    with _claude(gw) as client:
        client.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        with client.messages.stream(model="claude-x", max_tokens=6, messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_message()
    assert metric(gw, "gateway_tokens_total", provider="anthropic", direction="output") == before + 11


@pytest.mark.parametrize("model", ["claude-x", "gemini/gem-x"])
@pytest.mark.parametrize(
    ("status", "error"),
    [(429, anthropic.RateLimitError), (500, anthropic.InternalServerError), (400, anthropic.BadRequestError)],
)
def test_anthropic_sdk_upstream_errors(gw: Proc, model: str, status: int, error: type[Exception]) -> None:
    mock = json.dumps({"fail_status": status})
    with _claude(gw) as client, pytest.raises(error) as info:
        client.messages.create(
            model=model,
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-bf-eh-x-mock": mock},
        )
    e = info.value
    assert isinstance(e, anthropic.APIStatusError) and e.status_code == status
    body = e.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == {429: "rate_limit_error", 500: "api_error", 400: "invalid_request_error"}[status]
    assert "injected HTTP" in body["error"]["message"] and KEY not in json.dumps(body)


def test_anthropic_sdk_falls_back(gw: Proc, up: Proc) -> None:
    _clear(up)
    with _claude(gw) as client:
        raw = client.messages.with_raw_response.create(
            model="dead/claude-x",
            max_tokens=3,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"fallbacks": ["up/gpt-x", "claude-y"]},
        )
    assert raw.headers["x-bifrost-provider"] == "up" and raw.headers["x-bifrost-fallback-index"] == "1"
    assert raw.parse().usage.output_tokens == 3
    (seen,) = _seen(up)
    body = json.loads(seen["body"])
    assert body["model"] == "gpt-x" and "fallbacks" not in body


def test_anthropic_sdk_fallback_of_the_same_dialect_gets_its_model_and_no_gateway_fields(gw: Proc, up: Proc) -> None:
    _clear(up)
    with _claude(gw) as client:
        raw = client.messages.with_raw_response.create(
            model="dead/claude-x",
            max_tokens=3,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"fallbacks": ["claude-y"]},
        )
    assert raw.headers["x-bifrost-fallback-index"] == "1"
    (seen,) = _seen(up)
    assert json.loads(seen["body"]) == {
        "max_tokens": 3,
        "messages": [{"role": "user", "content": "hi"}],
        "model": "claude-y",
    }


def test_anthropic_sdk_all_failing_lists_attempts(gw: Proc) -> None:
    with _claude(gw) as client, pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model="dead/a",
            max_tokens=3,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"fallbacks": ["dead/b"]},
        )
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert [a["model"] for a in body["extra_fields"]["attempts"]] == ["a", "b"]


def test_anthropic_beta_header_is_forwarded(gw: Proc, up: Proc) -> None:
    _clear(up)
    with _claude(gw) as client:
        client.messages.create(
            model="claude-x",
            max_tokens=2,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": "some-feature-2025-01-01"},
        )
    (seen,) = _seen(up)
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["anthropic-beta"] == "some-feature-2025-01-01" and headers["x-api-key"] == KEY


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b'{"max_tokens": 5, "messages": []}', "model"),
        (b'{"model": 7}', "model"),
        (b'{"model": "claude-x", "fallbacks": "up/x"}', "fallbacks"),
    ],
)
def test_anthropic_route_bad_input(gw: Proc, body: bytes, param: str | None) -> None:
    r = httpx.post(gw.url + "/anthropic/v1/messages", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    out = r.json()
    assert out["type"] == "error" and out["error"]["type"] == "invalid_request_error"
    assert out["error"]["message"] and out["error"]["param"] == param


def test_anthropic_route_untranslatable_request_names_the_field(gw: Proc) -> None:
    # A document from Anthropic's Files API reaches an Anthropic target as it is, but no
    # other dialect (base64 and text documents are translated: tests/integration/test_files.py).
    body = {
        "model": "up/gpt-x",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "file_011"}}]}
        ],
    }
    r = httpx.post(gw.url + "/anthropic/v1/messages", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content[0].source.type"


# --- Google GenAI SDK -----------------------------------------------------------------


@pytest.mark.parametrize("model", list(GENAI_MODELS))
def test_genai_sdk_unary(gw: Proc, up: Proc, model: str) -> None:
    _clear(up)
    client = _genai(gw)
    r = client.models.generate_content(
        model=model,
        contents="Say something.",
        # top_k: Gemini's own, no OpenAI equivalent: only a pass-through keeps it.
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=6, top_k=3),
    )
    assert r.text is not None and len(r.text.split()) == 6
    assert r.candidates and r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata and r.usage_metadata.candidates_token_count == 6
    (seen,) = _seen(up)
    assert seen["path"] == GENAI_MODELS[model]
    body = json.loads(seen["body"])
    if "/" not in model:  # passed through as the SDK sent it
        assert body["contents"] == [{"parts": [{"text": "Say something."}], "role": "user"}]
        assert body["generationConfig"] == {"maxOutputTokens": 6, "topK": 3}
    elif model.startswith("up/"):
        assert body["model"] == "gpt-x" and body["max_completion_tokens"] == 6
    else:
        assert body["model"] == "claude-x" and body["max_tokens"] == 6


def test_genai_sdk_v1_route(gw: Proc, up: Proc) -> None:
    _clear(up)
    client = _genai(gw, "v1")
    r = client.models.generate_content(model="gem-x", contents="hi")
    assert r.text
    assert _seen(up)[0]["path"] == "/v1beta/models/gem-x:generateContent"


@pytest.mark.parametrize("model", list(GENAI_MODELS))
def test_genai_sdk_stream_matches_unary(gw: Proc, up: Proc, model: str) -> None:
    client = _genai(gw)
    config = types.GenerateContentConfig(max_output_tokens=8)
    whole = client.models.generate_content(model=model, contents="Stream.", config=config)
    _clear(up)
    chunks = list(client.models.generate_content_stream(model=model, contents="Stream.", config=config))
    assert "".join(c.text or "" for c in chunks) == whole.text
    last = chunks[-1]
    assert last.usage_metadata and last.usage_metadata.candidates_token_count == 8
    if "/" not in model:
        assert _seen(up)[0]["path"] == "/v1beta/models/gem-x:streamGenerateContent"


WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.mark.parametrize("model", list(GENAI_MODELS))
@pytest.mark.parametrize("streamed", [False, True])
def test_genai_sdk_tool_loop(gw: Proc, model: str, streamed: bool) -> None:
    client = _genai(gw)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        max_output_tokens=20,
    )
    contents: list[Any] = [types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])]
    if streamed:
        chunks = list(client.models.generate_content_stream(model=model, contents=contents, config=config))
        calls = [fc for c in chunks for fc in (c.function_calls or [])]
        answer_content = types.Content(role="model", parts=[types.Part(function_call=fc) for fc in calls])
    else:
        r = client.models.generate_content(model=model, contents=contents, config=config)
        calls = r.function_calls or []
        assert r.candidates and r.candidates[0].content
        answer_content = r.candidates[0].content
    (call,) = calls
    assert call.name == "get_weather" and call.args == {"city": "mock"}
    contents += [
        answer_content,
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"t": "18 C"}))],
        ),
    ]
    r2 = client.models.generate_content(model=model, contents=contents, config=config)
    assert r2.text and not r2.function_calls


@pytest.mark.parametrize("model", ["gem-x", "anthropic/claude-x"])
@pytest.mark.parametrize("status", [429, 500, 400])
def test_genai_sdk_upstream_errors(gw: Proc, model: str, status: int) -> None:
    client = _genai(gw)
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-bf-eh-x-mock": json.dumps({"fail_status": status})})
    )
    with pytest.raises(genai_errors.APIError) as info:
        client.models.generate_content(model=model, contents="hi", config=config)
    e = info.value
    assert e.code == status and e.message and "injected HTTP" in e.message
    assert e.status == {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 400: "INVALID_ARGUMENT"}[status]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/genai/v1beta/models/gem-x:generateContent", b"{not json", 400),
        ("/genai/v1beta/models/gem-x:generateContent", b"[1]", 400),
        ("/genai/v1beta/models/gem-x:predict", b"{}", 404),
        ("/genai/v1beta/models/gem-x:countTokens", b"{}", 400),
        ("/genai/v1beta/models/:generateContent", b"{}", 404),
        ("/genai/v1beta/models/up/gpt-x:generateContent", b'{"contents": []}', 400),
    ],
)
def test_genai_route_bad_input(gw: Proc, path: str, body: bytes, status: int) -> None:
    r = httpx.post(gw.url + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["message"] and err["status"]


def _normalized(text: str) -> str:
    """Without the per-answer ids; CRLF as LF (the gateway's SSE framing normalises it)."""
    return re.sub(r'"(id|responseId)":"[^"]*"', r'"\1":"-"', text).replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("route", "upstream", "body"),
    [
        (
            "/anthropic/v1/messages",
            "/v1/messages",
            {
                "model": "claude-x",
                "max_tokens": 6,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
                "top_k": 4,
            },
        ),
        (
            "/genai/v1beta/models/gem-x:streamGenerateContent?alt=sse",
            "/v1beta/models/gem-x:streamGenerateContent?alt=sse",
            {
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "generationConfig": {"maxOutputTokens": 6, "topK": 4},
            },
        ),
    ],
)
def test_same_dialect_stream_is_passed_through(
    gw: Proc, up: Proc, route: str, upstream: str, body: dict[str, Any]
) -> None:
    _clear(up)
    direct = httpx.post(up.url + upstream, json=body, headers={"x-api-key": KEY, "x-goog-api-key": KEY})
    relayed = httpx.post(gw.url + route, json=body)
    assert direct.status_code == relayed.status_code == 200
    assert relayed.headers["content-type"].startswith("text/event-stream")
    assert _normalized(relayed.text) == _normalized(direct.text)
    # The upstream got the client's body as it was (top_k has no OpenAI equivalent).
    assert [json.loads(r["body"]) for r in _seen(up)] == [body, body]


@pytest.mark.parametrize("model", ["claude-x", "up/gpt-x", "gemini/gem-x"])
@pytest.mark.parametrize("fault", ["reset_after", "garbage_after"])
def test_anthropic_stream_cut_mid_way_ends_with_an_error_event(gw: Proc, model: str, fault: str) -> None:
    body = {"model": model, "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-bf-eh-x-mock": json.dumps({fault: 4})}
    r = httpx.post(gw.url + "/anthropic/v1/messages", json=body, headers=headers, timeout=10)
    assert r.status_code == 200
    events = [f for f in r.text.replace("\r\n", "\n").split("\n\n") if f]
    assert events[0].startswith("event: message_start")
    last = events[-1]
    assert last.startswith("event: error"), last
    err = json.loads(last.split("data: ", 1)[1])
    assert err["type"] == "error" and err["error"]["message"]
    assert "message_stop" not in r.text and "<html>" not in r.text


@pytest.mark.parametrize("model", ["up/gpt-x", "anthropic/claude-x"])
def test_gemini_signed_tool_ids_are_stripped_for_other_providers(gw: Proc, up: Proc, model: str) -> None:
    # A conversation begun on a Gemini model carries "<id>|ts:<signature>" tool call ids
    # (long, and with characters OpenAI and Anthropic refuse); it goes on elsewhere.
    signed = "call_7|ts:" + "QUJD" * 60
    messages: list[Any] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": signed, "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": signed, "content": "18 C"},
    ]
    _clear(up)
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": model, "messages": messages, "max_tokens": 2})
    assert r.status_code == 200, r.text
    (seen,) = _seen(up)
    assert "|ts:" not in seen["body"] and "call_7" in seen["body"]


def test_anthropic_thinking_in_history_reaches_an_openai_target_without_reasoning(gw: Proc, up: Proc) -> None:
    # Signed thinking sent back (as Anthropic asks in a tool loop): the Chat Completions
    # API has no input for it, so an OpenAI-dialect target gets the turn's text only.
    history: list[Any] = [
        {"role": "user", "content": "Think, then answer."},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "c2lnbmVk"},
                {"type": "text", "text": "Done."},
            ],
        },
        {"role": "user", "content": "Again?"},
    ]
    _clear(up)
    with _claude(gw) as client:
        client.messages.create(model="up/gpt-x", max_tokens=4, messages=history)
    (seen,) = _seen(up)
    assistant = json.loads(seen["body"])["messages"][1]
    assert assistant == {"role": "assistant", "content": "Done."}
