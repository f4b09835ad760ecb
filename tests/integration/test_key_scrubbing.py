"""Provider keys never come back from an upstream: not in an error body (plain or
``\\u``-escaped JSON), not in a stream's in-band error frame (OpenAI's data frame,
Anthropic's error event, Gemini's error object; translated or passed through at the
drop-in routes), not in the relayed ``x-request-id`` / ``retry-after`` headers, not in
the log. The configured keys and a client's own (``x-bf-direct-key``) alike.

The upstream is the suite's ``faulty`` server; its scripts echo the key they were sent,
as a careless upstream (or a proxy in front of one) would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, serve_config
from tests.faulty import COMPLETION, DONE, Request, chunk_frame, respond, respond_chunked

KEY = "sk-scrub-configured-0123456789-abcdef"
DIRECT = "sk-scrub-direct-9876543210-zyxwvu"
MODE = "x-test-mode"  # forwarded by the gateway from x-bf-eh-x-test-mode
MESSAGES = [{"role": "user", "content": "hi"}]


def _sent_key(req: Request) -> str:
    for name in ("authorization", "x-api-key", "x-goog-api-key"):
        if name in req.headers:
            return req.headers[name].removeprefix("Bearer ")
    return ""


def _escaped(key: str, how: str) -> str:
    """The key as it may stand in JSON text."""
    if how == "all":
        return "".join(f"\\u{ord(c):04x}" for c in key)
    if how == "dash":
        return key.replace("-", "\\u002d")
    if how == "upper":
        return "".join(f"\\u{ord(c):04X}" if c.isalpha() else c for c in key)
    return key


def _error_json(text: str) -> bytes:
    # Escapes written by hand: json.dumps would escape the backslashes.
    return b'{"error":{"message":"Incorrect API key provided: %s","type":"invalid_request_error"}}' % text.encode()


async def _openai(req: Request, w: Any) -> None:
    mode, _, how = req.headers.get(MODE, "").partition(":")
    key = _escaped(_sent_key(req), how)
    echo = f"X-Request-Id: req-{_sent_key(req)}\r\nRetry-After: {_sent_key(req)}\r\n"
    if mode == "status":
        await respond(w, 401, _error_json(key))
    elif mode == "text":  # not JSON: quoted by the gateway
        await respond(w, 401, b"bad key " + key.encode(), content_type="text/plain")
    elif mode == "headers":
        await respond(w, 200, COMPLETION, extra=echo)
    elif mode == "headers-429":
        await respond(w, 429, b'{"error":{"message":"slow down","type":"rate_limit_error"}}', extra=echo)
    elif mode == "headers-stream":
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n" + echo.encode())
        body = chunk_frame("ok") + chunk_frame("", finish="stop") + DONE
        w.write(b"\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        await w.drain()
    elif mode == "frame-coalesced":  # the error frame and a content chunk in one read
        error = b"data: " + _error_json(key) + b"\n\n"
        await respond_chunked(w, [chunk_frame("a"), error + chunk_frame("b")])
    else:  # "frame": a chunk, then the error frame, and the stream ends
        await respond_chunked(w, [chunk_frame("a"), b"data: " + _error_json(key) + b"\n\n"])


# The error event after a pause (mid-stream, most likely) or right behind the first chunk
# (most likely in the relay's first read: then it is a 502 before the first byte).
GAP_S = {"mid": 0.1, "close": 0.0}


async def _gemini(req: Request, w: Any) -> None:
    when, _, how = req.headers.get(MODE, "").partition(":")
    key = _escaped(_sent_key(req), how)
    first = b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"a"}]}}],"responseId":"r1"}\r\n\r\n'
    error = b'data: {"error":{"code":400,"message":"API key not valid: %s","status":"INVALID_ARGUMENT"}}\r\n\r\n'
    await respond_chunked(w, [first, error % key.encode()], gap_s=GAP_S[when])


async def _anthropic(req: Request, w: Any) -> None:
    when, _, how = req.headers.get(MODE, "").partition(":")
    key = _escaped(_sent_key(req), how)
    start = {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [],
                    "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 0}},
    }  # fmt: skip
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}
    events = [("message_start", start), ("content_block_start", block), ("content_block_delta", delta)]
    parts = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"key %s"}}\n\n'
    if not GAP_S[when]:
        parts = [b"".join(parts)]
    await respond_chunked(w, [*parts, error % key.encode()], gap_s=GAP_S[when])


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(faulty: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    faulty.scripts["scrub-oa"] = _openai
    faulty.scripts["scrub-gem"] = _gemini
    faulty.scripts["scrub-claude"] = _anthropic
    key = [{"value": KEY}]
    providers = {
        "oa": {"dialect": "openai", "base_url": faulty.url("scrub-oa") + "/v1", "keys": key},
        "gemini": {"dialect": "gemini", "base_url": faulty.url("scrub-gem"), "keys": key},
        "anthropic": {"dialect": "anthropic", "base_url": faulty.url("scrub-claude"), "keys": key},
    }
    for p in providers.values():
        p["client"] = request.param
    config = {"providers": providers, "auth": {"client_provider_keys": True}}
    proc = serve_config(config, tmp_path_factory.mktemp(f"scrub-{request.param}"))
    yield proc
    proc.stop()
    logged = proc.log.read_text()
    assert KEY not in logged and DIRECT not in logged


def _headers(mode: str, *, direct: bool) -> dict[str, str]:
    h = {"x-bf-eh-" + MODE: mode}
    if direct:
        h.update({"x-bf-direct-key": "true", "Authorization": f"Bearer {DIRECT}"})
    return h


def _clean(text: str) -> str:
    """``text`` (a body or an event stream) with its JSON escapes resolved, then checked."""
    decoded = [text]
    for line in text.split("\n"):
        line = line.removeprefix("data: ").strip()
        if line.startswith("{"):
            decoded.append(json.dumps(json.loads(line), ensure_ascii=False))
    joined = "\n".join(decoded)
    for key in (KEY, DIRECT):
        assert key not in joined
        for how in ("all", "dash", "upper"):
            assert _escaped(key, how) not in joined
    return joined


DIRECT_OR_NOT = pytest.mark.parametrize("direct", [False, True], ids=["configured", "direct"])
ESCAPES = pytest.mark.parametrize("how", ["plain", "dash", "all", "upper"])


@DIRECT_OR_NOT
@ESCAPES
def test_key_scrubbing_error_bodies(gw: Proc, direct: bool, how: str) -> None:
    for mode, route, body in (
        ("status", "/v1/chat/completions", {"model": "oa/m", "messages": MESSAGES}),
        ("status", "/v1/chat/completions", {"model": "oa/m", "messages": MESSAGES, "stream": True}),
        ("text", "/v1/chat/completions", {"model": "oa/m", "messages": MESSAGES}),
    ):
        r = httpx.post(gw.url + route, json=body, headers=_headers(f"{mode}:{how}", direct=direct), timeout=10)
        assert r.status_code == 401, r.text
        assert "[redacted]" in _clean(r.text)


@DIRECT_OR_NOT
@ESCAPES
def test_key_scrubbing_openai_stream_error_frames(gw: Proc, direct: bool, how: str) -> None:
    for mode in ("frame", "frame-coalesced"):
        body = {"model": "oa/m", "messages": MESSAGES, "stream": True}
        r = httpx.post(
            gw.url + "/v1/chat/completions", json=body, headers=_headers(f"{mode}:{how}", direct=direct), timeout=10
        )
        assert r.status_code == 200
        assert "[redacted]" in _clean(r.text)


WHEN = pytest.mark.parametrize("when", list(GAP_S))


@DIRECT_OR_NOT
@ESCAPES
@WHEN
@pytest.mark.parametrize("provider", ["gemini", "anthropic"])
def test_key_scrubbing_translated_stream_error_events(
    gw: Proc, direct: bool, how: str, when: str, provider: str
) -> None:
    body = {"model": f"{provider}/m", "messages": MESSAGES, "stream": True}
    headers = _headers(f"{when}:{how}", direct=direct)
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert r.status_code in (200, 502), r.text
    assert "[redacted]" in _clean(r.text)


@DIRECT_OR_NOT
@ESCAPES
@WHEN
def test_key_scrubbing_passed_through_stream_error_events(gw: Proc, direct: bool, how: str, when: str) -> None:
    headers = _headers(f"{when}:{how}", direct=direct)
    if direct:  # the SDKs' own key headers
        del headers["Authorization"]
    r = httpx.post(
        gw.url + "/genai/v1beta/models/m:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        headers={**headers, **({"x-goog-api-key": DIRECT} if direct else {})},
        timeout=10,
    )
    assert r.status_code == 200, r.text  # passed through: the error event comes in-band
    assert "[redacted]" in _clean(r.text)
    r = httpx.post(
        gw.url + "/anthropic/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": True},
        headers={**headers, **({"x-api-key": DIRECT} if direct else {})},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert "[redacted]" in _clean(r.text)


@DIRECT_OR_NOT
def test_key_scrubbing_relayed_headers(gw: Proc, direct: bool) -> None:
    cases = (
        ("headers", False, 200),
        ("headers-stream", True, 200),
        ("headers-429", False, 429),
        ("headers-429", True, 429),
    )
    for mode, stream, status in cases:
        body = {"model": "oa/m", "messages": MESSAGES, "stream": stream}
        r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=_headers(mode, direct=direct), timeout=10)
        assert r.status_code == status, r.text
        relayed = {k: v for k, v in r.headers.items() if k in ("x-upstream-request-id", "retry-after")}
        assert relayed == {"x-upstream-request-id": "req-[redacted]", "retry-after": "[redacted]"}, r.headers
        _clean(str(r.headers) + r.text)
