"""Upstream 200s that are not the answer asked for, on a real gateway process (with each
upstream client) in front of the suite's scripted upstream (``tests.faulty``): a unary
answer without ``choices`` and a non-event-stream answer to a stream request are 502
``upstream_bad_response`` before anything reaches the client, so a fallback can serve."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, serve_config
from tests.faulty import COMPLETION, STREAM, FaultyUpstream, Request, respond

ROUTE = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def scripts(up: FaultyUpstream) -> None:
    @up.on("bad-empty")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, b"{}")

    @up.on("bad-error-object")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, b'{"error": {"message": "overloaded", "type": "server_error"}}')

    @up.on("bad-json-stream")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, COMPLETION)  # application/json

    @up.on("bad-textjson-stream")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, COMPLETION, content_type="text/json")

    @up.on("bad-charset-stream")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        # A real event stream with a parameter on its type: relayed as any other.
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        w.write(head + b"Content-Length: %d\r\n\r\n%s" % (len(STREAM), STREAM))
        await w.drain()


@pytest.fixture(scope="module", params=["aiohttp", "pool"])
def gw(
    faulty: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Proc]:
    scripts(faulty)
    names = ("bad-empty", "bad-error-object", "bad-json-stream", "bad-textjson-stream", "bad-charset-stream")
    providers: dict[str, Any] = {
        name: {"base_url": faulty.url(name) + "/v1", "client": request.param} for name in names
    }
    providers["mock"] = {"dialect": "mock"}
    proc = serve_config({"providers": providers}, tmp_path_factory.mktemp(f"bad-answers-{request.param}"))
    yield proc
    proc.stop()


def post(gw: Proc, model: str, *, stream: bool = False, fallbacks: list[str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
    if fallbacks:
        body["fallbacks"] = fallbacks
    return httpx.post(gw.url + ROUTE, json=body, timeout=10)


@pytest.mark.parametrize("model", ["bad-empty/m", "bad-error-object/m"])
def test_bad_answers_completion_without_choices_is_502(gw: Proc, model: str) -> None:
    r = post(gw, model)
    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "upstream_bad_response"
    assert "choices" in r.json()["error"]["message"]


def test_bad_answers_completion_without_choices_falls_back(gw: Proc) -> None:
    r = post(gw, "bad-empty/m", fallbacks=["mock/m"])
    assert r.status_code == 200, r.text
    assert r.headers["x-bifrost-fallback-index"] == "1"
    assert r.json()["choices"]


@pytest.mark.parametrize("model", ["bad-json-stream/m", "bad-textjson-stream/m"])
def test_bad_answers_non_event_stream_to_stream_request_is_502(gw: Proc, model: str) -> None:
    r = post(gw, model, stream=True)
    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == "upstream_bad_response"
    assert "text/event-stream" in err["message"]
    assert "chatcmpl-faulty" not in r.text  # nothing of the upstream's answer reached the client


@pytest.mark.parametrize("model", ["bad-json-stream/m", "bad-textjson-stream/m"])
def test_bad_answers_non_event_stream_falls_back(gw: Proc, model: str) -> None:
    r = post(gw, model, stream=True, fallbacks=["mock/m"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-bifrost-fallback-index"] == "1"
    frames = [f.removeprefix("data: ") for f in r.text.split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    assert all("error" not in json.loads(f) for f in frames[:-1])


def test_bad_answers_event_stream_with_parameters_is_relayed(gw: Proc) -> None:
    r = post(gw, "bad-charset-stream/m", stream=True)
    assert r.status_code == 200, r.text
    assert r.text.endswith("data: [DONE]\n\n")
    assert '"content":"o"' in r.text and '"error"' not in r.text
