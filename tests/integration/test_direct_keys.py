"""Clients' own provider keys (``x-bf-direct-key: true``, ``auth.client_provider_keys``)
on real gateway processes in front of a real ``gateway mock`` upstream that accepts only
the client's key (``--api-key``) and records what it received. Real clients: the openai,
anthropic and google-genai SDKs, httpx. The key reaches the upstream in each dialect's
header, on both upstream clients, unary and streamed, retried and on a fallback of the
same provider; a wrong one gets the upstream's 401 with the key scrubbed; without the
header the configured key is used; every refusal; governance by ``x-bf-vk``; and the key
is never in an answer, an async job or the gateway's log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from tests.conftest import Proc, free_port, start_mock

CLIENT_KEY = "sk-client-own-key-0123456789abcdef"  # the only key the upstream accepts
WRONG_KEY = "sk-client-wrong-key-fedcba9876543210"
OPERATOR_KEY = "sk-operator-configured-0123456789"  # configured; the upstream refuses it
VK = "sk-bf-direct-team-0123456789abcdef"
TOKEN = "gw-direct-token-0123456789abcdef"
ADMIN = "adm-direct-0123456789abcdef"
DIRECT = {"x-bf-direct-key": "true"}
MESSAGES: Any = [{"role": "user", "content": "hi"}]  # the SDKs' TypedDicts, untyped here
# $1 per output token, inputs free: a request's cost is its completion tokens in USD.
PRICES = {"gpt-x": {"input_mtok": 0, "output_mtok": 1_000_000}}
POLLS = 200  # x 0.05 s: a bound on waiting for a job or a charge, not a timing assertion


def config(up: Proc, *, client: str, auth: dict[str, Any] | None = None) -> dict[str, Any]:
    key = [{"value": OPERATOR_KEY}]
    providers: dict[str, dict[str, Any]] = {
        "up": {"base_url": up.url + "/v1", "keys": key, "prices": PRICES},
        "other": {"base_url": up.url + "/v1", "keys": key},
        "flaky": {
            "base_url": up.url + "/v1",
            "keys": key,
            "retries": {"max_retries": 2, "backoff_initial_s": 0, "backoff_max_s": 0},
        },
        "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
        "gemini": {"dialect": "gemini", "base_url": up.url, "keys": key},
    }
    for p in providers.values():
        p["client"] = client
    providers["mock"] = {"dialect": "mock"}
    return {"providers": providers, "default_provider": "up", "auth": auth or {"client_provider_keys": True}}


def serve(cfg: dict[str, Any], d: Path, *, env: dict[str, str] | None = None) -> Proc:
    path = d / "gateway.json"
    path.write_text(json.dumps(cfg))
    port = free_port()
    # DEBUG: whatever the gateway logs at any level must not hold the key.
    args = ["--log-level", "DEBUG", "serve", "--config", str(path), "--port", str(port)]
    return Proc(args, port=port, log=d / "gateway.log", env=env)


def stopped(proc: Proc) -> None:
    proc.stop()
    log = proc.log.read_text()
    assert log and CLIENT_KEY not in log and WRONG_KEY not in log and OPERATOR_KEY not in log


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("direct-up"), "--api-key", CLIENT_KEY, "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    proc = serve(config(up, client=request.param), tmp_path_factory.mktemp(f"gw-direct-{request.param}"))
    yield proc
    stopped(proc)


@pytest.fixture(scope="module")
def gw_off(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The same config, switched off by the environment."""
    d = tmp_path_factory.mktemp("gw-direct-off")
    proc = serve(config(up, client="pool"), d, env={"GATEWAY_CLIENT_PROVIDER_KEYS": "false"})
    yield proc
    stopped(proc)


@pytest.fixture(scope="module")
def gw_auth(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """Auth required, a virtual key with a budget; switched on by the environment."""
    auth = {
        "required": True,
        "admin_token": ADMIN,
        "tokens": [{"name": "ops", "value": TOKEN}],
        "virtual_keys": [{"name": "team", "value": VK, "budgets": [{"usd": 100, "window": "1d"}]}],
    }
    d = tmp_path_factory.mktemp("gw-direct-auth")
    proc = serve(config(up, client="pool", auth=auth), d, env={"GATEWAY_CLIENT_PROVIDER_KEYS": "true"})
    yield proc
    stopped(proc)


@pytest.fixture
def seen(up: Proc) -> Any:
    """Clears the upstream's record; the returned function reads what it received since."""
    httpx.delete(up.url + "/mock/requests").raise_for_status()

    def read() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = httpx.get(up.url + "/mock/requests").json()
        return data

    return read


def header(recorded: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in recorded["headers"].items() if k.lower() == name), None)


