"""Retries, key choice, fallbacks, concurrency limits and header passing, end to end:
a real gateway in front of real ``gateway mock`` upstreams that record what they get,
with faults injected per request (``"mock": {"fail_status": ..., "fail_times": ...}``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, free_port, metric, start_mock

GOOD = "sk-good-key-0123456789"
ONE = "sk-one-aaaaaaaaaaaa"
TWO = "sk-two-bbbbbbbbbbbb"
FAST_BACKOFF = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """An upstream that takes only GOOD."""
    proc = start_mock(tmp_path_factory.mktemp("authed"), "--api-key", GOOD, "--record", "200")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def open_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """An upstream that takes any key, so the key each attempt used can be read back."""
    proc = start_mock(tmp_path_factory.mktemp("open"), "--record", "200")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(authed: Proc, open_up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    a, o = f"{authed.url}/v1", f"{open_up.url}/v1"
    retries = {"max_retries": 2, **FAST_BACKOFF}
    providers: dict[str, Any] = {
        # The heavy key is wrong: the first try nearly always takes it and gets a 401.
        "rotate": {
            "base_url": a,
            "keys": [{"name": "bad", "value": "sk-bad-key-0123456789", "weight": 1e6}, {"name": "good", "value": GOOD}],
            "retries": retries,
        },
        "flaky": {"base_url": o, "keys": [{"value": ONE}], "retries": retries},
        "once": {"base_url": o, "keys": [{"value": ONE}], "retries": {"max_retries": 1, **FAST_BACKOFF}},
        "noretry": {"base_url": o, "keys": [{"value": ONE}]},
        "two": {
            "base_url": o,
            "keys": [{"name": "k1", "value": ONE}, {"name": "k2", "value": TWO}],
            "retries": retries,
        },
        "scoped": {
            "base_url": o,
            "keys": [{"name": "k1", "value": ONE, "models": ["m-a"]}, {"name": "k2", "value": TWO, "models": ["m-b"]}],
        },
        "down": {"base_url": f"http://127.0.0.1:{free_port()}/v1"},
        "slowfb": {"base_url": o, "timeouts": {"first_byte_s": 0.3}},
        "narrow": {"base_url": o, "limits": {"max_concurrency": 1, "queue_size": 1, "queue_timeout_s": 5}},
        "strict": {"base_url": o, "limits": {"max_concurrency": 1, "drop_excess_requests": True}},
    }
    d = tmp_path_factory.mktemp("gw-routing")
    cfg = d / "gateway.json"
    cfg.write_text(json.dumps({"providers": providers}))
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log")
    yield proc
    proc.stop()
    log = Path(proc.log).read_text()
    assert GOOD not in log and ONE not in log and TWO not in log


def _clear(*ups: Proc) -> None:
    for up in ups:
        httpx.delete(up.url + "/mock/requests")


def _seen(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


def _keys(up: Proc) -> list[str]:
    return [r["headers"].get("Authorization", "").removeprefix("Bearer ") for r in _seen(up)]


def _chat(gw: Proc, model: str, *, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=20)


def _transient(status: int, times: int) -> dict[str, Any]:
    return {"fail_status": status, "fail_times": times, "fail_id": uuid.uuid4().hex}


def test_retry_5xx_until_success_same_key(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "flaky/m", mock=_transient(503, 2))
    assert r.status_code == 200, r.text
    assert _keys(open_up) == [ONE, ONE, ONE]
    assert metric(gw, "gateway_upstream_retries_total", provider="flaky") >= 2


def test_retry_gives_up_after_max_retries(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "once/m", mock=_transient(500, 5))
    assert r.status_code == 500
    assert len(_seen(open_up)) == 2  # the try and one retry


def test_retry_none_by_default(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "noretry/m", mock=_transient(503, 1))
    assert r.status_code == 503
    assert len(_seen(open_up)) == 1


def test_retry_never_for_a_client_error(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "flaky/m", mock=_transient(400, 1))
    assert r.status_code == 400
    assert len(_seen(open_up)) == 1


def test_retry_401_moves_to_another_key(gw: Proc, authed: Proc) -> None:
    _clear(authed)
    r = _chat(gw, "rotate/m")
    assert r.status_code == 200, r.text
    assert _keys(authed)[-1] == GOOD
    assert "sk-bad-key-0123456789" in _keys(authed)  # tried first, refused, cooled down


def test_retry_429_moves_to_the_other_key(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "two/m", mock=_transient(429, 1))
    assert r.status_code == 200, r.text
    first, second = _keys(open_up)
    assert {first, second} == {ONE, TWO}


def test_stream_retried_before_its_first_byte(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "flaky/m", stream=True, mock=_transient(502, 1))
    assert r.status_code == 200
    assert r.text.rstrip().endswith("data: [DONE]")
    assert len(_seen(open_up)) == 2


def test_pinned_key_by_name(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    for _ in range(6):
        assert _chat(gw, "two/m", headers={"x-bf-api-key": "k2"}).status_code == 200
    assert _keys(open_up) == [TWO] * 6


def test_pinned_key_unknown_is_400(gw: Proc) -> None:
    r = _chat(gw, "two/m", headers={"x-bf-api-key": "nope"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "x-bf-api-key" and err["code"] == "unknown_key" and "'nope'" in err["message"]


def test_key_model_allow_list(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    for _ in range(4):
        assert _chat(gw, "scoped/m-a").status_code == 200
        assert _chat(gw, "scoped/m-b").status_code == 200
    assert _keys(open_up) == [ONE, TWO] * 4
    r = _chat(gw, "scoped/m-c")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "no_key_for_model"
    assert "m-c" in r.json()["error"]["message"]


def test_fallback_order_and_who_served(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "down/m", fallbacks=["noretry/m1", "noretry/m2"], mock=_transient(500, 1))
    assert r.status_code == 200, r.text
    # down refused the connection; m1 got the injected 500; m2 served.
    assert [json.loads(x["body"])["model"] for x in _seen(open_up)] == ["m1", "m2"]
    assert r.headers["x-bifrost-fallback-index"] == "2"
    extra = r.json()["extra_fields"]
    assert extra["provider"] == "noretry" and extra["model_deployment"] == "m2"


def test_fallback_on_slow_first_byte(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "slowfb/m", stream=True, fallbacks=["noretry/m"], mock={"ttft_ms": 2000})
    assert r.status_code == 200
    assert r.headers["x-bifrost-provider"] == "noretry"
    assert len(_seen(open_up)) == 2


def test_fallback_all_failing_lists_attempts(gw: Proc, open_up: Proc) -> None:
    r = _chat(gw, "noretry/m", fallbacks=["down/m"], mock={"fail_status": 503})
    assert r.status_code == 503  # the primary's error
    attempts = r.json()["extra_fields"]["attempts"]
    assert [(a["provider"], a["status"]) for a in attempts] == [("noretry", 503), ("down", 502)]
    assert attempts[1]["code"] == "upstream_connect_error"


def test_no_fallback_after_a_client_error(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "noretry/m", fallbacks=["noretry/m2"], mock={"fail_status": 422})
    assert r.status_code == 422
    assert len(_seen(open_up)) == 1


def test_extra_headers_forwarded(gw: Proc, open_up: Proc) -> None:
    _clear(open_up)
    r = _chat(gw, "noretry/m", headers={"x-bf-eh-x-trace-id": "abc123", "X-BF-EH-OpenAI-Organization": "org-1"})
    assert r.status_code == 200
    (seen,) = _seen(open_up)
    lowered = {k.lower(): v for k, v in seen["headers"].items()}
    assert lowered["x-trace-id"] == "abc123" and lowered["openai-organization"] == "org-1"
    assert lowered["authorization"] == f"Bearer {ONE}"  # not replaced


@pytest.mark.parametrize("value", [b"\xff\xfe", "café".encode()])
def test_extra_headers_not_printable_ascii_refused(gw: Proc, open_up: Proc, value: bytes) -> None:
    """A value goes into the upstream's request head: bytes beyond ASCII are a 400
    naming the header, not a 500 nor a value re-encoded on the way."""
    _clear(open_up)
    body = {"model": "noretry/m", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-bf-eh-x-trace-id": value}, timeout=20)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_header" and err["param"] == "x-bf-eh-x-trace-id"
    assert _seen(open_up) == []


@pytest.mark.parametrize("name", ["authorization", "host", "content-length", "proxy-authorization", "x-api-key"])
def test_extra_headers_denied(gw: Proc, name: str) -> None:
    r = _chat(gw, "noretry/m", headers={f"x-bf-eh-{name}": "x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_header" and name in err["message"]


def test_upstream_rate_limit_headers_relayed(gw: Proc) -> None:
    r = _chat(gw, "noretry/m")
    assert r.headers["x-ratelimit-remaining-requests"] == "9999"
    assert r.headers["x-upstream-request-id"].startswith("req-")
    s = _chat(gw, "noretry/m", stream=True)
    assert s.headers["x-ratelimit-limit-requests"] == "10000"
    limited = _chat(gw, "noretry/m", mock={"fail_status": 429})
    assert limited.status_code == 429
    assert limited.headers["retry-after-ms"] == "20" and limited.headers["retry-after"] == "1"


def _burst(gw: Proc, model: str, n: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: _chat(gw, model, mock={"ttft_ms": 400}), range(n)))


def test_concurrency_limit_queues_then_refuses(gw: Proc) -> None:
    codes = sorted(r.status_code for r in _burst(gw, "narrow/m", 3))
    assert codes == [200, 200, 429]  # one in flight, one queued, one refused
    refused = next(r for r in _burst(gw, "narrow/m", 3) if r.status_code == 429)
    err = refused.json()["error"]
    assert err["code"] == "provider_busy" and err["type"] == "rate_limit_error" and "'narrow'" in err["message"]
    assert metric(gw, "gateway_provider_busy_requests_total", provider="narrow") >= 2


def test_concurrency_limit_drop_excess(gw: Proc) -> None:
    codes = sorted(r.status_code for r in _burst(gw, "strict/m", 2))
    assert codes == [200, 429]


def test_concurrency_limit_busy_falls_back(gw: Proc) -> None:
    with ThreadPoolExecutor(2) as pool:
        rs = list(pool.map(lambda _: _chat(gw, "strict/m", fallbacks=["noretry/m"], mock={"ttft_ms": 400}), range(2)))
    assert sorted(r.status_code for r in rs) == [200, 200]
    assert sorted(r.headers["x-bifrost-provider"] for r in rs) == ["noretry", "strict"]
