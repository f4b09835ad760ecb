"""A stream still running when the shutdown's grace ends: an error frame in the client's
own dialect (server_shutting_down) and a clean end of the chunked body, at the grace, not
at twice it; the process (and a supervisor's workers) exit on their own, never killed."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import serve_config, start_mock

GRACE_S = 1.0
# A stream that would run ~20 s: far past the grace.
SLOW = {"tokens": 200, "itl_ms": 100}
MESSAGES = [{"role": "user", "content": "hi"}]


def config(upstream: str | None = None) -> dict[str, Any]:
    providers: dict[str, Any] = {"mock": {"dialect": "mock", "mock": SLOW}}
    if upstream is not None:  # a Responses API served natively by `gateway mock`
        providers["native"] = {"dialect": "openai", "base_url": upstream + "/v1", "responses": "native"}
    return {
        "server": {"shutdown_grace_s": GRACE_S},
        "aliases": {"slow": "mock/mock-chat"},
        "providers": providers,
    }


REQUESTS = {
    "openai": ("/v1/chat/completions", {"model": "mock/mock-chat", "stream": True, "messages": MESSAGES}),
    "anthropic": (
        "/anthropic/v1/messages",
        {"model": "mock/mock-chat", "stream": True, "max_tokens": 500, "messages": MESSAGES},
    ),
    "gemini": (
        "/genai/v1beta/models/slow:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    ),
    # The Responses API translated (to the in-process mock) and relayed natively (the
    # mock process paces it as the body's "mock" field says).
    "responses": ("/v1/responses", {"model": "mock/mock-chat", "stream": True, "input": "hi"}),
    "native": ("/v1/responses", {"model": "native/mock-chat", "stream": True, "input": "hi", "mock": SLOW}),
}


class Reader(threading.Thread):
    """Reads one stream to its end; records what came and how the body ended."""

    def __init__(self, url: str, path: str, body: dict[str, Any], started: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.body, self.started = url, path, body, started
        self.text = ""
        self.error: BaseException | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url + self.path, json=self.body, timeout=30) as r:
                assert r.status_code == 200, r.read()
                first = True
                for chunk in r.iter_text():
                    self.text += chunk
                    if first:
                        first = False
                        self.started.wait(30)
        except BaseException as e:  # a cut body is httpx.RemoteProtocolError
            self.error = e
        self.ended_at = time.monotonic()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_streams_running_at_the_grace_end_with_an_error_frame(tmp_path: Path, workers: str) -> None:
    (tmp_path / "up").mkdir()
    up = start_mock(tmp_path / "up")
    proc = serve_config(config(up.url), tmp_path, args=("--workers", workers))
    try:
        started = threading.Barrier(len(REQUESTS) + 1)
        readers = {name: Reader(proc.url, path, body, started) for name, (path, body) in REQUESTS.items()}
        for r in readers.values():
            r.start()
        started.wait(30)  # every stream has begun
        t0 = time.monotonic()
        proc.p.send_signal(signal.SIGTERM)
        for r in readers.values():
            r.join(30)
        code = proc.p.wait(30)
        exited = time.monotonic() - t0
    finally:
        proc.stop()
        up.stop()
    for name, r in readers.items():
        assert r.error is None, (name, r.error, r.text[-300:])
        # The OpenAI frames name the code; the drop-ins' own error shapes carry the message.
        named = name in ("openai", "native")
        assert ("server_shutting_down" if named else "shutting down") in r.text, (name, r.text[-300:])
        assert r.ended_at - t0 < GRACE_S + 3, (name, r.ended_at - t0)  # at the grace, not twice it
    assert '"finish_reason":"stop"' not in readers["openai"].text  # cut, not finished
    assert readers["openai"].text.rstrip().endswith("}")  # the error frame is the last
    assert "event: error" in readers["anthropic"].text
    assert '"status":"UNAVAILABLE"' in readers["gemini"].text
    assert "event: response.failed" in readers["responses"].text
    assert readers["native"].text.rstrip().endswith("}") and "event: error" in readers["native"].text
    assert code == 0 and exited < GRACE_S + 4, (code, exited)
    log = proc.log.read_text()
    assert "ended with server_shutting_down" in log and "Traceback" not in log
    assert "killing" not in log.lower()


@pytest.mark.parametrize("stream", [True, False], ids=["stream-not-begun", "unary"])
def test_a_call_waiting_on_its_upstream_at_the_grace_is_a_503(tmp_path: Path, stream: bool) -> None:
    """Not begun: the upstream's first byte never comes in time. A 503, and logged as such,
    not as a client that went away."""
    cfg = config()
    cfg["providers"]["mock"]["mock"] = {"ttft_ms": 20_000}
    proc = serve_config(cfg, tmp_path)
    answers: list[httpx.Response] = []

    def ask() -> None:
        body = {"model": "mock/mock-chat", "messages": MESSAGES, "stream": stream}
        answers.append(httpx.post(proc.url + "/v1/chat/completions", json=body, timeout=30))

    try:
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        time.sleep(0.5)
        proc.p.send_signal(signal.SIGTERM)
        t.join(30)
        assert proc.p.wait(30) == 0
    finally:
        proc.stop()
    (r,) = answers
    assert r.status_code == 503 and r.json()["error"]["code"] == "server_shutting_down"
    log = proc.log.read_text()
    assert '"status":503' in log and '"status":499' not in log
