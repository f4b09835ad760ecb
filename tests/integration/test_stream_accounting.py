"""Usage, cost and extra_fields through the real gateway; stream relay failure modes,
client disconnects, timeouts and backpressure, observed from the upstream's side."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import openai
import pytest

from gateway.accounting.tokens import Tokenizers, count_chat_prompt
from tests.conftest import Proc, metric, sdk_client

MESSAGES: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to ten."}]
GPT4O_MINI = (0.15e-6, 0.6e-6)  # USD per input / output token, OpenAI's list price


def sdk(gateway: Proc) -> openai.OpenAI:
    client: openai.OpenAI = sdk_client(gateway.url + "/v1")
    return client


def extra(obj: Any) -> dict[str, Any]:
    fields: dict[str, Any] = (obj.model_extra or {})["extra_fields"]
    return fields


def test_unary_cost_from_pricing_data(gateway: Proc) -> None:
    c = sdk(gateway).chat.completions.create(model="priced/gpt-4o-mini", messages=MESSAGES, max_tokens=9)
    assert c.usage is not None
    cost = (c.usage.model_extra or {})["cost"]
    assert cost["input_tokens_cost"] == pytest.approx(c.usage.prompt_tokens * GPT4O_MINI[0])
    assert cost["output_tokens_cost"] == pytest.approx(9 * GPT4O_MINI[1])
    assert cost["total_cost"] == pytest.approx(cost["input_tokens_cost"] + cost["output_tokens_cost"])
    assert "usage_estimated" not in extra(c)


def test_unary_cost_from_config_override(gateway: Proc) -> None:
    c = sdk(gateway).completions.create(model="selfhosted/my-model", prompt="hello there", max_tokens=4)
    assert c.usage is not None
    cost = (c.usage.model_extra or {})["cost"]
    assert cost["input_tokens_cost"] == pytest.approx(c.usage.prompt_tokens * 1e-6)
    assert cost["output_tokens_cost"] == pytest.approx(4 * 2e-6)
    assert cost["request_cost"] == pytest.approx(0.0005)
    assert cost["total_cost"] == pytest.approx(c.usage.prompt_tokens * 1e-6 + 8e-6 + 0.0005)


def test_unary_unknown_model_has_no_cost_and_is_counted(gateway: Proc) -> None:
    before = metric(gateway, "gateway_unpriced_requests_total", provider="up")
    c = sdk(gateway).chat.completions.create(model="up/no-such-model-xyz", messages=MESSAGES)
    assert c.usage is not None and "cost" not in (c.usage.model_extra or {})
    assert metric(gateway, "gateway_unpriced_requests_total", provider="up") == before + 1


def test_in_process_mock_prices_by_model_name(gateway: Proc) -> None:
    c = sdk(gateway).chat.completions.create(model="mock/gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert c.usage is not None
    assert (c.usage.model_extra or {})["cost"]["output_tokens_cost"] == pytest.approx(5 * GPT4O_MINI[1])


def test_stream_without_client_usage_ends_with_usage_and_extra_fields(gateway: Proc, received: Any) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(model="priced/gpt-4o-mini", messages=MESSAGES, max_tokens=6, stream=True)
    )
    # The gateway asked the upstream for usage...
    assert json.loads(received()[0]["body"])["stream_options"] == {"include_usage": True}
    # ...and the client, which did not, gets it on the finish chunk, not in a chunk of its own.
    assert all(ch.choices for ch in chunks) and all(ch.usage is None for ch in chunks[:-1])
    assert len(chunks) == 1 + 6 + 1
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 6
    assert (usage.model_extra or {})["cost"]["output_tokens_cost"] == pytest.approx(6 * GPT4O_MINI[1])
    last = extra(chunks[-1])
    assert chunks[-1].choices[0].finish_reason == "length"
    assert last["chunk_index"] == len(chunks) - 1
    assert last["provider"] == "priced" and last["request_type"] == "chat_completion_stream"
    assert last["latency"] > 0
    assert all("extra_fields" not in (ch.model_extra or {}) for ch in chunks[:-1])


def test_stream_with_client_usage_has_cost_in_usage_chunk(gateway: Proc) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="priced/gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None and final.usage.completion_tokens == 6
    cost = (final.usage.model_extra or {})["cost"]
    assert cost["output_tokens_cost"] == pytest.approx(6 * GPT4O_MINI[1])
    assert extra(final)["chunk_index"] == len(chunks) - 1
    assert "extra_fields" not in (chunks[-2].model_extra or {})


def test_stream_counted_when_upstream_reports_none(gateway: Proc) -> None:
    body = {"mock": {"usage": False, "tokens": 40}}
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="counting/gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=body,
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    tok = Tokenizers().for_model("gpt-4o")
    final = chunks[-1]
    assert final.usage is not None
    assert final.usage.completion_tokens == tok.count(text)
    assert final.usage.prompt_tokens == count_chat_prompt(tok, json.dumps({"messages": MESSAGES}).encode())
    assert extra(final)["usage_estimated"] is True
    # "counting" is a local server with no pricing_provider: unpriced, so no cost at all.
    assert "cost" not in (final.usage.model_extra or {})


def test_stream_auto_mode_learns_that_upstream_reports_no_usage(gateway: Proc) -> None:
    def final(tokens: int) -> Any:
        chunks = list(
            sdk(gateway).chat.completions.create(
                model="learner/gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"mock": {"usage": False, "tokens": tokens}},
            )
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        return chunks[-1], text

    # First stream: the gateway trusted the upstream and did not decode chunks; usage is
    # estimated as one token per content chunk (plus the role and finish chunks).
    first, _ = final(30)
    assert first.usage is not None and first.usage.completion_tokens == 30 + 2
    assert extra(first)["usage_estimated"] is True
    # Learned: from now on this provider's streams are counted with the tokenizer.
    # 60 mock words are 63 o200k tokens, where the chunk estimate would say 62.
    second, text = final(60)
    assert second.usage is not None
    assert second.usage.completion_tokens == Tokenizers().for_model("gpt-4o").count(text) == 63


def test_unary_counted_when_upstream_reports_none(gateway: Proc) -> None:
    c = sdk(gateway).chat.completions.create(
        model="counting/gpt-4o", messages=MESSAGES, extra_body={"mock": {"usage": False, "tokens": 12}}
    )
    tok = Tokenizers().for_model("gpt-4o")
    assert c.usage is not None
    assert c.usage.completion_tokens == tok.count(c.choices[0].message.content or "")
    assert extra(c)["usage_estimated"] is True


def stats(upstream: Proc) -> dict[str, int]:
    data: dict[str, int] = httpx.get(upstream.url + "/mock/stats").json()
    return data


def wait_for(cond: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_client_disconnect_closes_upstream_and_is_charged(gateway: Proc, upstream: Proc) -> None:
    before = stats(upstream)
    gone = metric(gateway, "gateway_streams_total", provider="up", outcome="client_gone")
    out_tokens = metric(gateway, "gateway_tokens_total", provider="up", direction="output")
    body = json.dumps(
        {"model": "up/gpt-x", "stream": True, "messages": MESSAGES, "mock": {"tokens": 500, "itl_ms": 20}}
    )
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", content=body, timeout=10) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
    assert any(g.startswith("data: ") for g in got)
    # The upstream sees its client (the gateway) go away well before the 10 s stream ends.
    assert wait_for(lambda: stats(upstream)["streams_client_gone"] == before["streams_client_gone"] + 1)
    assert stats(upstream)["streams_active"] == 0
    assert wait_for(lambda: metric(gateway, "gateway_streams_total", provider="up", outcome="client_gone") == gone + 1)
    charged = metric(gateway, "gateway_tokens_total", provider="up", direction="output") - out_tokens
    assert 1 <= charged < 500  # what passed, not the whole planned answer


@pytest.mark.parametrize(
    ("mock", "what"), [({"end_after": 4}, "completion marker"), ({"garbage_after": 4}, "not server-sent events")]
)
def test_stream_upstream_failure_mid_way_gives_error_frame(gateway: Proc, mock: dict[str, int], what: str) -> None:
    body = json.dumps({"model": "up/gpt-x", "stream": True, "messages": MESSAGES, "mock": {"tokens": 10, **mock}})
    r = httpx.post(gateway.url + "/v1/chat/completions", content=body, timeout=10)
    frames = [f for f in r.text.split("\n\n") if f]
    assert r.status_code == 200
    assert "[DONE]" not in r.text and "<html>" not in r.text
    err = json.loads(frames[-1].removeprefix("data: "))["error"]
    assert what in err["message"] and err["code"] == "upstream_bad_response"
    assert len(frames) == 5  # the four good frames, then the error


def test_header_timeouts(gateway: Proc) -> None:
    body = {"model": "up/gpt-x", "messages": MESSAGES, "mock": {"ttft_ms": 3000}}
    t = time.monotonic()
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"x-bf-request-timeout": "0.3"})
    assert r.status_code == 504 and time.monotonic() - t < 2
    r = httpx.post(
        gateway.url + "/v1/chat/completions", json={**body, "stream": True}, headers={"x-bf-stream-idle-timeout": "0.3"}
    )
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    # An idle gap after the first byte: an in-band error, the stream ends.
    slow = {**body, "stream": True, "mock": {"tokens": 5, "itl_ms": 1500}}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=slow, headers={"x-bf-stream-idle-timeout": "0.3"})
    assert r.status_code == 200 and '"upstream_timeout"' in r.text and "[DONE]" not in r.text
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"x-bf-request-timeout": "soon"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "x-bf-request-timeout"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_backpressure_slow_client_slows_upstream(gateway: Proc, upstream: Proc) -> None:
    tokens = 300_000  # ~60 MB of SSE if nothing held it back
    before = stats(upstream)
    rss0 = rss_kb(gateway.p.pid)
    body = json.dumps({"model": "up/gpt-x", "stream": True, "messages": MESSAGES, "mock": {"tokens": tokens}})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(head)
        s.recv(1024)  # the headers and first bytes, then stop reading
        time.sleep(1.5)
        sent = stats(upstream)["frames_sent"] - before["frames_sent"]
        grown_mb = (rss_kb(gateway.p.pid) - rss0) / 1024
        assert sent < tokens // 2, sent  # the upstream was held back
        assert stats(upstream)["streams_active"] == before["streams_active"] + 1
        assert grown_mb < 40, grown_mb
        # Then read it all: nothing was lost.
        s.settimeout(30)
        tail = b""
        while not tail.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
            data = s.recv(1 << 20)
            if not data:
                break
            tail = (tail + data)[-64:]
    assert tail.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
