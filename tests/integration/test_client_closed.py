"""Requests whose client goes away mid-relay, on a real gateway process (with each upstream
client) in front of a real ``gateway mock``: each is recorded exactly once, as a 499
``client_closed``, in the metrics, the access log and the request log store, with what it
was charged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, metric, serve_config

ADMIN_TOKEN = "adm-closed-token-0123456789"
PRICES = {"gpt-x": {"input_mtok": 1.0, "output_mtok": 2.0}}
ROUTE = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hello there"}]
WAIT_S = 10.0


@pytest.fixture(scope="module")
def up(plain_upstream: Proc) -> Proc:
    return plain_upstream


@pytest.fixture(scope="module", params=["aiohttp", "pool"])
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp(f"closed-gw-{request.param}")
    config = {
        "default_provider": "up",
        "providers": {"up": {"base_url": up.url + "/v1", "prices": PRICES, "client": request.param}},
        "auth": {"admin_token": ADMIN_TOKEN},
        "logs": {"enabled": True, "path": str(d / "logs.sqlite3"), "flush_s": 0.05},
    }
    proc = serve_config(config, d)
    yield proc
    proc.stop()


def wait_for(cond: Callable[[], Any]) -> Any:
    """``cond()`` once it is truthy, polled for at most WAIT_S; else its last value."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = cond()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def lines_of(gw: Proc, rid: str) -> list[dict[str, Any]]:
    out = []
    for line in gw.log.read_text().splitlines():
        if line.startswith('{"ts"'):
            parsed = json.loads(line)
            if parsed["request_id"] == rid:
                out.append(parsed)
    return out


def rows_of(gw: Proc, rid: str) -> list[dict[str, Any]]:
    r = httpx.get(
        gw.url + "/api/logs", params={"status": "499"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    )
    r.raise_for_status()
    return [row for row in r.json()["data"] if row["request_id"] == rid]


def closed(gw: Proc) -> tuple[float, float]:
    return (
        metric(gw, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="499"),
        metric(gw, "gateway_errors_total", **{"class": "client_closed"}),
    )


def recorded_once(gw: Proc, rid: str, before: tuple[float, float]) -> dict[str, Any]:
    """The one access log line of ``rid``, once it, its stored row and its metrics are in."""
    line = wait_for(lambda: lines_of(gw, rid))
    assert len(line) == 1, line
    rows = wait_for(lambda: rows_of(gw, rid))
    assert len(rows) == 1, rows
    assert wait_for(lambda: closed(gw) == (before[0] + 1, before[1] + 1)), (before, closed(gw))
    entry: dict[str, Any] = line[0]
    # The stored row has every field the line has, with the same values.
    assert {k: rows[0][k] for k in entry} == entry
    assert lines_of(gw, rid) == line  # and nothing recorded it again meanwhile
    return entry


def test_client_closed_stream_recorded_once_with_what_passed(gw: Proc) -> None:
    rid = f"closed-stream-{gw.port}"
    before = closed(gw)
    gone = metric(gw, "gateway_streams_total", provider="up", outcome="client_gone")
    out_tokens = metric(gw, "gateway_tokens_total", provider="up", direction="output")
    ok = metric(gw, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="200")
    body = {"model": "gpt-x", "stream": True, "messages": MESSAGES, "mock": {"tokens": 500, "itl_ms": 20}}
    with httpx.stream("POST", gw.url + ROUTE, json=body, headers={"x-request-id": rid}, timeout=10) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
    assert any(g.startswith("data: ") for g in got)

    line = recorded_once(gw, rid, before)
    assert (line["status"], line["error"], line["path"]) == (499, "client_closed", ROUTE)
    assert (line["provider"], line["model"], line["stream"]) == ("up", "gpt-x", True)
    assert line["tokens_in"] > 0
    assert 1 <= line["tokens_out"] < 500  # what passed, not the whole planned answer
    assert line["cost_usd"] == pytest.approx((line["tokens_in"] * 1.0 + line["tokens_out"] * 2.0) / 1e6)
    assert line["latency_ms"] >= line["upstream_ms"] > 0
    # Charged once: the token counter moved by exactly what the record says.
    charged = metric(gw, "gateway_tokens_total", provider="up", direction="output") - out_tokens
    assert charged == line["tokens_out"]
    assert metric(gw, "gateway_streams_total", provider="up", outcome="client_gone") == gone + 1
    assert metric(gw, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="200") == ok


@pytest.mark.parametrize("stream", [False, True])
def test_client_closed_before_the_upstream_answered_recorded_once(gw: Proc, stream: bool) -> None:
    rid = f"closed-early-{stream}-{gw.port}"
    before = closed(gw)
    out_tokens = metric(gw, "gateway_tokens_total", provider="up", direction="output")
    body = {"model": "gpt-x", "messages": MESSAGES, "stream": stream, "mock": {"tokens": 5, "ttft_ms": 3000}}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while the upstream thinks
        httpx.post(gw.url + ROUTE, json=body, headers={"x-request-id": rid}, timeout=httpx.Timeout(10, read=0.3))

    line = recorded_once(gw, rid, before)
    assert (line["status"], line["error"], line["path"]) == (499, "client_closed", ROUTE)
    assert (line["provider"], line["model"], line.get("stream", False)) == ("up", "gpt-x", stream)
    # Nothing passed: nothing charged.
    assert (line.get("tokens_in", 0), line.get("tokens_out", 0), line.get("cost_usd", 0)) == (0, 0, 0)
    assert line["latency_ms"] >= line["upstream_ms"] > 0
    assert metric(gw, "gateway_tokens_total", provider="up", direction="output") == out_tokens


def test_client_closed_answered_requests_stay_200(gw: Proc) -> None:
    before = closed(gw)
    ok = metric(gw, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="200")
    r = httpx.post(gw.url + ROUTE, json={"model": "gpt-x", "messages": MESSAGES}, timeout=10)
    assert r.status_code == 200
    with httpx.stream("POST", gw.url + ROUTE, json={"model": "gpt-x", "messages": MESSAGES, "stream": True}) as s:
        assert s.status_code == 200 and "[DONE]" in s.read().decode()
    assert wait_for(
        lambda: metric(gw, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="200") == ok + 2
    )
    assert closed(gw) == before
