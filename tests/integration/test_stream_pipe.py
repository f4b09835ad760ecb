"""The stream relay on its upstream-driven path (``relay.pipe``: each upstream read goes to
the client inside the pooled connection's ``data_received``), on a real gateway process:
an upstream answer split into two reads at every byte reaches the client whole (frames
byte for byte, the usage chunk enriched); a client that vanishes in the middle of a
chunk closes the upstream at once and is recorded as gone."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, metric, serve_config, start_mock
from tests.faulty import FaultyUpstream, Request

FRAMES = [
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":"lo"},"finish_reason":null}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
    b"data: [DONE]\n\n",
]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
ANSWER = HEAD + b"".join(b"%x\r\n%b\r\n" % (len(f), f) for f in FRAMES) + b"0\r\n\r\n"


@pytest.fixture(scope="module")
def gw(faulty: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    @faulty.on("pipe-split")
    async def split(req: Request, w: asyncio.StreamWriter) -> None:
        """The answer in two writes, cut where the request's model says."""
        cut = int(json.loads(req.body)["model"].removeprefix("cut-"))
        w.write(ANSWER[:cut])
        await w.drain()
        await asyncio.sleep(0.002)  # the gateway reads the first part alone
        w.write(ANSWER[cut:])
        await w.drain()

    d = tmp_path_factory.mktemp("pipe-gw")
    config = {"providers": {"split": {"base_url": faulty.url("pipe-split") + "/v1", "prices": {}}}}
    proc = serve_config(config, d)
    yield proc
    proc.stop()


def _frames(raw: bytes) -> list[bytes]:
    return [f + b"\n\n" for f in raw.split(b"\n\n") if f]


def test_pipe_answer_split_at_every_byte_reaches_the_client_whole(gw: Proc) -> None:
    body: dict[str, Any] = {
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for cut in range(1, len(ANSWER)):
            r = client.post("/v1/chat/completions", json={**body, "model": f"split/cut-{cut}"})
            assert r.status_code == 200, (cut, r.text)
            got = _frames(r.content)
            # Every frame but the usage chunk byte for byte; that one enriched.
            assert got[:3] == FRAMES[:3] and got[4:] == FRAMES[4:], (cut, r.content)
            usage = json.loads(got[3].removeprefix(b"data: "))
            assert usage["usage"]["total_tokens"] == 7 and "extra_fields" in usage, (cut, got[3])


@pytest.fixture(scope="module")
def mock_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("pipe-mock"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def mock_gw(mock_up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d: Path = tmp_path_factory.mktemp("pipe-mock-gw")
    proc = serve_config({"providers": {"up": {"base_url": mock_up.url + "/v1"}}, "default_provider": "up"}, d)
    yield proc
    proc.stop()


def _active(up: Proc) -> int:
    return int(httpx.get(up.url + "/mock/stats", timeout=5).json()["streams_active"])


def test_pipe_client_vanishing_mid_chunk_closes_the_upstream(mock_gw: Proc, mock_up: Proc) -> None:
    gone = metric(mock_gw, "gateway_streams_total", provider="up", outcome="client_gone")
    before = _active(mock_up)
    body = json.dumps(
        {
            "model": "gpt-x",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
            "mock": {"tokens": 2000, "itl_ms": 5},
        }
    ).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", mock_gw.port), timeout=10) as s:
        s.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        seen = b""
        while seen.count(b"data: ") < 3:
            seen += s.recv(4096)
        # Ends inside the chunk being read: an abortive close (RST), as a crashed client.
        s.recv(7)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 5
    while _active(mock_up) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _active(mock_up) == before  # the upstream stream was closed, well before its 10 s
    while time.monotonic() < deadline:
        if metric(mock_gw, "gateway_streams_total", provider="up", outcome="client_gone") == gone + 1:
            break
        time.sleep(0.05)
    assert metric(mock_gw, "gateway_streams_total", provider="up", outcome="client_gone") == gone + 1
    assert httpx.get(mock_gw.url + "/health", timeout=5).status_code == 200
