"""Deadlines, caps and framing of upstream answers, through a real gateway process in
front of the suite's faulty upstream, once with each upstream client (the pool,
aiohttp's ClientSession): a whole-request deadline that a trickling upstream cannot
stretch, close-delimited answers, answers and heads over their caps, a frame that never
ends, and a connection dropped before any response byte."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import Proc, serve_config
from tests.faulty import COMPLETION, DONE, STREAM, Request, chunk_frame, head, reset, respond, respond_chunked

CHAT = "/v1/chat/completions"
# Small, so the old behaviour (bytes trickling in for seconds) is far past it.
REQUEST_S = 1.0
TRICKLE_GAP_S = 0.1
TRICKLE_STEPS = 40  # 4 s of trickle: well past REQUEST_S, and bounded
SMALL_CAP = 64 * 1024
BIG_ANSWER = 17 * 1024 * 1024  # past the default max_response_bytes (16 MiB)


def _completion(content_bytes: int) -> bytes:
    obj = msgspec.json.decode(COMPLETION)
    obj["choices"][0]["message"]["content"] = "x" * content_bytes
    return msgspec.json.encode(obj)


def _register(up: Any) -> None:
    @up.on("bt-trickle")
    async def trickle(req: Request, w: asyncio.StreamWriter) -> None:
        # Headers at once, then a byte every TRICKLE_GAP_S: never idle, never done in time.
        w.write(head(200, length=len(COMPLETION)))
        for i in range(TRICKLE_STEPS):
            w.write(COMPLETION[i : i + 1])
            await w.drain()
            await asyncio.sleep(TRICKLE_GAP_S)
        w.write(COMPLETION[TRICKLE_STEPS:])
        await w.drain()

    @up.on("bt-stream-trickle")
    async def stream_trickle(req: Request, w: asyncio.StreamWriter) -> None:
        parts = [chunk_frame("x") for _ in range(TRICKLE_STEPS)] + [STREAM]
        await respond_chunked(w, parts, gap_s=TRICKLE_GAP_S)

    @up.on("bt-late-stream")
    async def late_stream(req: Request, w: asyncio.StreamWriter) -> None:
        # Silent past the client's deadline, well within the first-byte bound.
        await asyncio.sleep(TRICKLE_GAP_S * TRICKLE_STEPS)
        await respond_chunked(w, [STREAM])

    @up.on("bt-eof")
    async def eof(req: Request, w: asyncio.StreamWriter) -> None:
        # Neither Content-Length nor chunking: the body ends at the close.
        stream = msgspec.json.decode(req.body).get("stream", False)
        if stream:
            w.write(head(200, content_type="text/event-stream", length=None) + STREAM)
        else:
            w.write(head(200, length=None) + COMPLETION)
        await w.drain()
        w.close()

    @up.on("bt-big")
    async def big(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, _completion(BIG_ANSWER))

    @up.on("bt-big-error")
    async def big_error(req: Request, w: asyncio.StreamWriter) -> None:
        body = b'{"error":{"message":"' + b"e" * (2 * SMALL_CAP) + b'","type":"server_error"}}'
        await respond(w, 500, body)

    @up.on("bt-long-header")
    async def long_header(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, COMPLETION, extra=f"X-Padding: {'p' * 100_000}\r\n")

    @up.on("bt-endless-frame")
    async def endless_frame(req: Request, w: asyncio.StreamWriter) -> None:
        # One frame that never ends: 2.5 MB without a blank line, then the close.
        parts = [chunk_frame("a")[:-2] + b"x" * 1000] + [b"y" * 65536] * 40
        await respond_chunked(w, parts)
        w.close()

    @up.on("bt-close-at-once")
    async def close_at_once(req: Request, w: asyncio.StreamWriter) -> None:
        w.close()

    @up.on("bt-reset-at-once")
    async def reset_at_once(req: Request, w: asyncio.StreamWriter) -> None:
        reset(w)


SCENARIOS = (
    "bt-trickle",
    "bt-stream-trickle",
    "bt-late-stream",
    "bt-eof",
    "bt-big",
    "bt-big-error",
    "bt-long-header",
    "bt-endless-frame",
    "bt-close-at-once",
    "bt-reset-at-once",
)


@pytest.fixture(scope="module", params=["pool", "aiohttp"])
def gw(request: pytest.FixtureRequest, faulty: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    _register(faulty)
    providers: dict[str, Any] = {
        name: {
            "base_url": faulty.url(name) + "/v1",
            "client": request.param,
            # A first-byte bound far past the client's deadline, a request bound the
            # trickles outlast.
            "timeouts": {"request_s": REQUEST_S, "first_byte_s": 30, "stream_idle_s": 30},
        }
        for name in SCENARIOS
    }
    providers["bt-big-error"]["max_response_bytes"] = SMALL_CAP
    proc = serve_config({"providers": providers}, tmp_path_factory.mktemp(f"bounds-{request.param}"))
    yield proc
    proc.stop()


def chat(gw: Proc, provider: str, *, stream: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": f"{provider}/m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(gw.url + CHAT, json=body, headers=headers or {}, timeout=60)


def error_of(resp: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def last_frame(resp: httpx.Response) -> bytes:
    frames = [f for f in resp.content.split(b"\n\n") if f.strip()]
    return frames[-1]


def test_unary_deadline_holds_against_a_trickle(gw: Proc) -> None:
    resp = chat(gw, "bt-trickle")
    assert resp.status_code == 504
    assert error_of(resp)["code"] == "upstream_timeout"


def test_stream_deadline_from_request_timeout_header_ends_with_error_frame(gw: Proc) -> None:
    resp = chat(gw, "bt-stream-trickle", stream=True, headers={"x-bf-request-timeout": str(REQUEST_S)})
    assert resp.status_code == 200
    frame = last_frame(resp)
    assert frame.startswith(b"data: {")
    assert msgspec.json.decode(frame[6:])["error"]["code"] == "upstream_timeout"
    assert DONE not in resp.content


def test_stream_first_byte_wait_cut_to_request_timeout_header(gw: Proc) -> None:
    resp = chat(gw, "bt-late-stream", stream=True, headers={"x-bf-request-timeout": "0.5"})
    assert resp.status_code == 504
    assert error_of(resp)["code"] == "upstream_timeout"


def test_close_delimited_unary_answer_completes(gw: Proc) -> None:
    resp = chat(gw, "bt-eof")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "ok"


def test_close_delimited_stream_completes(gw: Proc) -> None:
    resp = chat(gw, "bt-eof", stream=True)
    assert resp.status_code == 200
    assert resp.content.endswith(DONE), resp.content[-300:]
    assert b'"error"' not in resp.content


def test_unary_answer_over_default_cap_is_502_naming_it(gw: Proc) -> None:
    resp = chat(gw, "bt-big")
    assert resp.status_code == 502
    err = error_of(resp)
    assert err["code"] == "upstream_bad_response"
    assert str(16 * 1024 * 1024) in err["message"] and "max_response_bytes" in err["message"]


def test_error_body_over_configured_cap_is_502_naming_it(gw: Proc) -> None:
    resp = chat(gw, "bt-big-error")
    assert resp.status_code == 502
    err = error_of(resp)
    assert err["code"] == "upstream_bad_response"
    assert str(SMALL_CAP) in err["message"]


def test_response_header_line_over_8k_is_refused(gw: Proc) -> None:
    resp = chat(gw, "bt-long-header")
    assert resp.status_code == 502
    assert error_of(resp)["code"] == "upstream_bad_response"


def test_sse_frame_that_never_ends_is_cut_at_the_frame_cap(gw: Proc) -> None:
    resp = chat(gw, "bt-endless-frame", stream=True)
    assert resp.status_code == 200
    frame = last_frame(resp)
    err = msgspec.json.decode(frame[6:])["error"]
    assert err["code"] == "upstream_bad_response"
    assert str(1024 * 1024) in err["message"]
    assert len(resp.content) < 64 * 1024  # the partial frame never reached the client


@pytest.mark.parametrize("provider", ["bt-close-at-once", "bt-reset-at-once"])
def test_connection_dropped_before_any_response_byte_is_a_connect_error(gw: Proc, provider: str) -> None:
    for stream in (False, True):
        resp = chat(gw, provider, stream=stream)
        assert resp.status_code == 502
        assert error_of(resp)["code"] == "upstream_connect_error"


def test_gateway_still_healthy(gw: Proc) -> None:
    assert gw.alive()
    assert httpx.get(gw.url + "/health").status_code == 200
