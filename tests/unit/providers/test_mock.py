"""gateway.providers.mock: the pure planner, the SSE frames and their pacing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec
import pytest

from gateway.config import MockConfig
from gateway.providers import Endpoint, mock

NO_FAULT = (0.5, 0.5, 0.5)


def make_plan(
    body: dict[str, Any],
    *,
    endpoint: Endpoint = "chat",
    config: MockConfig | None = None,
    rolls: tuple[float, float, float] = NO_FAULT,
    created: int = 1_700_000_000,
    serial: int = 1,
) -> mock.Plan:
    req = mock.decode(json.dumps(body).encode())
    return mock.plan(req, endpoint=endpoint, config=config or MockConfig(), rolls=rolls, created=created, serial=serial)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "mock-chat", "messages": [{"role": "user", "content": "hello there"}], **fields}


def text(**fields: Any) -> dict[str, Any]:
    return {"model": "mock-instruct", "prompt": "once upon a time", **fields}


def payloads(p: mock.Plan) -> list[dict[str, Any]]:
    """The JSON of every frame but [DONE], checking the SSE framing on the way."""
    out = list(mock.frames(p))
    assert out[-1] == b"data: [DONE]\n\n"
    parsed = []
    for frame in out[:-1]:
        assert frame.startswith(b"data: ")
        assert frame.endswith(b"\n\n")
        assert b"\n" not in frame[len(b"data: ") : -2]
        parsed.append(json.loads(frame[len(b"data: ") : -2]))
    return parsed


async def collect(p: mock.Plan) -> list[bytes]:
    return [frame async for frame in mock.paced(p)]


# --- plan -----------------------------------------------------------------------------


def test_plan_is_deterministic_given_rolls() -> None:
    cfg = MockConfig(tokens=7, error_rate=0.3, reset_rate=0.3)
    for rolls in [(0.1, 0.9, 0.2), (0.5, 0.5, 0.5), (0.95, 0.1, 0.7)]:
        a = make_plan(chat(stream=True), config=cfg, rolls=rolls, serial=3)
        b = make_plan(chat(stream=True), config=cfg, rolls=rolls, serial=3)
        assert a == b
        assert list(mock.frames(a)) == list(mock.frames(b))
        assert mock.completion_body(a) == mock.completion_body(b)


def test_plan_defaults_from_config() -> None:
    p = make_plan(chat(), config=MockConfig(tokens=5, ttft_ms=20, itl_ms=4), created=123, serial=42)
    assert p.tokens == 5
    assert p.finish_reason == "stop"
    assert p.model == "mock-chat"
    assert p.created == 123
    assert p.id == "chatcmpl-mock000000000042"
    assert p.ttft_s == pytest.approx(0.020)
    assert p.itl_s == pytest.approx(0.004)
    assert p.fail_status is None
    assert p.reset_after is None
    assert p.stream is False
    assert p.include_usage is False


def test_plan_text_endpoint_id_prefix() -> None:
    assert make_plan(text(), endpoint="text", serial=9).id == "cmpl-mock000000000009"


def test_plan_max_tokens_caps_and_sets_length() -> None:
    p = make_plan(chat(max_tokens=3), config=MockConfig(tokens=10))
    assert p.tokens == 3
    assert p.finish_reason == "length"


def test_plan_max_completion_tokens_caps_and_sets_length() -> None:
    p = make_plan(chat(max_completion_tokens=4), config=MockConfig(tokens=10))
    assert p.tokens == 4
    assert p.finish_reason == "length"


def test_plan_max_completion_tokens_wins_over_max_tokens() -> None:
    p = make_plan(chat(max_tokens=2, max_completion_tokens=6), config=MockConfig(tokens=10))
    assert p.tokens == 6


def test_plan_cap_above_wanted_keeps_stop() -> None:
    for cap in (10, 50):
        p = make_plan(chat(max_tokens=cap), config=MockConfig(tokens=10))
        assert p.tokens == 10
        assert p.finish_reason == "stop"


def test_plan_cap_applies_to_override_tokens() -> None:
    p = make_plan(chat(max_tokens=5, mock={"tokens": 8}), config=MockConfig(tokens=2))
    assert p.tokens == 5
    assert p.finish_reason == "length"


def test_plan_overrides_win_over_config() -> None:
    cfg = MockConfig(tokens=16, ttft_ms=100, itl_ms=50, error_rate=1.0, error_status=(500,))
    p = make_plan(
        chat(stream=True, mock={"tokens": 3, "ttft_ms": 7, "itl_ms": 2, "fail_status": 418, "reset_after": 2}),
        config=cfg,
        rolls=(0.0, 0.0, 0.0),
    )
    assert p.tokens == 3
    assert p.ttft_s == pytest.approx(0.007)
    assert p.itl_s == pytest.approx(0.002)
    assert p.fail_status == 418
    assert p.reset_after == 2


def test_plan_null_override_disables_configured_faults() -> None:
    cfg = MockConfig(error_rate=1.0, reset_rate=1.0)
    p = make_plan(chat(stream=True, mock={"fail_status": None, "reset_after": None}), config=cfg, rolls=(0.0, 0.0, 0.0))
    assert p.fail_status is None
    assert p.reset_after is None


def test_plan_error_rate_picks_status_from_rolls() -> None:
    cfg = MockConfig(error_rate=0.25, error_status=(429, 500, 503))
    assert make_plan(chat(), config=cfg, rolls=(0.1, 0.0, 0.5)).fail_status == 429
    assert make_plan(chat(), config=cfg, rolls=(0.1, 0.5, 0.5)).fail_status == 500
    assert make_plan(chat(), config=cfg, rolls=(0.1, 0.99, 0.5)).fail_status == 503
    assert make_plan(chat(), config=cfg, rolls=(0.25, 0.0, 0.5)).fail_status is None
    assert make_plan(chat(), config=cfg, rolls=(0.9, 0.0, 0.5)).fail_status is None


def test_plan_error_rate_zero_never_fails() -> None:
    cfg = MockConfig(error_rate=0.0)
    assert make_plan(chat(), config=cfg, rolls=(0.0, 0.0, 0.0)).fail_status is None


def test_plan_reset_rate_only_for_streams() -> None:
    cfg = MockConfig(tokens=10, reset_rate=0.5)
    streamed = make_plan(chat(stream=True), config=cfg, rolls=(0.9, 0.0, 0.35))
    assert streamed.reset_after == 3
    unary = make_plan(chat(), config=cfg, rolls=(0.9, 0.0, 0.35))
    assert unary.reset_after is None
    not_rolled = make_plan(chat(stream=True), config=cfg, rolls=(0.1, 0.0, 0.35))
    assert not_rolled.reset_after is None


def test_plan_reset_override_ignored_for_unary() -> None:
    assert make_plan(chat(mock={"reset_after": 1})).reset_after is None


def test_plan_reset_rate_zero_never_resets() -> None:
    cfg = MockConfig(reset_rate=0.0)
    assert make_plan(chat(stream=True), config=cfg, rolls=(0.999999, 0.5, 0.5)).reset_after is None


def test_plan_include_usage() -> None:
    assert make_plan(chat(stream=True, stream_options={"include_usage": True})).include_usage is True
    assert make_plan(chat(stream=True, stream_options={"include_usage": False})).include_usage is False
    assert make_plan(chat(stream=True, stream_options=None)).include_usage is False


def test_plan_prompt_tokens_grow_with_prompt() -> None:
    small = make_plan(chat())
    big = make_plan({"model": "m", "messages": [{"role": "user", "content": "x" * 4000}]})
    assert small.prompt_tokens >= 1
    assert big.prompt_tokens >= 1000
    assert big.prompt_tokens > small.prompt_tokens
    assert make_plan(text(prompt="y" * 400), endpoint="text").prompt_tokens >= 100


def test_decode_rejects_bad_override() -> None:
    with pytest.raises(msgspec.ValidationError) as exc:
        mock.decode(b'{"model": "m", "mock": {"tokens": -1}}')
    assert "tokens" in str(exc.value)


# --- completion_body ------------------------------------------------------------------


def test_completion_body_chat_shape_and_usage() -> None:
    p = make_plan(chat(), config=MockConfig(tokens=6), serial=5, created=99)
    data = json.loads(mock.completion_body(p))
    assert data["id"] == "chatcmpl-mock000000000005"
    assert data["object"] == "chat.completion"
    assert data["created"] == 99
    assert data["model"] == "mock-chat"
    (choice,) = data["choices"]
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split(" ")) == 6
    assert choice["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["completion_tokens"] == 6
    assert usage["prompt_tokens"] == p.prompt_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_completion_body_text_shape() -> None:
    p = make_plan(text(max_tokens=2), endpoint="text", config=MockConfig(tokens=9))
    data = json.loads(mock.completion_body(p))
    assert data["object"] == "text_completion"
    (choice,) = data["choices"]
    assert "message" not in choice
    assert len(choice["text"].split(" ")) == 2
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 2


def test_completion_body_zero_tokens() -> None:
    data = json.loads(mock.completion_body(make_plan(chat(mock={"tokens": 0}))))
    assert data["choices"][0]["message"]["content"] == ""
    assert data["usage"]["completion_tokens"] == 0


def test_completion_body_seed_changes_text() -> None:
    a = json.loads(mock.completion_body(make_plan(chat(seed=0))))
    b = json.loads(mock.completion_body(make_plan(chat(seed=3))))
    assert a["choices"][0]["message"]["content"] != b["choices"][0]["message"]["content"]


def test_error_body_is_openai_error() -> None:
    for status, kind in [(429, "rate_limit_error"), (500, "server_error"), (400, "invalid_request_error")]:
        err = json.loads(mock.error_body(status))["error"]
        assert err["type"] == kind
        assert str(status) in err["message"]


# --- frames ---------------------------------------------------------------------------


def test_frames_chat_content_equals_unary_content() -> None:
    cfg = MockConfig(tokens=12)
    streamed = make_plan(chat(stream=True, seed=5), config=cfg)
    unary = make_plan(chat(seed=5), config=cfg)
    chunks = payloads(streamed)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    expected = json.loads(mock.completion_body(unary))["choices"][0]["message"]["content"]
    assert content == expected
    assert len(expected.split(" ")) == 12


def test_frames_chat_structure() -> None:
    p = make_plan(chat(stream=True, max_tokens=3), config=MockConfig(tokens=10), serial=2)
    chunks = payloads(p)
    assert len(chunks) == 1 + 3 + 1  # role, content x3, finish
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert c["id"] == "chatcmpl-mock000000000002"
        assert c["model"] == "mock-chat"
        assert "usage" not in c
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "length"]


def test_frames_usage_chunk_only_with_include_usage() -> None:
    cfg = MockConfig(tokens=4)
    without = payloads(make_plan(chat(stream=True), config=cfg))
    assert all("usage" not in c for c in without)
    with_usage = payloads(make_plan(chat(stream=True, stream_options={"include_usage": True}), config=cfg))
    assert len(with_usage) == len(without) + 1
    last = with_usage[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 4
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 4
    assert all("usage" not in c for c in with_usage[:-1])


def test_frames_text_endpoint_carry_text() -> None:
    cfg = MockConfig(tokens=5)
    p = make_plan(text(stream=True), endpoint="text", config=cfg)
    chunks = payloads(p)
    assert len(chunks) == 5 + 1
    for c in chunks:
        assert c["object"] == "text_completion"
        assert "delta" not in c["choices"][0]
        assert "text" in c["choices"][0]
    streamed = "".join(c["choices"][0]["text"] for c in chunks)
    unary = json.loads(mock.completion_body(make_plan(text(), endpoint="text", config=cfg)))
    assert streamed == unary["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_frames_zero_tokens() -> None:
    chunks = payloads(make_plan(chat(stream=True, mock={"tokens": 0})))
    assert len(chunks) == 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("model", ["gpt-100%", "a%sb", "a%%b"])
def test_frames_model_with_percent_sign(model: str) -> None:
    chunks = payloads(make_plan({"model": model, "messages": [], "stream": True}))
    assert all(c["model"] == model for c in chunks)


def test_frames_model_with_quotes_is_escaped() -> None:
    model = 'we"ird\\model'
    chunks = payloads(make_plan({"model": model, "messages": [], "stream": True}))
    assert all(c["model"] == model for c in chunks)
    assert json.loads(mock.completion_body(make_plan({"model": model})))["model"] == model


# --- unary_delay_s / paced ------------------------------------------------------------


def test_unary_delay_s() -> None:
    p = make_plan(chat(), config=MockConfig(tokens=5, ttft_ms=100, itl_ms=10))
    assert mock.unary_delay_s(p) == pytest.approx(0.1 + 4 * 0.01)
    one = make_plan(chat(), config=MockConfig(tokens=1, ttft_ms=100, itl_ms=10))
    assert mock.unary_delay_s(one) == pytest.approx(0.1)
    none = make_plan(chat(), config=MockConfig(tokens=0, ttft_ms=30, itl_ms=10))
    assert mock.unary_delay_s(none) == pytest.approx(0.03)
    assert mock.unary_delay_s(make_plan(chat())) == 0


def test_paced_yields_all_frames_without_reset() -> None:
    p = make_plan(chat(stream=True, stream_options={"include_usage": True}), config=MockConfig(tokens=4))
    assert asyncio.run(collect(p)) == list(mock.frames(p))


@pytest.mark.parametrize("reset_after", [0, 1, 3])
def test_paced_raises_after_exactly_reset_after_frames(reset_after: int) -> None:
    p = make_plan(chat(stream=True, mock={"tokens": 5, "reset_after": reset_after}))
    got: list[bytes] = []

    async def run() -> None:
        async for frame in mock.paced(p):
            got.append(frame)

    with pytest.raises(mock.MockReset):
        asyncio.run(run())
    assert got == list(mock.frames(p))[:reset_after]


def test_paced_reset_from_rolls_happens_mid_stream() -> None:
    p = make_plan(chat(stream=True), config=MockConfig(tokens=10, reset_rate=1.0), rolls=(0.0, 0.0, 0.5))
    assert p.reset_after == 5
    got: list[bytes] = []

    async def run() -> None:
        async for frame in mock.paced(p):
            got.append(frame)

    with pytest.raises(mock.MockReset):
        asyncio.run(run())
    assert len(got) == 5
    assert b"[DONE]" not in b"".join(got)


def test_paced_waits_ttft_and_itl() -> None:
    p = make_plan(chat(stream=True, mock={"tokens": 3, "ttft_ms": 60, "itl_ms": 20}))
    start = time.monotonic()
    frames = asyncio.run(collect(p))
    elapsed = time.monotonic() - start
    assert frames == list(mock.frames(p))
    # ttft before the first frame, itl before each of the 4 later non-[DONE] frames.
    assert elapsed >= 0.06 + 4 * 0.02 - 0.01


# --- reasoning ------------------------------------------------------------------------


@pytest.mark.parametrize(("effort", "words"), [("minimal", 4), ("low", 8), ("medium", 16), ("high", 32), ("none", 0)])
def test_reasoning_effort_makes_reasoning_of_its_size(effort: str, words: int) -> None:
    p = make_plan(chat(reasoning_effort=effort), config=MockConfig(tokens=6))
    data = json.loads(mock.completion_body(p))
    message, usage = data["choices"][0]["message"], data["usage"]
    assert len(message["content"].split(" ")) == 6
    if words:
        assert len(message["reasoning"].split(" ")) == words and message["reasoning"] != message["content"]
        assert message["reasoning_signature"] == mock.REASONING_SIGNATURE
        assert usage["completion_tokens"] == 6 + words
        assert usage["completion_tokens_details"] == {"reasoning_tokens": words}
        assert usage["total_tokens"] == usage["prompt_tokens"] + 6 + words
    else:
        assert "reasoning" not in message and "completion_tokens_details" not in usage
    again = json.loads(mock.completion_body(make_plan(chat(reasoning_effort=effort), config=MockConfig(tokens=6))))
    assert again["choices"] == data["choices"]  # deterministic


def test_reasoning_absent_without_reasoning_effort() -> None:
    for body in (chat(), chat(stream=True, stream_options={"include_usage": True})):
        p = make_plan(body)
        assert p.reasoning_tokens == 0
        assert b"reasoning" not in mock.completion_body(p) + b"".join(mock.frames(p))
    # Text completions have no reasoning, whatever they send.
    assert make_plan(text(reasoning_effort="high"), endpoint="text").reasoning_tokens == 0


def test_reasoning_streams_first_and_equals_unary() -> None:
    cfg = MockConfig(tokens=5)
    body = chat(reasoning_effort="low", seed=2)
    chunks = payloads(make_plan({**body, "stream": True, "stream_options": {"include_usage": True}}, config=cfg))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert all("reasoning" in d and "content" not in d for d in deltas[1:9])
    assert all("content" in d for d in deltas[9:14]) and deltas[14] == {}
    assert [d.get("reasoning_signature") for d in deltas[1:9]] == [None] * 7 + [mock.REASONING_SIGNATURE]
    unary = json.loads(mock.completion_body(make_plan(body, config=cfg)))["choices"][0]["message"]
    assert "".join(d["reasoning"] for d in deltas[1:9]) == unary["reasoning"]
    assert "".join(d.get("content", "") for d in deltas) == unary["content"]
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 8}


def test_reasoning_spends_the_token_cap_first() -> None:
    p = make_plan(chat(reasoning_effort="medium", max_completion_tokens=20), config=MockConfig(tokens=10))
    assert (p.reasoning_tokens, p.tokens, p.finish_reason) == (16, 4, "length")
    short = make_plan(chat(reasoning_effort="medium", max_tokens=5), config=MockConfig(tokens=10))
    assert (short.reasoning_tokens, short.tokens, short.finish_reason) == (5, 0, "length")
    roomy = make_plan(chat(reasoning_effort="low", max_tokens=100), config=MockConfig(tokens=10))
    assert (roomy.reasoning_tokens, roomy.tokens, roomy.finish_reason) == (8, 10, "stop")


def test_reasoning_before_a_tool_call() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = chat(reasoning_effort="minimal", tools=[tool])
    message = json.loads(mock.completion_body(make_plan(body)))["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "f" and len(message["reasoning"].split(" ")) == 4
    deltas = [c["choices"][0]["delta"] for c in payloads(make_plan({**body, "stream": True}))]
    assert [("reasoning" in d, "tool_calls" in d) for d in deltas[:5]] == [(True, False)] * 4 + [(False, True)]


def test_reasoning_is_paced_as_tokens() -> None:
    p = make_plan(chat(reasoning_effort="minimal"), config=MockConfig(tokens=5, ttft_ms=100, itl_ms=10))
    assert mock.unary_delay_s(p) == pytest.approx(0.1 + (4 + 5 - 1) * 0.01)
    streamed = make_plan(chat(reasoning_effort="low", stream=True), config=MockConfig(tokens=3))
    assert asyncio.run(collect(streamed)) == list(mock.frames(streamed))
