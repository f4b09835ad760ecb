"""What reaches the upstream, and how upstream failures come back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, Proc

Received = Callable[[], list[dict[str, Any]]]
MSG = '[{"role":"user","content":"hi"}]'


def post(gateway: Proc, body: bytes | str, *, path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
    return httpx.post(gateway.url + path, content=body, headers=headers, timeout=10)


def test_relay_unknown_fields_reach_upstream_byte_for_byte(gateway: Proc, received: Received) -> None:
    # Top-level values are copied as raw bytes (only the separators between top-level
    # keys are re-emitted), so odd spacing, escapes and number forms inside survive.
    odd_value = '{"a": [1,  2.50, "é\\u00e9"], "nested": {"deep": null}}'
    odd = f'"x_vendor": {odd_value}'
    messages = '[{"role":"user","content":"keep   my\\nspacing","x_part":true}]'
    body = f'{{"model":"up/gpt-x","messages":{messages},{odd},"fallbacks":["mock/m"],"temperature":0.5}}'
    r = post(gateway, body)
    assert r.status_code == 200, r.text
    [seen] = received()
    forwarded = seen["body"]
    assert f'"x_vendor":{odd_value}' in forwarded and f'"messages":{messages}' in forwarded
    fields = json.loads(forwarded)
    assert fields["model"] == "gpt-x"
    assert "fallbacks" not in fields  # the gateway's own field is consumed
    assert fields["temperature"] == 0.5
    assert seen["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["path"] == "/v1/chat/completions"


def test_relay_bare_model_forwards_original_bytes(gateway: Proc, received: Received) -> None:
    body = '{ "model" : "gpt-bare", "messages":' + MSG + ' ,"n":1 }'
    assert post(gateway, body).status_code == 200
    [seen] = received()
    assert seen["body"] == body  # default provider, nothing to change: not even re-encoded


def test_relay_org_slash_model_goes_to_default_provider(gateway: Proc, received: Received) -> None:
    r = post(gateway, '{"model":"meta-llama/Llama-3.1-8B","messages":' + MSG + "}")
    assert r.status_code == 200
    assert json.loads(received()[0]["body"])["model"] == "meta-llama/Llama-3.1-8B"
    assert r.json()["extra_fields"]["provider"] == "up"


def test_relay_alias_resolves(gateway: Proc, received: Received) -> None:
    r = post(gateway, '{"model":"fast","messages":' + MSG + "}")
    assert r.status_code == 200
    assert json.loads(received()[0]["body"])["model"] == "gpt-fast"
    extra = r.json()["extra_fields"]
    assert (extra["model_requested"], extra["model_deployment"], extra["provider"]) == ("fast", "gpt-fast", "up")


def test_relay_raw_request_and_response_on_request(gateway: Proc) -> None:
    body = '{"model":"up/gpt-x","messages":' + MSG + ',"max_tokens":2}'
    r = post(gateway, body, **{"x-bf-send-back-raw-request": "true", "x-bf-send-back-raw-response": "true"})
    extra = r.json()["extra_fields"]
    assert extra["raw_request"] == {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert extra["raw_response"]["choices"] == r.json()["choices"]
    assert "extra_fields" not in extra["raw_response"]


def test_relay_fallback_on_connect_error(gateway: Proc) -> None:
    r = post(gateway, '{"model":"down/x","messages":' + MSG + ',"fallbacks":["nodns/y","up/z"]}')
    assert r.status_code == 200, r.text
    assert r.headers["x-bifrost-fallback-index"] == "2"
    assert r.headers["x-bifrost-provider"] == "up"
    assert r.json()["extra_fields"]["provider"] == "up"
    assert r.json()["extra_fields"]["model_deployment"] == "z"


def test_relay_fallback_stream(gateway: Proc) -> None:
    r = post(gateway, '{"model":"down/x","stream":true,"messages":' + MSG + ',"fallbacks":["up/z"]}')
    assert r.status_code == 200
    assert r.headers["x-bifrost-fallback-index"] == "1"
    assert r.text.endswith("data: [DONE]\n\n")


def test_relay_all_failing_returns_primary_error(gateway: Proc) -> None:
    r = post(gateway, '{"model":"down/x","messages":' + MSG + ',"fallbacks":["nodns/y"]}')
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "upstream_connect_error" and "'down'" in err["message"]


def test_relay_no_fallback_on_client_error_and_key_redacted(gateway: Proc) -> None:
    # The upstream rejects badkey's key with a 401 that echoes it; no fallback on a 401.
    r = post(gateway, '{"model":"badkey/x","messages":' + MSG + ',"fallbacks":["mock/y"]}')
    assert r.status_code == 401
    assert "sk-wrong-key-abcdefgh" not in r.text
    assert "[redacted]" in r.json()["error"]["message"]


@pytest.mark.parametrize("model", ["down/x", "nodns/x"])
@pytest.mark.parametrize("stream", [False, True])
def test_relay_unreachable_upstream_is_502(gateway: Proc, model: str, stream: bool) -> None:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
    r = post(gateway, body)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_connect_error"


@pytest.mark.parametrize("stream", [False, True])
def test_relay_upstream_timeout_is_504(gateway: Proc, stream: bool) -> None:
    body = json.dumps(
        {
            "model": "slow/x",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
            "mock": {"ttft_ms": 3000},
        }
    )
    t = time.monotonic()
    r = post(gateway, body)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - t < 2.5  # the 0.5 s provider timeout fired, not the 3 s answer


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_relay_upstream_error_status_relayed(gateway: Proc, status: int) -> None:
    body = json.dumps(
        {"model": "up/x", "messages": [{"role": "user", "content": "hi"}], "mock": {"fail_status": status}}
    )
    r = post(gateway, body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == "mock_injected" and f"HTTP {status}" in err["message"]


def test_relay_mid_stream_reset_gives_error_frame(gateway: Proc) -> None:
    body = json.dumps(
        {
            "model": "up/x",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "mock": {"tokens": 10, "reset_after": 4},
        }
    )
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", content=body, timeout=10) as r:
        assert r.status_code == 200
        frames = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert len(frames) == 5
    last = json.loads(frames[-1][6:])
    assert last["error"]["type"] == "upstream_error"
    assert all("choices" in json.loads(f[6:]) for f in frames[:-1])
    assert post(gateway, '{"model":"up/x","messages":' + MSG + "}").status_code == 200