def chat(gw: Proc, headers: dict[str, str], *, model: str = "up/gpt-x", **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 2, **fields}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert CLIENT_KEY not in r.text and WRONG_KEY not in r.text
    assert not any(CLIENT_KEY in v or WRONG_KEY in v for v in r.headers.values())
    return r


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    return err


def openai_client(gw: Proc, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1", api_key=key, default_headers={**DIRECT, **headers}, max_retries=0, timeout=20
    )


# --- the key reaches the upstream -----------------------------------------------------


def test_openai_sdk_client_key_reaches_the_upstream(gw: Proc, seen: Any) -> None:
    with openai_client(gw, CLIENT_KEY) as client:
        raw = client.chat.completions.with_raw_response.create(model="up/gpt-x", messages=MESSAGES, max_tokens=3)
    assert raw.headers["x-bifrost-provider"] == "up"
    usage = raw.parse().usage
    assert usage is not None and usage.completion_tokens == 3
    assert CLIENT_KEY not in raw.text
    (got,) = seen()
    assert got["path"] == "/v1/chat/completions" and header(got, "authorization") == f"Bearer {CLIENT_KEY}"
    assert header(got, "x-bf-direct-key") is None


def test_openai_sdk_stream_with_client_key(gw: Proc, seen: Any) -> None:
    with openai_client(gw, CLIENT_KEY) as client:
        chunks = list(
            client.chat.completions.create(
                model="up/gpt-x",
                messages=MESSAGES,
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    (got,) = seen()
    assert header(got, "authorization") == f"Bearer {CLIENT_KEY}" and '"stream":true' in got["body"]


@pytest.mark.parametrize("name", ["x-api-key", "api-key", "x-goog-api-key"])
def test_key_is_read_from_every_provider_key_header(gw: Proc, seen: Any, name: str) -> None:
    assert chat(gw, {**DIRECT, name: CLIENT_KEY}).status_code == 200
    (got,) = seen()
    assert header(got, "authorization") == f"Bearer {CLIENT_KEY}"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("model", "path", "auth_header"),
    [
        ("anthropic/claude-x", "/v1/messages", "x-api-key"),
        ("gemini/gem-x", "/v1beta/models/gem-x:", "x-goog-api-key"),
    ],
)
def test_key_goes_in_each_dialects_header(
    gw: Proc, seen: Any, model: str, path: str, auth_header: str, stream: bool
) -> None:
    headers = {**DIRECT, "Authorization": f"Bearer {CLIENT_KEY}"}
    if stream:
        with httpx.stream(
            "POST",
            gw.url + "/v1/chat/completions",
            json={"model": model, "messages": MESSAGES, "max_tokens": 2, "stream": True},
            headers=headers,
        ) as r:
            text = r.read().decode()
        assert r.status_code == 200 and text.rstrip().endswith("data: [DONE]"), text
    else:
        r = chat(gw, headers, model=model)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2, r.text
    (got,) = seen()
    assert got["path"].startswith(path)
    assert header(got, auth_header) == CLIENT_KEY and header(got, "authorization") is None
    if auth_header == "x-api-key":
        assert header(got, "anthropic-version")  # the dialect's headers, as for a configured key


def test_anthropic_sdk_drop_in_with_client_key(gw: Proc, seen: Any) -> None:
    with anthropic.Anthropic(
        base_url=gw.url + "/anthropic", api_key=CLIENT_KEY, default_headers=DIRECT, max_retries=0
    ) as client:
        msg = client.messages.create(model="anthropic/claude-x", max_tokens=3, messages=MESSAGES)
        assert msg.usage.output_tokens == 3
        # Translated to an OpenAI-dialect provider: there the key is a bearer token.
        msg = client.messages.create(model="up/gpt-x", max_tokens=3, messages=MESSAGES)
        assert msg.usage.output_tokens == 3
        with pytest.raises(anthropic.AuthenticationError) as info:
            anthropic.Anthropic(
                base_url=gw.url + "/anthropic", api_key=WRONG_KEY, default_headers=DIRECT, max_retries=0
            ).messages.create(model="anthropic/claude-x", max_tokens=3, messages=MESSAGES)
    assert WRONG_KEY not in str(info.value.body) and "[redacted]" in str(info.value.body)
    first, second, third = seen()
    assert first["path"] == "/v1/messages" and header(first, "x-api-key") == CLIENT_KEY
    assert second["path"] == "/v1/chat/completions" and header(second, "authorization") == f"Bearer {CLIENT_KEY}"
    assert header(third, "x-api-key") == WRONG_KEY  # what the upstream refused


def test_genai_sdk_drop_in_with_client_key(gw: Proc, seen: Any) -> None:
    opts = types.HttpOptions(base_url=gw.url + "/genai", headers=DIRECT, retry_options=None)
    client = genai.Client(api_key=CLIENT_KEY, http_options=opts)
    answer = client.models.generate_content(model="gemini/gem-x", contents="hi")
    assert answer.text
    streamed = list(client.models.generate_content_stream(model="gemini/gem-x", contents="hi"))
    assert streamed
    for got in seen():
        assert got["path"].startswith("/v1beta/models/gem-x:") and header(got, "x-goog-api-key") == CLIENT_KEY


def test_retries_and_same_provider_fallbacks_use_the_client_key(gw: Proc, seen: Any) -> None:
    # Two 500s, then an answer: the provider's retries (max 2) apply to a client key too.
    fail = {"fail_status": 500, "fail_times": 2, "fail_id": f"retry-{gw.port}"}
    assert chat(gw, {**DIRECT, "x-api-key": CLIENT_KEY}, model="flaky/gpt-x", mock=fail).status_code == 200
    retried = seen()
    assert len(retried) == 3 and {header(g, "authorization") for g in retried} == {f"Bearer {CLIENT_KEY}"}
    # The primary fails; a fallback on the same provider gets the key.
    fail = {"fail_status": 503, "fail_times": 1, "fail_id": f"fallback-{gw.port}"}
    r = chat(gw, {**DIRECT, "x-api-key": CLIENT_KEY}, model="up/gpt-x", fallbacks=["up/gpt-y"], mock=fail)
    assert r.status_code == 200 and r.headers["x-bifrost-fallback-index"] == "1", r.text
    assert [header(g, "authorization") for g in seen()[3:]] == [f"Bearer {CLIENT_KEY}"] * 2


# --- a wrong key, no header -----------------------------------------------------------


def test_wrong_client_key_gets_the_upstreams_401_scrubbed(gw: Proc, seen: Any) -> None:
    with openai_client(gw, WRONG_KEY) as client, pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="up/gpt-x", messages=MESSAGES)
    assert info.value.status_code == 401
    message = str(info.value.body)
    assert WRONG_KEY not in message and "[redacted]" in message and "incorrect API key" in message
    assert WRONG_KEY not in info.value.response.text
    (got,) = seen()
    assert header(got, "authorization") == f"Bearer {WRONG_KEY}"  # it did go upstream
    # Streams too, refused before the first byte.
    r = chat(gw, {**DIRECT, "Authorization": f"Bearer {WRONG_KEY}"}, stream=True)
    assert error_of(r, 401)["message"].count("[redacted]") == 1


