"""Access control and limits on a real gateway (embedded memory store), a real
``gateway mock`` upstream and real clients: credentials, virtual keys' model lists,
rate limits, concurrency caps and budgets, each refusal with its status and body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Proc, free_port, metric

TOKEN = "gw-token-0123456789abcdef"
VK_LIMITED = "sk-bf-limited-0123456789abcdef"
VK_MODELS = "sk-bf-models-0123456789abcdef"
VK_SLOW = "sk-bf-slow-0123456789abcdef"
VK_BUDGET = "sk-bf-budget-0123456789abcdef"
VK_STREAM_BUDGET = "sk-bf-streambudget-0123456789"
VK_EXPIRED = "sk-bf-expired-0123456789abcdef"
VK_OFF = "sk-bf-off-0123456789abcdef0000"
# $1 per output token, inputs free: a request's cost is exactly its max_tokens in USD.
PRICES = {"gpt-x": {"input_mtok": 0, "output_mtok": 1_000_000}}


def gateway_config(up: Proc) -> dict[str, Any]:
    return {
        "providers": {
            "up": {"base_url": up.url + "/v1", "prices": PRICES},
            "other": {"base_url": up.url + "/v1", "prices": PRICES},
        },
        "default_provider": "up",
        "auth": {
            "required": True,
            "tokens": [{"name": "ops", "value": TOKEN}],
            "virtual_keys": [
                {"name": "limited", "value": VK_LIMITED, "rate_limits": [{"requests": 3, "window": "1h"}]},
                {
                    "name": "models",
                    "value": VK_MODELS,
                    "providers": ["up"],
                    "models": ["up/gpt-*"],
                    "deny_models": ["up/gpt-secret*"],
                },
                {"name": "slow", "value": VK_SLOW, "max_concurrency": 1},
                {"name": "budget", "value": VK_BUDGET, "budgets": [{"usd": 5, "window": "1d"}]},
                {"name": "streambudget", "value": VK_STREAM_BUDGET, "budgets": [{"usd": 6, "window": "1d"}]},
                {"name": "expired", "value": VK_EXPIRED, "expires_at": "2020-01-01T00:00:00Z"},
                {"name": "off", "value": VK_OFF, "active": False},
            ],
        },
    }


@pytest.fixture(scope="module")
def up(plain_upstream: Proc) -> Proc:
    return plain_upstream


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("gw-gov")
    cfg = d / "gateway.json"
    cfg.write_text(json.dumps(gateway_config(up)))
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log")
    yield proc
    proc.stop()
    log = proc.log.read_text()
    assert VK_LIMITED not in log and TOKEN not in log


def chat(gw: Proc, key: str | None, *, model: str = "gpt-x", **fields: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **fields}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "invalid_api_key"),
        ({"Authorization": "Bearer not-a-known-key-000000"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_api_key"),
        ({"Authorization": f"Bearer {VK_EXPIRED}"}, "key_expired"),
        ({"Authorization": f"Bearer {VK_OFF}"}, "key_inactive"),
    ],
)
def test_unknown_missing_expired_or_inactive_credentials_are_401(gw: Proc, headers: dict[str, str], code: str) -> None:
    before = metric(gw, "gateway_refused_requests_total", reason="unauthorized")
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-x", "messages": []}, headers=headers)
    err = error_of(r, 401)
    assert err["type"] == "authentication_error" and err["code"] == code
    assert metric(gw, "gateway_refused_requests_total", reason="unauthorized") == before + 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TOKEN}"},
        {"x-bf-vk": VK_MODELS},
        {"x-api-key": VK_MODELS},
        {"api-key": VK_MODELS},
        {"x-goog-api-key": VK_MODELS},
    ],
)
def test_every_credential_header_is_accepted(gw: Proc, headers: dict[str, str]) -> None:
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text


def test_openai_sdk_with_a_virtual_key(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=VK_MODELS, max_retries=0) as client:
        r = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert r.usage is not None and r.usage.completion_tokens == 3
    with (
        openai.OpenAI(base_url=gw.url + "/v1", api_key="wrong-key-0000000000", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("other/gpt-x", {}, "model"),  # provider not allowed
        ("up/llama", {}, "model"),  # model not in the allow-list
        ("up/gpt-secret-1", {}, "model"),  # denied
        ("gpt-x", {"fallbacks": ["other/gpt-x"]}, "fallbacks[0]"),
    ],
)
def test_models_a_virtual_key_may_not_use_are_403(gw: Proc, model: str, fields: dict[str, Any], param: str) -> None:
    err = error_of(chat(gw, VK_MODELS, model=model, **fields), 403)
    assert err["type"] == "permission_error" and err["param"] == param and "'models'" in err["message"]
    # The gateway token is not restricted.
    assert chat(gw, TOKEN, model=model).status_code == 200


def test_request_rate_limit_refuses_with_retry_after(gw: Proc) -> None:
    statuses = [chat(gw, VK_LIMITED).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    r = chat(gw, VK_LIMITED)
    err = error_of(r, 429)
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded" and "3 requests" in err["message"]
    assert 0 < int(r.headers["Retry-After"]) <= 3600


def test_concurrency_cap(gw: Proc) -> None:
    slow = {"mock": {"ttft_ms": 600}}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: chat(gw, VK_SLOW, **slow), range(4)))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    refused = next(r for r in results if r.status_code == 429)
    assert error_of(refused, 429)["code"] == "concurrency_limit_exceeded" and refused.headers["Retry-After"]
    # The slot is released when the request ends.
    assert chat(gw, VK_SLOW).status_code == 200


def test_budget_serves_exactly_what_it_covers(gw: Proc) -> None:
    # $5 a day, $2 a request (2 output tokens at $1): exactly 2 served, even 8 at a time.
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: chat(gw, VK_BUDGET), range(8)))
    assert sorted(r.status_code for r in results) == [200] * 2 + [402] * 6
    err = error_of(next(r for r in results if r.status_code == 402), 402)
    assert err["type"] == "budget_exceeded" and "$5 per 1d" in err["message"]


def test_streams_are_charged(gw: Proc) -> None:
    # $6: three streamed requests of 2 tokens, then refused.
    statuses = []
    for _ in range(4):
        with httpx.stream(
            "POST",
            gw.url + "/v1/chat/completions",
            json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True},
            headers={"Authorization": f"Bearer {VK_STREAM_BUDGET}"},
        ) as r:
            r.read()
            statuses.append(r.status_code)
    assert statuses == [200, 200, 200, 402]


def test_anthropic_route_uses_the_same_credentials(gw: Proc) -> None:
    with anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key=VK_MODELS, max_retries=0) as client:
        msg = client.messages.create(model="up/gpt-x", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        assert msg.usage.output_tokens == 2
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            client.messages.create(model="other/gpt-x", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "permission_error"
    with (
        anthropic.Anthropic(base_url=gw.url + "/anthropic", api_key="nope-000000000000", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError),
    ):
        client.messages.create(model="up/gpt-x", max_tokens=2, messages=[{"role": "user", "content": "hi"}])


def test_health_and_metrics_need_no_credentials(gw: Proc) -> None:
    assert httpx.get(gw.url + "/health").status_code == 200
    assert httpx.get(gw.url + "/metrics").status_code == 200


# Auth optional: anonymous callers are served, but a credential that claims to be one of
# this gateway's keys means something.

VK_OPT_BUDGET = "sk-bf-optbudget-0123456789abcdef"


@pytest.fixture(scope="module")
def optional(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("gw-optional")
    cfg = d / "gateway.json"
    config = gateway_config(up)
    config["auth"] = {
        "required": False,
        "virtual_keys": [
            # $1 per output token: a request without max_tokens is estimated at $4096.
            {"name": "optbudget", "value": VK_OPT_BUDGET, "budgets": [{"usd": 100, "window": "1d"}]},
            {"name": "expired", "value": VK_EXPIRED, "expires_at": "2020-01-01T00:00:00Z"},
            {"name": "off", "value": VK_OFF, "active": False},
        ],
    }
    cfg.write_text(json.dumps(config))
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log")
    yield proc
    proc.stop()


def _chat(proc: Proc, headers: dict[str, str], **extra: Any) -> httpx.Response:
    body = {"model": "up/gpt-x", "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(proc.url + "/v1/chat/completions", json=body, headers=headers)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Authorization": "Bearer sk-bf-unknown-0123456789abcdef"}, "invalid_api_key"),
        ({"x-bf-vk": "anything-at-all"}, "invalid_api_key"),
        ({"x-bf-vk": VK_OFF}, "key_inactive"),
        ({"Authorization": f"Bearer {VK_EXPIRED}"}, "key_expired"),
        ({"x-api-key": "sk-bf-typo"}, "invalid_api_key"),
    ],
)
def test_auth_optional_refuses_a_gateway_credential_it_does_not_know(
    optional: Proc, headers: dict[str, str], code: str
) -> None:
    r = _chat(optional, headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-placeholder"}, {"x-api-key": "unused"}])
def test_auth_optional_serves_anonymous_callers(optional: Proc, headers: dict[str, str]) -> None:
    assert _chat(optional, headers).status_code == 200


def test_auth_mode_is_said_at_start_up(optional: Proc, gw: Proc) -> None:
    assert "auth: optional" in optional.log.read_text()
    assert "auth: required" in gw.log.read_text()


def test_budget_admission_without_max_tokens_assumes_a_completion(optional: Proc) -> None:
    headers = {"Authorization": f"Bearer {VK_OPT_BUDGET}"}
    r = _chat(optional, headers)  # 4096 assumed output tokens at $1 each: over the $100 budget
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["code"] == "budget_exceeded" and "max_tokens" in err["message"] and "$4096" in err["message"]
    assert _chat(optional, headers, max_tokens=5).status_code == 200  # bounded by the request: fits


def _logged(proc: Proc, status: int) -> list[dict[str, Any]]:
    """The access log lines (JSON on stdout, in the process's log) with ``status``."""
    import time

    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in proc.log.read_text().splitlines() if line.startswith('{"ts"')]
        found = [line for line in lines if line["status"] == status]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_refusals_are_logged_with_the_key_model_and_provider(gw: Proc) -> None:
    headers = {"Authorization": f"Bearer {VK_MODELS}"}
    body = {"model": "up/gpt-secret-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers).status_code == 403
    (line,) = [x for x in _logged(gw, 403) if x["model"] == "gpt-secret-1"]
    assert (line["principal"], line["provider"], line["error"]) == ("vk:models", "up", "permission_error")
    # A budget refusal, the same way.
    for _ in range(4):
        chat(gw, VK_BUDGET)
    refused = [x for x in _logged(gw, 402) if x.get("principal") == "vk:budget"]
    assert refused and all((x["provider"], x["model"]) == ("up", "gpt-x") for x in refused)
    assert all(x.get("principal") and x.get("provider") for x in _logged(gw, 402)), _logged(gw, 402)
    # A key refused at the door (expired) is logged as that key.
    assert chat(gw, VK_EXPIRED).status_code == 401
    assert any(x.get("principal") == "vk:expired" for x in _logged(gw, 401))
