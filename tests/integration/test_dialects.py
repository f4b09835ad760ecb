"""OpenAI clients reaching Anthropic- and Gemini-dialect providers through the gateway:
the official openai SDK against a real gateway, whose upstream is ``gateway mock``
answering Anthropic's ``POST /v1/messages`` and Gemini's ``generateContent`` /
``streamGenerateContent`` wire formats, with what it received recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, free_port, metric, start_mock

KEY = "sk-dialect-upstream-0123456789"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("dialect-up"), "--api-key", KEY, "--record", "50")
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp(f"gw-dialects-{request.param}")
    providers = {
        "claude": {"dialect": "anthropic", "base_url": up.url, "keys": [{"value": "env.DIALECT_KEY"}]},
        "gem": {"dialect": "gemini", "base_url": up.url, "keys": [{"value": "env.DIALECT_KEY"}]},
        "claude-badkey": {"dialect": "anthropic", "base_url": up.url, "keys": [{"value": "sk-ant-wrong-key-xyz"}]},
    }
    for p in providers.values():
        p["client"] = request.param
    cfg = d / "gateway.json"
    cfg.write_text(json.dumps({"providers": providers}))
    port = free_port()
    proc = Proc(
        ["serve", "--config", str(cfg), "--port", str(port)],
        port=port,
        log=d / "gateway.log",
        env={"DIALECT_KEY": KEY},
    )
    yield proc
    proc.stop()
    assert KEY not in proc.log.read_text()


def _seen(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


def _client(gw: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say something."},
]


@pytest.mark.parametrize(("model", "path"), [("claude/claude-x", "/v1/messages"), ("gem/gem-x", None)])
def test_dialect_unary_through_openai_sdk(gw: Proc, up: Proc, model: str, path: str | None) -> None:
    httpx.delete(up.url + "/mock/requests")
    with _client(gw) as client:
        r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12)
    assert r.choices[0].message.content and r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 12 and r.usage.prompt_tokens > 0
    extra = r.model_extra["extra_fields"]  # type: ignore[index]
    assert extra["provider"] == model.split("/")[0] and extra["model_deployment"] == model.split("/")[1]
    (seen,) = _seen(up)
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    body = json.loads(seen["body"])
    if path:  # Anthropic: its path, key header, version header, system apart, max_tokens
        assert seen["path"] == path
        assert headers["x-api-key"] == KEY and headers["anthropic-version"] and "authorization" not in headers
        assert body["model"] == "claude-x" and body["max_tokens"] == 12 and "Be brief." in json.dumps(body["system"])
    else:  # Gemini: the model in the path, its key header, systemInstruction
        assert seen["path"] == "/v1beta/models/gem-x:generateContent"
        assert headers["x-goog-api-key"] == KEY and "authorization" not in headers
        assert "model" not in body and "Be brief." in json.dumps(body["systemInstruction"])
        assert body["generationConfig"]["maxOutputTokens"] == 12


@pytest.mark.parametrize("model", ["claude/claude-x", "gem/gem-x"])
def test_dialect_stream_matches_unary(gw: Proc, up: Proc, model: str) -> None:
    with _client(gw) as client:
        whole = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=9)
        chunks = list(
            client.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=9, stream=True, stream_options={"include_usage": True}
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 9
    if model.startswith("gem"):
        assert _seen(up)[-1]["path"] == "/v1beta/models/gem-x:streamGenerateContent"


@pytest.mark.parametrize("model", ["claude/claude-x", "gem/gem-x"])
def test_dialect_stream_without_usage_request_has_usage_on_finish_chunk(gw: Proc, model: str) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "max_tokens": 5, "stream": True},
        timeout=10,
    )
    assert r.status_code == 200
    frames = [f for f in r.text.split("\n\n") if f.startswith("data: ")]
    assert frames[-1] == "data: [DONE]"
    bodies = [json.loads(f[6:]) for f in frames[:-1]]
    # The translated usage chunk is not relayed: its usage is on the finish chunk, once.
    assert all(b["choices"] for b in bodies)
    assert all(b.get("usage") is None for b in bodies[:-1])
    assert bodies[-1]["choices"][0]["finish_reason"] == "length"
    assert bodies[-1]["usage"]["completion_tokens"] == 5
    assert bodies[-1]["extra_fields"]["provider"] == model.split("/")[0]


@pytest.mark.parametrize("model", ["claude/claude-x", "gem/gem-x"])
@pytest.mark.parametrize("status", [429, 500, 503])
def test_dialect_error_status_is_an_openai_error(gw: Proc, model: str, status: int) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"x-bf-eh-x-mock": json.dumps({"fail_status": status})},
        timeout=10,
    )
    assert r.status_code == status
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and "type" in err and "code" in err


def test_dialect_upstream_auth_error_is_relayed_and_scrubbed(gw: Proc) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "claude-badkey/c", "messages": MESSAGES})
    assert r.status_code == 401
    assert "sk-ant-wrong-key-xyz" not in r.text
    assert r.json()["error"]["message"]


def test_dialect_unsupported_parameter_is_a_400(gw: Proc) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "claude/claude-x", "messages": MESSAGES, "logit_bias": {"1": 2}},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "logit_bias" and "anthropic" in err["message"].lower()


def test_dialect_untranslatable_primary_falls_back(gw: Proc) -> None:
    # Anthropic has no n > 1; Gemini does (candidateCount): the fallback serves.
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "claude/claude-x", "messages": MESSAGES, "n": 2, "fallbacks": ["gem/gem-x"]},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-bifrost-provider"] == "gem" and r.headers["x-bifrost-fallback-index"] == "1"


def test_dialect_tokens_accounted(gw: Proc) -> None:
    before = metric(gw, "gateway_tokens_total", provider="claude", direction="output")
    with _client(gw) as client:
        client.chat.completions.create(model="claude/claude-x", messages=MESSAGES, max_tokens=7)
    assert metric(gw, "gateway_tokens_total", provider="claude", direction="output") == before + 7


def test_dialect_providers_from_the_environment(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No config file: ANTHROPIC_* and GEMINI_* as the SDKs read them."""
    port = free_port()
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": up.url,
        "GEMINI_API_KEY": KEY,
        "GEMINI_BASE_URL": up.url,
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    log = tmp_path_factory.mktemp("gw-env") / "gateway.log"
    proc = Proc(["serve", "--port", str(port)], port=port, log=log, env=env)
    try:
        for model in ("anthropic/claude-x", "gemini/gem-x", "claude-bare"):
            r = httpx.post(proc.url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES}, timeout=10)
            assert r.status_code == 200, r.text
        # A bare model goes to the default provider: anthropic when openai is not configured.
        assert r.json()["extra_fields"]["provider"] == "anthropic"
    finally:
        proc.stop()


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("model", ["claude/claude-x", "gem/gem-x"])
@pytest.mark.parametrize("streamed", [False, True])
def test_dialect_tool_loop_through_openai_sdk(gw: Proc, model: str, streamed: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with _client(gw) as client:
        if streamed:
            chunks = list(
                client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL], stream=True)
            )
            pieces = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
            call_id = next(tc.id for tc in pieces if tc.id)
            name = next(tc.function.name for tc in pieces if tc.function and tc.function.name)
            args = "".join(tc.function.arguments or "" for tc in pieces if tc.function)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        else:
            r = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
            (tc,) = r.choices[0].message.tool_calls or []
            call_id, name, args = tc.id, tc.function.name, tc.function.arguments  # type: ignore[union-attr]
            finish = [r.choices[0].finish_reason]
        assert finish == ["tool_calls"] and name == "get_weather" and json.loads(args) == {"city": "mock"}
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "18 C"},
        ]
        r2 = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL], max_tokens=3)
    assert r2.choices[0].finish_reason == "length" and r2.choices[0].message.content
