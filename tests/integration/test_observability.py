"""Metrics and the access log of a real gateway process: what it reports matches the
requests sent, read back with prometheus_client's own parser and as JSON lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Proc, free_port

UPSTREAM_KEY = "sk-upstream-observability-0123"
PRICES = {"gpt-x": {"input_mtok": 1.0, "output_mtok": 2.0}}
ROUTE = "/v1/chat/completions"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    port = free_port()
    proc = Proc(
        ["mock", "--port", str(port), "--api-key", UPSTREAM_KEY],
        port=port,
        log=tmp_path_factory.mktemp("obs-up") / "m.log",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("obs-gw")
    cfg = d / "gateway.json"
    cfg.write_text(
        json.dumps(
            {
                "default_provider": "up",
                "providers": {"up": {"base_url": up.url + "/v1", "keys": [{"value": UPSTREAM_KEY}], "prices": PRICES}},
            }
        )
    )
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log")
    yield proc
    proc.stop()


def scrape(gw: Proc) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(gw.url + "/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def access_lines(gw: Proc, *, at_least: int) -> list[dict[str, Any]]:
    """The JSON lines of the gateway's log (written in batches every 0.1 s: bounded wait)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in gw.log.read_text().splitlines() if line.startswith('{"ts"')]
        if len(lines) >= at_least or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_metrics_and_access_log_match_the_requests(gw: Proc) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-client-placeholder", max_retries=0)
    messages: Any = [{"role": "user", "content": "hello"}]
    answers = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-x", messages=messages, extra_headers={"x-request-id": f"obs-{len(answers)}"}
        )
        answers.append((raw.headers["x-request-id"], raw.parse()))
    assert [rid for rid, _ in answers] == ["obs-0", "obs-1", "obs-2"]
    chunks = list(client.chat.completions.create(model="gpt-x", messages=messages, stream=True))
    assert chunks
    bad = httpx.post(gw.url + ROUTE, content=b"{not json", timeout=10)
    assert bad.status_code == 400
    assert bad.headers["x-request-id"]  # error answers carry one too
    missing = httpx.get(gw.url + "/v1/nowhere", timeout=10)
    assert missing.status_code == 404

    m = scrape(gw)
    ok = (("model", "gpt-x"), ("provider", "up"), ("route", ROUTE), ("status", "200"))
    assert m[("gateway_requests_total", ok)] == 4  # three unary, one stream
    refused = (("model", "none"), ("provider", "none"), ("route", ROUTE), ("status", "400"))
    assert m[("gateway_requests_total", refused)] == 1
    unmatched = (("model", "none"), ("provider", "none"), ("route", "unmatched"), ("status", "404"))
    assert m[("gateway_requests_total", unmatched)] == 1
    assert m[("gateway_request_duration_seconds_count", (("provider", "up"), ("route", ROUTE)))] == 4
    assert m[("gateway_upstream_duration_seconds_count", (("provider", "up"),))] == 4
    assert m[("gateway_overhead_seconds_count", (("route", ROUTE),))] == 5
    assert m[("gateway_time_to_first_token_seconds_count", (("provider", "up"),))] == 1
    assert m[("gateway_errors_total", (("class", "invalid_request_error"),))] >= 2
    assert m[("gateway_in_flight_requests", ())] == 1  # the scrape itself
    assert m[("gateway_in_flight_streams", ())] == 0

    lines = access_lines(gw, at_least=6)
    by_id = {line["request_id"]: line for line in lines}
    for rid, answer in answers:
        line = by_id[rid]
        assert answer.usage is not None
        assert (line["method"], line["path"], line["status"]) == ("POST", ROUTE, 200)
        assert (line["provider"], line["model"]) == ("up", "gpt-x")
        assert (line["tokens_in"], line["tokens_out"]) == (answer.usage.prompt_tokens, answer.usage.completion_tokens)
        assert line["cost_usd"] == pytest.approx(answer.usage.model_extra["cost"]["total_cost"])  # type: ignore[index]
        assert line["latency_ms"] >= line["upstream_ms"] > 0
        assert "principal" not in line  # no auth configured
    streamed = [line for line in lines if line.get("stream")]
    assert len(streamed) == 1 and streamed[0]["tokens_out"] > 0 and streamed[0]["status"] == 200
    assert any(line["status"] == 400 and line["error"] == "invalid_request_error" for line in lines)
    log = gw.log.read_text()
    assert UPSTREAM_KEY not in log and "sk-client-placeholder" not in log
    assert "hello" not in log  # never message content


def test_answers_the_relay_did_not_time_have_sub_millisecond_latencies(gw: Proc) -> None:
    # 404s and refusals are timed from the request's own perf_counter stamp: aiohttp's
    # timer under uvloop counts whole milliseconds (every latency would be 0.0, 1.0, ...).
    ids = [f"clock-{i}" for i in range(5)]
    for rid in ids:
        assert httpx.get(gw.url + "/v1/nowhere", headers={"x-request-id": rid}, timeout=10).status_code == 404
    deadline = time.monotonic() + 10
    while not set(ids) <= {line["request_id"] for line in access_lines(gw, at_least=1)}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    latencies = [line["latency_ms"] for line in access_lines(gw, at_least=1) if line["request_id"] in ids]
    assert len(latencies) == 5 and all(ms >= 0 for ms in latencies)
    assert any(ms != int(ms) for ms in latencies), latencies
    m = scrape(gw)
    unmatched = (("route", "unmatched"),)
    count = m[("gateway_overhead_seconds_count", unmatched)]
    assert 0 < m[("gateway_overhead_seconds_sum", unmatched)] < count * 1.0


def test_content_is_logged_only_when_enabled(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("obs-content")
    cfg = d / "gateway.json"
    cfg.write_text(
        json.dumps(
            {
                "server": {"access_log_content": True},
                "default_provider": "up",
                "providers": {"up": {"base_url": up.url + "/v1", "keys": [{"value": UPSTREAM_KEY}], "prices": PRICES}},
            }
        )
    )
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port)], port=port, log=d / "gateway.log")
    try:
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "the secret recipe"}]}
        r = httpx.post(proc.url + ROUTE, json=body, headers={"x-request-id": "content-1"}, timeout=10)
        assert r.status_code == 200
        deadline = time.monotonic() + 10
        while not (found := [x for x in access_lines(proc, at_least=1) if x["request_id"] == "content-1"]):
            assert time.monotonic() < deadline, "no access log line"
            time.sleep(0.05)
        (line,) = found
        assert line["request_body"] == body
        assert line["response_body"] == r.json()
        assert UPSTREAM_KEY not in proc.log.read_text()
    finally:
        proc.stop()


def test_unpriced_requests_are_logged_with_a_null_cost(gw: Proc) -> None:
    """A model with no known price: cost_usd is null in the access log, never 0.0 (a
    free request), and the warning names the settings that would price it."""
    body = {"model": "gpt-unpriced-model", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(gw.url + ROUTE, json=body, headers={"x-request-id": "unpriced-1"}, timeout=10)
    assert r.status_code == 200 and "cost" not in r.json()["usage"]
    deadline = time.monotonic() + 10
    while not (found := [x for x in access_lines(gw, at_least=1) if x["request_id"] == "unpriced-1"]):
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.05)
    (line,) = found
    assert "cost_usd" in line and line["cost_usd"] is None
    log = gw.log.read_text()
    assert "gpt-unpriced-model" in log and "'pricing_provider'" in log and "'prices'" in log
