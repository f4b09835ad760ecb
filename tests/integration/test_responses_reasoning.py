# ruff: noqa: F811  (the imported fixtures are the tests' parameters)
"""Reasoning through ``POST /v1/responses`` with the real ``openai`` SDK against a real
gateway: ``reasoning.effort`` reaches the fake LLM (in-process, and ``gateway mock``
behind an OpenAI-dialect, an Anthropic-dialect and a Gemini-dialect provider), whose reasoning comes
back as a reasoning item before the message, unary and streamed; a reasoning item sent
back reaches an Anthropic target as the assistant turn's signed thinking block, and an
OpenAI-compatible one not at all."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.providers.mock import REASONING_SIGNATURE, REASONING_WORDS
from tests.conftest import Proc

# The Responses tests' upstream (gateway mock, recording) and gateway: an OpenAI-dialect,
# an Anthropic, a Gemini provider on it, and the in-process mock.
from tests.integration.test_responses import _client, gw, up  # noqa: F401 (fixtures, named by the tests)

MODELS = ["up/gpt-x", "anthropic/claude-x", "gemini/gem-x", "mock/gpt-m"]
LOW = REASONING_WORDS["low"]


def _check(r: Any) -> str:
    """A completed Response of a reasoning item then the message; its reasoning text.
    Gemini signs no reasoning text (its thought signatures ride in tool call ids)."""
    assert r.status == "completed" and [o.type for o in r.output] == ["reasoning", "message"]
    rs = r.output[0]
    signature = None if r.model.startswith("gemini/") else REASONING_SIGNATURE
    assert rs.id.startswith("rs_") and rs.status == "completed" and rs.encrypted_content == signature
    (summary,) = rs.summary
    assert summary.type == "summary_text" and len(summary.text.split(" ")) == LOW
    assert r.output_text and summary.text != r.output_text
    assert r.usage is not None and r.usage.output_tokens_details.reasoning_tokens == LOW
    assert r.usage.output_tokens == LOW + len(r.output_text.split(" "))
    return str(summary.text)


@pytest.mark.parametrize("model", MODELS)
def test_responses_reasoning_effort_answers_a_reasoning_item(gw: Proc, model: str) -> None:
    with _client(gw) as client:
        r = client.responses.create(model=model, reasoning={"effort": "low"}, input="Think, then answer.")
        plain = client.responses.create(model=model, input="Think, then answer.")
    _check(r)
    assert r.reasoning is not None and r.reasoning.effort == "low"
    assert [o.type for o in plain.output] == ["message"] and plain.usage is not None
    assert plain.usage.output_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("model", MODELS)
def test_responses_reasoning_streams_before_the_message(gw: Proc, model: str) -> None:
    with _client(gw) as client:
        whole = client.responses.create(model=model, reasoning={"effort": "low"}, input="Think, then answer.")
        with client.responses.stream(model=model, reasoning={"effort": "low"}, input="Think, then answer.") as s:
            events = list(s)
            final = s.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
    ]
    assert kinds[4 : 4 + LOW] == ["response.reasoning_summary_text.delta"] * LOW
    assert kinds[4 + LOW : 9 + LOW] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    rs_events = events[2 : 7 + LOW]
    assert {e.output_index for e in rs_events} == {0}  # type: ignore[union-attr]
    assert events[7 + LOW].output_index == 1  # type: ignore[union-attr]
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert deltas == _check(final) == _check(whole)
    assert final.output_text == whole.output_text
    assert final.output[0].model_dump(exclude={"id"}) == whole.output[0].model_dump(exclude={"id"})


@pytest.mark.parametrize("model", ["up/gpt-x", "anthropic/claude-x"])
def test_responses_reasoning_item_sent_back_reaches_the_target(gw: Proc, up: Proc, model: str) -> None:
    with _client(gw) as client:
        first = client.responses.create(model=model, reasoning={"effort": "low"}, input="Think, then answer.")
        thought = _check(first)
        items: list[Any] = [{"role": "user", "content": "Think, then answer."}]
        items += [o.to_dict() for o in first.output]
        items.append({"role": "user", "content": "And again?"})
        httpx.delete(up.url + "/mock/requests")
        second = client.responses.create(model=model, reasoning={"effort": "low"}, input=items)
    _check(second)
    (seen,) = httpx.get(up.url + "/mock/requests").json()
    assistant = json.loads(seen["body"])["messages"][1]
    assert assistant["role"] == "assistant"
    if model.startswith("up/"):
        # The Chat Completions API takes no earlier reasoning: an OpenAI-compatible
        # target gets the assistant message without the gateway's reasoning fields.
        assert assistant == {"role": "assistant", "content": first.output_text}
        assert "reasoning_signature" not in seen["body"]
    else:
        assert assistant["content"] == [
            {"type": "thinking", "thinking": thought, "signature": REASONING_SIGNATURE},
            {"type": "text", "text": first.output_text},
        ]