@pytest.mark.parametrize("value", [None, "false"])
def test_without_the_header_the_configured_key_is_used(gw: Proc, seen: Any, value: str | None) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    if value is not None:
        headers["x-bf-direct-key"] = value
    r = chat(gw, headers)
    # The upstream refuses the configured key (it accepts only the client's); the
    # client's Authorization never went upstream.
    assert error_of(r, 401)["code"] == "invalid_api_key"
    (got,) = seen()
    assert header(got, "authorization") != f"Bearer {CLIENT_KEY}"
    assert OPERATOR_KEY not in r.text


# --- refusals ---------------------------------------------------------------------------


def test_switched_off_is_403_and_nothing_goes_upstream(gw_off: Proc, seen: Any) -> None:
    err = error_of(chat(gw_off, {**DIRECT, "Authorization": f"Bearer {CLIENT_KEY}"}), 403)
    assert err["code"] == "direct_keys_disabled" and err["param"] == "x-bf-direct-key"
    assert err["type"] == "permission_error"
    with (
        anthropic.Anthropic(
            base_url=gw_off.url + "/anthropic", api_key=CLIENT_KEY, default_headers=DIRECT, max_retries=0
        ) as client,
        pytest.raises(anthropic.PermissionDeniedError),
    ):
        client.messages.create(model="anthropic/claude-x", max_tokens=3, messages=MESSAGES)
    assert seen() == []
    # Without the header it serves as ever (with the configured key, which this upstream refuses).
    assert chat(gw_off, {"Authorization": f"Bearer {CLIENT_KEY}"}).status_code == 401
    assert len(seen()) == 1


