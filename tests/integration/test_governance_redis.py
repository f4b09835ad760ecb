"""Two gateway processes sharing one real Redis (switched on by GATEWAY_REDIS_URL, no
config change): a rate limit and a budget hold in total across both, under concurrent
load, to the exact request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, RedisServer, free_port, metric
from tests.integration.test_governance import PRICES

VK_RATE = "sk-bf-shared-rate-0123456789"
VK_BUDGET = "sk-bf-shared-budget-012345678"


@pytest.fixture(scope="module")
def up(plain_upstream: Proc) -> Proc:
    return plain_upstream


@pytest.fixture(scope="module")
def pair(up: Proc, redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    d = tmp_path_factory.mktemp("gw-gov-redis")
    cfg = d / "gateway.json"
    cfg.write_text(
        json.dumps(
            {
                "providers": {"up": {"base_url": up.url + "/v1", "prices": PRICES}},
                "default_provider": "up",
                "store": {"prefix": f"gw-test-{free_port()}:"},  # apart from other tests' keys
                "auth": {
                    "virtual_keys": [
                        {"name": "rate", "value": VK_RATE, "rate_limits": [{"requests": 10, "window": "1h"}]},
                        {"name": "budget", "value": VK_BUDGET, "budgets": [{"usd": 6, "window": "1d"}]},
                    ]
                },
            }
        )
    )
    procs = []
    for i in range(2):
        port = free_port()
        procs.append(
            Proc(
                ["serve", "--config", str(cfg), "--port", str(port)],
                port=port,
                log=d / f"gateway{i}.log",
                env={"GATEWAY_REDIS_URL": redis_server, "GATEWAY_AUTH_REQUIRED": "true"},
            )
        )
    yield procs
    for p in procs:
        p.stop()


def _chat(gw: Proc, key: str) -> int:
    body: dict[str, Any] = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-bf-vk": key}, timeout=10).status_code


def test_auth_required_from_the_environment(pair: list[Proc]) -> None:
    r = httpx.post(pair[0].url + "/v1/chat/completions", json={"model": "gpt-x", "messages": []})
    assert r.status_code == 401


def test_rate_limit_holds_across_two_processes(pair: list[Proc]) -> None:
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: _chat(pair[i % 2], VK_RATE), range(30)))
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    refused = sum(metric(p, "gateway_refused_requests_total", reason="rate_limited") for p in pair)
    assert refused == 20


def test_budget_holds_across_two_processes(pair: list[Proc]) -> None:
    # $6 at $2 a request: exactly 3 served across both, 12 sent 12 at a time.
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: _chat(pair[i % 2], VK_BUDGET), range(12)))
    assert statuses.count(200) == 3 and statuses.count(402) == 9


VK_OUTAGE = "sk-bf-outage-limited-01234567"


@pytest.fixture(scope="module")
def outage(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Proc, Proc]]:
    """A Redis of its own, to stop and start, and two gateways on it: one failing closed
    (the default), one failing open (GATEWAY_STORE_FAIL_OPEN)."""
    d = tmp_path_factory.mktemp("gw-gov-outage")
    server = RedisServer(d)
    cfg = d / "gateway.json"
    cfg.write_text(
        json.dumps(
            {
                "providers": {"up": {"base_url": up.url + "/v1", "prices": PRICES}},
                "default_provider": "up",
                "auth": {
                    "required": True,
                    "virtual_keys": [
                        {"name": "outage", "value": VK_OUTAGE, "rate_limits": [{"requests": 1000, "window": "1h"}]}
                    ],
                },
            }
        )
    )
    procs = []
    for name, env in (("closed", {}), ("open", {"GATEWAY_STORE_FAIL_OPEN": "true"})):
        port = free_port()
        procs.append(
            Proc(
                ["serve", "--config", str(cfg), "--port", str(port)],
                port=port,
                log=d / f"{name}.log",
                env={"GATEWAY_REDIS_URL": server.url, **env},
            )
        )
    yield server, procs[0], procs[1]
    for p in procs:
        p.stop()
    server.stop()


def test_redis_outage_fails_closed_or_open_and_recovers(outage: tuple[RedisServer, Proc, Proc]) -> None:
    server, closed, opened = outage
    assert _chat(closed, VK_OUTAGE) == 200 and _chat(opened, VK_OUTAGE) == 200
    server.stop()
    errors = {p: metric(p, "gateway_store_errors_total") for p in (closed, opened)}

    r = httpx.post(
        closed.url + "/v1/chat/completions",
        json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-bf-vk": VK_OUTAGE},
        timeout=10,
    )
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "store_unavailable" and "store" in err["message"]
    assert metric(closed, "gateway_refused_requests_total", reason="store_unavailable") >= 1

    assert _chat(opened, VK_OUTAGE) == 200  # failing open: served, uncounted
    for p in (closed, opened):
        assert metric(p, "gateway_store_errors_total") > errors[p]
        assert p.alive()
        assert httpx.get(p.url + "/health", timeout=5).status_code == 200

    server.start()  # back, empty: both count again (bounded: the client reconnects)
    deadline = time.monotonic() + 10
    while _chat(closed, VK_OUTAGE) != 200:
        assert time.monotonic() < deadline, "the gateway did not recover after Redis came back"
        time.sleep(0.2)
    assert _chat(opened, VK_OUTAGE) == 200
