"""The one failure policy end to end: every 5xx (Anthropic's 529 overloaded_error, 501,
505 too) is retried and falls back; a 4xx that is the request's own fault leaves the key
unmarked. Real gateway, the suite's scripted upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, serve_config
from tests.faulty import COMPLETION, FaultyUpstream, Request, respond

OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
MESSAGES = [{"role": "user", "content": "hi"}]
ANTHROPIC_OK = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"ok"}],'
    b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}'
)


@pytest.fixture(scope="module")
def gw(faulty: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    seen: dict[str, int] = {}

    def counted(name: str) -> int:
        seen[name] = seen.get(name, 0) + 1
        return seen[name]

    @faulty.on("fp-529")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 529, OVERLOADED)

    @faulty.on("fp-529-once")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        if counted("fp-529-once") % 2:
            await respond(w, 529, OVERLOADED)
        else:
            await respond(w, 200, ANTHROPIC_OK)

    for code in (501, 505):

        @faulty.on(f"fp-{code}")
        async def _(req: Request, w: asyncio.StreamWriter, code: int = code) -> None:
            await respond(w, code, b'{"error":{"message":"not here","type":"server_error"}}')

    @faulty.on("fp-400")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 400, b'{"error":{"message":"bad request","type":"invalid_request_error"}}')

    @faulty.on("fp-ok")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, COMPLETION)

    key = [{"value": "sk-policy-test-0123456789"}]
    config: dict[str, Any] = {
        "providers": {
            "anth": {"dialect": "anthropic", "base_url": faulty.url("fp-529"), "keys": key},
            "anthretry": {
                "dialect": "anthropic",
                "base_url": faulty.url("fp-529-once"),
                "keys": key,
                "retries": {"max_retries": 1, "backoff_initial_s": 0.01, "backoff_max_s": 0.01},
            },
            "five01": {"base_url": faulty.url("fp-501") + "/v1", "keys": key},
            "five05": {"base_url": faulty.url("fp-505") + "/v1", "keys": key},
            "bad": {"base_url": faulty.url("fp-400") + "/v1", "keys": key},
            "ok": {"base_url": faulty.url("fp-ok") + "/v1", "keys": key},
        }
    }
    proc = serve_config(config, tmp_path_factory.mktemp("failure-policy"))
    yield proc
    proc.stop()


def chat(gw: Proc, model: str, fallbacks: list[str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if fallbacks:
        body["fallbacks"] = fallbacks
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)


@pytest.mark.parametrize("primary", ["anth/claude-x", "five01/m", "five05/m"])
def test_every_5xx_falls_back(gw: Proc, primary: str) -> None:
    r = chat(gw, primary, ["ok/m"])
    assert r.status_code == 200, r.text
    assert r.headers["x-bifrost-provider"] == "ok" and r.headers["x-bifrost-fallback-index"] == "1"


def test_anthropic_overloaded_is_retried(gw: Proc) -> None:
    r = chat(gw, "anthretry/claude-x")
    assert r.status_code == 200, r.text
    assert r.headers["x-bifrost-provider"] == "anthretry"


def test_a_request_fault_neither_falls_back_nor_marks_the_key(gw: Proc) -> None:
    for _ in range(4):  # more than the strikes that cool a key
        r = chat(gw, "bad/m", ["ok/m"])
        assert r.status_code == 400, r.text
    state = httpx.get(gw.url + "/health?providers=1").json()["providers"]["bad"]
    assert state["last_failure_status"] == 400
    assert state["keys"][0]["cooling_down"] is False
