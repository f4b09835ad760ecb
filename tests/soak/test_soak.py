"""The mixed soak: a real gateway process in front of a mock upstream and the suite's
faulty upstream, driven for a bounded time (``SOAK_DURATION_S``, default 180 s) with
unary and streamed chat, text completions, both drop-ins, bad input, streams the client
abandons halfway and upstream faults. Asserts the gateway's RSS and open descriptors stay
flat after a warm-up and that ``gateway_requests_total`` counts every request sent.

Not part of the default run (setup.cfg ignores tests/soak): ``make soak``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, free_port, serve_config
from tests.faulty import FaultyUpstream, reset

DURATION_S = float(os.environ.get("SOAK_DURATION_S", "180"))
WARMUP_S = min(30.0, DURATION_S / 4)
SAMPLE_EVERY_S = 2.0
CLIENTS = 2  # threads sending at once; the machine has two cores for everything
# Bounded growth after the warm-up: allocator slack, not a leak (a leak of even 1 KB per
# request would pass these within the first minute at this rate).
RSS_SLACK_BYTES = 8 * 1024 * 1024
FD_SLACK = 8
MSG = [{"role": "user", "content": "hi"}]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream()

    @up.on("soak-reset")
    async def _(req: Any, w: Any) -> None:
        reset(w)

    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, faulty: FaultyUpstream) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("soak")
    port = free_port()
    up = Proc(["mock", "--port", str(port)], port=port, log=d / "mock.log")
    config = {
        "default_provider": "up",
        "providers": {
            "up": {"base_url": up.url + "/v1", "client": "pool"},
            "mock": {"dialect": "mock"},
            "broken": {"base_url": faulty.url("soak-reset") + "/v1"},
        },
    }
    proc = serve_config(config, d)
    yield proc
    proc.stop()
    up.stop()


def _chat(c: httpx.Client) -> None:
    c.post("/v1/chat/completions", json={"model": "up/m", "messages": MSG}).raise_for_status()


def _stream(c: httpx.Client) -> None:
    body = {"model": "up/m", "messages": MSG, "stream": True}
    with c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert b"[DONE]" in r.read()


def _abandoned(c: httpx.Client) -> None:
    body = {"model": "up/m", "messages": MSG, "stream": True, "mock": {"tokens": 50, "itl_ms": 20}}
    with c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        next(r.iter_raw())  # the first bytes, then the client goes away


def _text(c: httpx.Client) -> None:
    c.post("/v1/completions", json={"model": "up/m", "prompt": "hi"}).raise_for_status()


def _anthropic(c: httpx.Client) -> None:
    body = {"model": "mock/m", "max_tokens": 5, "messages": MSG}
    c.post("/anthropic/v1/messages", json=body).raise_for_status()


def _genai(c: httpx.Client) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    c.post("/genai/v1beta/models/mock/m:generateContent", json=body).raise_for_status()


def _bad(c: httpx.Client) -> None:
    r = c.post("/v1/chat/completions", content=b'{"model":"up/m","messages":[{"role":"user","content":"\xff"}]}')
    assert r.status_code == 400


def _fault(c: httpx.Client) -> None:
    assert c.post("/v1/chat/completions", json={"model": "broken/m", "messages": MSG}).status_code == 502


MIX: list[Callable[[httpx.Client], None]] = [_chat, _stream, _chat, _text, _anthropic, _genai, _bad, _abandoned, _fault]


def test_soak_mixed_traffic_keeps_memory_and_descriptors_flat_and_counts_every_request(gw: Proc) -> None:
    pid = gw.p.pid
    sent = [0] * CLIENTS
    failures: list[BaseException] = []
    deadline = time.monotonic() + DURATION_S

    def drive(i: int) -> None:
        with httpx.Client(base_url=gw.url, timeout=30) as c:
            n = i
            while time.monotonic() < deadline and not failures:
                kind = MIX[n % len(MIX)]
                n += 1
                sent[i] += 1
                try:
                    kind(c)
                except BaseException as e:
                    failures.append(e)

    threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    samples: list[tuple[float, int, int]] = []
    while any(t.is_alive() for t in threads):
        samples.append((time.monotonic() - t0, rss_bytes(pid), open_fds(pid)))
        for t in threads:
            t.join(SAMPLE_EVERY_S / CLIENTS)
    elapsed = time.monotonic() - t0
    samples.append((elapsed, rss_bytes(pid), open_fds(pid)))
    assert not failures, failures[:3]

    total = sum(sent)
    warm = next(s for s in samples if s[0] >= WARMUP_S)
    end = samples[-1]
    peak_rss = max(s[1] for s in samples if s[0] >= WARMUP_S)
    report = {
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "rss_mb": {"start": samples[0][1] >> 20, "warm": warm[1] >> 20, "end": end[1] >> 20, "peak": peak_rss >> 20},
        "fds": {"start": samples[0][2], "warm": warm[2], "end": end[2], "max": max(s[2] for s in samples)},
        "counted": counted(gw),
    }
    print("soak:", json.dumps(report))
    assert peak_rss - warm[1] <= RSS_SLACK_BYTES, report
    assert max(s[2] for s in samples if s[0] >= WARMUP_S) - warm[2] <= FD_SLACK, report
    assert report["counted"] == total, report


def counted(proc: Proc) -> int:
    """The sum of gateway_requests_total over every route the soak sends to."""
    from prometheus_client.parser import text_string_to_metric_families

    n = 0.0
    for family in text_string_to_metric_families(httpx.get(proc.url + "/metrics").text):
        for sample in family.samples:
            if sample.name == "gateway_requests_total" and sample.labels.get("route") not in ("/metrics", "/health"):
                n += sample.value
    return int(n)
