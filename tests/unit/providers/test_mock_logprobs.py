"""The fake LLM's log probabilities (``providers.mock_logprobs``): asked with
``logprobs``, deterministic, on the message and on each content chunk alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.config import MockConfig
from gateway.errors import InvalidRequest
from gateway.providers import mock
from tests.unit.providers.test_mock import chat, make_plan, payloads


def _unary(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(mock.completion_body(make_plan(body)))
    ChatCompletion.model_validate(out)
    return out


@pytest.mark.parametrize("top", [0, 1, 3, 20])
def test_mock_logprobs_one_entry_a_word_with_top_alternatives(top: int) -> None:
    out = _unary(chat(logprobs=True, top_logprobs=top, max_tokens=9))
    choice = out["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"] and len(entries) == 9
    for i, e in enumerate(entries):
        assert e["bytes"] == list(e["token"].encode()) and e["logprob"] == -0.125 * (1 + i % 7)
        tops = e["top_logprobs"]
        assert len(tops) == top and len({t["token"] for t in tops}) == top
        if top:
            assert tops[0] == {"token": e["token"], "logprob": e["logprob"], "bytes": e["bytes"]}
            assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)


def test_mock_logprobs_streamed_equal_unary() -> None:
    body = chat(logprobs=True, top_logprobs=2, max_tokens=5)
    unary = _unary(body)["choices"][0]["logprobs"]["content"]
    chunks = payloads(make_plan({**body, "stream": True}))
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    streamed = [e for c in chunks for ch in c["choices"] if ch["logprobs"] for e in ch["logprobs"]["content"]]
    assert streamed == unary
    assert all(len(ch["logprobs"]["content"]) == 1 for c in chunks for ch in c["choices"] if ch["logprobs"])


def test_mock_logprobs_of_structured_content_follow_its_fragments() -> None:
    fmt = {"type": "json_object"}
    out = _unary(chat(logprobs=True, response_format=fmt))["choices"][0]
    assert "".join(e["token"] for e in out["logprobs"]["content"]) == out["message"]["content"]


def test_mock_logprobs_absent_unless_asked_and_on_tool_calls() -> None:
    assert _unary(chat(max_tokens=3))["choices"][0]["logprobs"] is None
    assert _unary(chat(logprobs=False, top_logprobs=2, max_tokens=3))["choices"][0]["logprobs"] is None
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert _unary(chat(logprobs=True, tools=[tool]))["choices"][0]["logprobs"] is None
    assert all(
        ch["logprobs"] is None for c in payloads(make_plan(chat(max_tokens=3, stream=True))) for ch in c["choices"]
    )


def test_mock_logprobs_top_beyond_openai_bound_is_refused() -> None:
    planner = mock.Planner(MockConfig())
    with pytest.raises(InvalidRequest) as info:
        planner(json.dumps(chat(logprobs=True, top_logprobs=21)).encode(), endpoint="chat")
    assert info.value.param == "mock"
