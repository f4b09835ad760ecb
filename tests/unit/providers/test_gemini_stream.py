"""gateway.providers.gemini: the two stream translators, Gemini SSE -> OpenAI chunks
(ChatStream) and OpenAI chunks -> Gemini SSE (GenerateStream)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import UpstreamProtocolError
from gateway.providers import gemini
from gateway.relay.sse import Framer, split

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def frames_of(name: str) -> bytes:
    """A recorded stream as the relay hands it over: through the Framer (CRLF -> LF)."""
    return Framer().feed((FIXTURES / name).read_bytes())


def run_chat(region: bytes, *, one_by_one: bool) -> bytes:
    s = gemini.ChatStream(model="gemini-flash", created=1700)
    pieces = split(region) if one_by_one else [region]
    return b"".join(s.feed(p) for p in pieces) + s.close()


def payloads(out: bytes) -> list[Any]:
    return [json.loads(f[6:]) if f != b"data: [DONE]\n\n" else "[DONE]" for f in split(out)]


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_call.sse", "stream_cut.sse"])
def test_chat_stream_whole_equals_frame_by_frame(name: str) -> None:
    region = frames_of(name)
    assert run_chat(region, one_by_one=False) == run_chat(region, one_by_one=True)


def test_chat_stream_text_fixture() -> None:
    out = run_chat(frames_of("stream_text.sse"), one_by_one=False)
    frames = split(out)
    chunks = payloads(out)
    assert all(f.startswith(b"data: ") for f in frames)
    assert chunks[-1] == "[DONE]"
    assert {c["id"] for c in chunks[:-1]} == {"3YBdaOGtM4SCnsEP5P_OqAs"}
    assert {(c["object"], c["created"], c["model"]) for c in chunks[:-1]} == {
        ("chat.completion.chunk", 1700, "gemini-flash")
    }
    deltas = [c["choices"][0]["delta"] for c in chunks[:-3]]
    assert deltas == [
        {"role": "assistant", "reasoning": "The user asks for a haiku."},
        {"content": "Autumn moonlight—"},
        {"content": "\na worm digs silently\ninto the chestnut."},
    ]
    # Ordinary chunks end the way the relay's fast path expects, with no usage key.
    for f in frames[:3]:
        assert f.endswith(b'"finish_reason":null}]}\n\n') and b'"usage"' not in f
    assert chunks[-3]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 48,
        "total_tokens": 57,
        "completion_tokens_details": {"reasoning_tokens": 31},
    }


def test_chat_stream_tool_calls_carry_ids_and_signature() -> None:
    chunks = payloads(run_chat(frames_of("stream_tool_call.sse"), one_by_one=False))
    deltas = [c["choices"][0]["delta"] for c in chunks[:4]]
    first, second = deltas[0]["tool_calls"][0], deltas[2]["tool_calls"][0]
    assert deltas[0]["role"] == "assistant"
    assert first["id"].endswith("|ts:CiQBVKhc7oDHr1DZfbFL0kCjRmmmdFIS8HgLDrHb5dgcM1tzAx8=")
    assert (first["index"], first["type"], first["function"]) == (
        0,
        "function",
        {"name": "get_weather", "arguments": ""},
    )
    assert deltas[1] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Paris"}'}}]}
    assert (second["index"], second["function"]["name"]) == (1, "get_weather")
    assert "|ts:" not in second["id"] and second["id"] != first["id"].split("|")[0]
    assert deltas[3] == {"tool_calls": [{"index": 1, "function": {"arguments": '{"city":"London"}'}}]}
    assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[5]["usage"]["completion_tokens"] == 90


def test_chat_stream_done_and_close() -> None:
    s = gemini.ChatStream(model="m", created=1)
    region = frames_of("stream_text.sse")
    *body, last = split(region)
    s.feed(b"".join(body))
    assert s.done is False
    s.feed(last)
    assert s.done is True
    tail = s.close()
    assert tail.endswith(b"data: [DONE]\n\n") and b'"usage"' in tail
    assert s.close() == b""  # once only


def test_chat_stream_cut_stream_closes_empty() -> None:
    s = gemini.ChatStream(model="m", created=1)
    out = s.feed(frames_of("stream_cut.sse"))
    assert b"Once upon" in out
    assert s.done is False
    assert s.close() == b""


def test_chat_stream_blocked_prompt() -> None:
    s = gemini.ChatStream(model="m", created=1)
    frame = (
        b'data: {"promptFeedback": {"blockReason": "SAFETY"},'
        b'"usageMetadata": {"promptTokenCount": 4,"totalTokenCount": 4},"responseId": "b1"}\n\n'
    )
    chunks = payloads(s.feed(frame) + s.close())
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert chunks[1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]
    assert chunks[2]["usage"] == {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}
    assert chunks[3] == "[DONE]"


def test_chat_stream_several_candidates() -> None:
    frame = {
        "candidates": [
            {"content": {"parts": [{"text": "A"}], "role": "model"}, "index": 0},
            {"content": {"parts": [{"text": "B"}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 1},
        ],
        "responseId": "n2",
    }
    s = gemini.ChatStream(model="m", created=1)
    chunks = payloads(s.feed(b"data: " + json.dumps(frame).encode() + b"\n\n") + s.close())
    choices = [c["choices"][0] for c in chunks[:-1]]
    assert choices == [
        {"index": 0, "delta": {"role": "assistant", "content": "A"}, "finish_reason": None},
        {"index": 1, "delta": {"role": "assistant", "content": "B"}, "finish_reason": None},
        {"index": 1, "delta": {}, "finish_reason": "length"},
        {"index": 0, "delta": {}, "finish_reason": "stop"},
    ]


def test_chat_stream_error_frame_raises_stream_error() -> None:
    s = gemini.ChatStream(model="m", created=1)
    region = frames_of("stream_error.sse")
    first, error = split(region)
    assert b"Once upon" in s.feed(first)
    with pytest.raises(gemini.StreamError) as e:
        s.feed(error)
    assert isinstance(e.value, UpstreamProtocolError)
    assert (e.value.gemini_code, e.value.gemini_status) == (503, "UNAVAILABLE")
    assert "overloaded" in e.value.message and e.value.status == 502


@pytest.mark.parametrize("frame", [b"data: {not json\n\n", b'data: {"candidates": {"a": 1}}\n\n', b"data: [1]\n\n"])
def test_chat_stream_malformed_frame(frame: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as e:
        gemini.ChatStream(model="m", created=1).feed(frame)
    assert not isinstance(e.value, gemini.StreamError)
    assert "gemini" in e.value.message


def test_chat_stream_ignores_comments_and_logprobs_go_on_the_chunk() -> None:
    frame = {
        "candidates": [
            {
                "content": {"parts": [{"text": "Hi"}], "role": "model"},
                "logprobsResult": {"chosenCandidates": [{"token": "Hi", "logProbability": -0.5}]},
                "index": 0,
            }
        ],
        "responseId": "l1",
    }
    out = gemini.ChatStream(model="m", created=1).feed(b": keepalive\n\ndata: " + json.dumps(frame).encode() + b"\n\n")
    [chunk] = payloads(out)
    assert chunk["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "Hi"},
            "logprobs": {"content": [{"token": "Hi", "logprob": -0.5, "top_logprobs": []}]},
            "finish_reason": None,
        }
    ]


# GenerateStream: OpenAI chunks -> Gemini frames.


def run_generate(region: bytes, *, one_by_one: bool) -> bytes:
    s = gemini.GenerateStream()
    pieces = split(region) if one_by_one else [region]
    return b"".join(s.feed(p) for p in pieces)


def gemini_frames(out: bytes) -> list[Any]:
    assert out.endswith(b"\r\n\r\n")
    raw = out.split(b"\r\n\r\n")[:-1]
    assert all(f.startswith(b"data: ") for f in raw)
    return [json.loads(f[6:]) for f in raw]


def test_generate_stream_whole_equals_frame_by_frame() -> None:
    region = (FIXTURES / "openai_stream.sse").read_bytes()
    assert run_generate(region, one_by_one=False) == run_generate(region, one_by_one=True)


def test_generate_stream_fixture() -> None:
    frames = gemini_frames(run_generate((FIXTURES / "openai_stream.sse").read_bytes(), one_by_one=False))
    assert [f["candidates"][0]["content"]["parts"] for f in frames[:2]] == [[{"text": "Checking"}], [{"text": " now."}]]
    assert {(f["modelVersion"], f["responseId"]) for f in frames} == {("gpt-4.1-2025-04-14", "chatcmpl-CBxr1")}
    last = frames[-1]
    assert len(frames) == 3
    assert last["candidates"] == [
        {
            "content": {
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_3vQ1fJb2"}}],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    assert last["usageMetadata"] == {"promptTokenCount": 60, "candidatesTokenCount": 18, "totalTokenCount": 78}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_generate_stream_reasoning_signature_and_done_without_usage() -> None:
    s = gemini.GenerateStream()
    out = s.feed(chunk({"role": "assistant", "reasoning": "Hmm."}))
    call = {"index": 0, "id": "call_7|ts:c2ln", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    out += s.feed(chunk({"tool_calls": [call]}))
    out += s.feed(chunk({}, "tool_calls"))
    assert len(gemini_frames(out)) == 1  # the finish is held for the usage
    out += s.feed(b"data: [DONE]\n\n")
    frames = gemini_frames(out)
    assert frames[0]["candidates"][0]["content"]["parts"] == [{"text": "Hmm.", "thought": True}]
    assert frames[1]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {}, "id": "call_7"}, "thoughtSignature": "c2ln"}
    ]
    assert "usageMetadata" not in frames[1]


def test_generate_stream_usage_on_the_finish_chunk() -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    out = gemini.GenerateStream().feed(chunk({"content": "Hi"}, "stop", usage=usage))
    [frame] = gemini_frames(out)
    assert frame["candidates"][0]["finishReason"] == "STOP"
    assert frame["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 2,
        "totalTokenCount": 8,
        "thoughtsTokenCount": 1,
    }


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        ({"message": "slow down", "type": "rate_limit_error", "code": None}, 429, "RESOURCE_EXHAUSTED"),
        ({"message": "timed out", "type": "upstream_error", "code": "upstream_timeout"}, 504, "DEADLINE_EXCEEDED"),
        ({"message": "boom", "type": "server_error"}, 500, "INTERNAL"),
    ],
)
def test_generate_stream_error_frame(error: dict[str, Any], code: int, status: str) -> None:
    s = gemini.GenerateStream()
    out = s.feed(chunk({"content": "Hi"}) + chunk({}, "stop"))
    out += s.feed(b"data: " + json.dumps({"error": error}).encode() + b"\n\n")
    frames = gemini_frames(out)
    assert frames[-1] == {"error": {"code": code, "message": error["message"], "status": status}}
    assert frames[-2]["candidates"][0]["finishReason"] == "STOP"  # what was held goes out first


def test_generate_stream_malformed_chunk() -> None:
    with pytest.raises(UpstreamProtocolError):
        gemini.GenerateStream().feed(b"data: {oops\n\n")


def test_generate_stream_bad_tool_arguments() -> None:
    s = gemini.GenerateStream()
    call = {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{trunc"}}
    s.feed(chunk({"tool_calls": [call]}))
    with pytest.raises(UpstreamProtocolError):
        s.feed(chunk({}, "tool_calls"))