@pytest.mark.parametrize(
    ("headers", "fields", "status", "code", "param", "says"),
    [
        ({}, {}, 400, "missing_provider_key", "x-bf-direct-key", "x-goog-api-key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, {}, 400, "missing_provider_key", "x-bf-direct-key", "x-api-key"),
        ({"x-bf-vk": CLIENT_KEY}, {}, 400, "missing_provider_key", "x-bf-direct-key", "Bearer"),
        ({"x-api-key": CLIENT_KEY, "x-bf-api-key": "default"}, {}, 400, "invalid_header", "x-bf-api-key", "exclude"),
        (
            {"x-api-key": CLIENT_KEY},
            {"fallbacks": ["up/gpt-y", "other/gpt-x"]},
            400,
            "direct_key_one_provider",
            "fallbacks[1]",
            "one provider only",
        ),
        ({"x-api-key": CLIENT_KEY}, {"model": "mock/gpt-x"}, 400, "direct_key_unsupported", "model", "no API key"),
        ({"x-api-key": CLIENT_KEY, "x-bf-direct-key": "yes"}, {}, 400, "invalid_header", "x-bf-direct-key", "true"),
    ],
)
def test_refusals(
    gw: Proc, seen: Any, headers: dict[str, str], fields: dict[str, Any], status: int, code: str, param: str, says: str
) -> None:
    err = error_of(chat(gw, {**DIRECT, **headers}, **fields), status)
    assert err["code"] == code and err["param"] == param and says in err["message"], err
    assert seen() == []


# --- with auth required -----------------------------------------------------------------


def test_auth_required_virtual_key_in_x_bf_vk_is_governed_and_charged(gw_auth: Proc, seen: Any) -> None:
    with openai_client(gw_auth, CLIENT_KEY, **{"x-bf-vk": VK}) as client:
        r = client.chat.completions.create(model="up/gpt-x", messages=MESSAGES, max_tokens=2)
        assert r.usage is not None and r.usage.completion_tokens == 2
        # The one-provider rule holds with a virtual key too.
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="up/gpt-x", messages=MESSAGES, extra_body={"fallbacks": ["other/x"]})
    (got,) = seen()
    assert header(got, "authorization") == f"Bearer {CLIENT_KEY}" and header(got, "x-bf-vk") is None
    # $2 (2 output tokens at $1), charged to the virtual key.
    used = 0.0
    for _ in range(POLLS):
        shown = httpx.get(gw_auth.url + "/api/keys/team", headers={"Authorization": f"Bearer {ADMIN}"})
        (usage,) = shown.json()["usage"]
        used = usage["used"]
        if used == 2.0:
            break
        time.sleep(0.05)
    assert used == 2.0
    # A gateway token in x-bf-vk works too.
    assert chat(gw_auth, {**DIRECT, "x-bf-vk": TOKEN, "x-api-key": CLIENT_KEY}).status_code == 200


def test_auth_required_without_x_bf_vk_is_401(gw_auth: Proc, seen: Any) -> None:
    with openai_client(gw_auth, CLIENT_KEY) as client, pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="up/gpt-x", messages=MESSAGES)
    assert "x-bf-vk" in str(info.value.body)
    err = error_of(chat(gw_auth, {**DIRECT, "x-bf-vk": "sk-bf-not-a-key-000000000", "x-api-key": CLIENT_KEY}), 401)
    assert err["code"] == "invalid_api_key"
    assert seen() == []


# --- async jobs ---------------------------------------------------------------------------


def test_async_job_with_client_key_never_shows_it(gw: Proc, seen: Any) -> None:
    headers = {**DIRECT, "Authorization": f"Bearer {CLIENT_KEY}"}
    body = {"model": "up/gpt-x", "messages": MESSAGES, "max_tokens": 2}
    submitted = httpx.post(gw.url + "/v1/async/chat/completions", json=body, headers=headers)
    assert submitted.status_code == 202, submitted.text
    url = f"{gw.url}/v1/async/chat/completions/{submitted.json()['id']}"
    for _ in range(POLLS):
        polled = httpx.get(url, headers=headers)
        if polled.status_code == 200:
            break
        time.sleep(0.05)
    job = polled.json()
    assert job["status"] == "completed" and job["result"]["usage"]["completion_tokens"] == 2, job
    assert CLIENT_KEY not in polled.text
    (got,) = seen()
    assert header(got, "authorization") == f"Bearer {CLIENT_KEY}"
