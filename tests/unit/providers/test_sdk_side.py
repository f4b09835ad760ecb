"""The SDK side of the Anthropic and Gemini dialects beyond chat: the routed head, token
count requests as OpenAI prompts, model lists and pending jobs in each SDK's shape."""

from __future__ import annotations

import json

import msgspec
import pytest
from msgspec import UNSET

from gateway.errors import InvalidRequest
from gateway.providers import anthropic, gemini
from gateway.providers.dialect import Inbound, InboundHead, ListedModel

A = anthropic.DIALECT.inbound
G = gemini.DIALECT.inbound
assert A is not None and G is not None
ENTRY = ListedModel("up/gpt-x", "up", frozenset({"chat", "text"}))


def test_anthropic_head_reads_model_stream_max_tokens_fallbacks() -> None:
    body = b'{"model":"m","stream":true,"max_tokens":9,"fallbacks":["a/b"],"messages":[]}'
    assert A.head(body, strict=False) == InboundHead(model="m", stream=True, max_out=9, fallbacks=["a/b"])
    with pytest.raises(InvalidRequest) as e:
        A.head(b'{"messages":[]}', strict=False)
    assert e.value.param == "model"
    with pytest.raises(InvalidRequest):
        A.head(b'{"model":"a","model":"b"}', strict=True)  # a repeated routed key, with auth


def test_gemini_head_names_no_model_and_no_stream() -> None:
    body = b'{"contents":[],"generationConfig":{"maxOutputTokens":7}}'
    assert G.head(body, strict=False) == InboundHead(model=None, stream=None, max_out=7, fallbacks=UNSET)
    with pytest.raises(InvalidRequest):
        G.head(b"[1]", strict=False)


def test_anthropic_count_request_needs_no_max_tokens() -> None:
    out = json.loads(
        A.count_request(b'{"model":"m","system":"s","messages":[{"role":"user","content":"hi"}]}', model="m")
    )
    assert out["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    assert json.loads(A.count_answer(12)) == {"input_tokens": 12}


@pytest.mark.parametrize(
    "body",
    [
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        {"generateContentRequest": {"model": "models/x", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}},
    ],
)
def test_gemini_count_request_both_forms(body: dict[str, object]) -> None:
    out = json.loads(G.count_request(msgspec.json.encode(body), model="g"))
    assert out["model"] == "g" and out["messages"] == [{"role": "user", "content": "hi"}]
    assert json.loads(G.count_answer(5)) == {"totalTokens": 5}


def test_model_lists_in_each_shape() -> None:
    assert json.loads(A.model_list([ENTRY])) == {
        "data": [{"id": "up/gpt-x", "display_name": "up/gpt-x", "created_at": "1970-01-01T00:00:00Z", "type": "model"}],
        "has_more": False,
        "first_id": "up/gpt-x",
        "last_id": "up/gpt-x",
    }
    assert json.loads(A.model_list([])) == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    assert json.loads(G.model_list([ENTRY])) == {
        "models": [
            {
                "name": "models/up/gpt-x",
                "displayName": "up/gpt-x",
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
            }
        ]
    }
    assert json.loads(G.model(ENTRY))["name"] == "models/up/gpt-x"


@pytest.mark.parametrize("side", [A, G])
def test_pending_job_carries_the_job(side: Inbound) -> None:
    out = json.loads(
        side.pending(job_id="job-1", model="m", job=b'{"id":"job-1","status":"pending"}', created=1700000000)
    )
    assert out["extra_fields"] == {"async_job": {"id": "job-1", "status": "pending"}}
    if side is A:
        assert out["id"] == "job-1" and out["content"] == [] and out["type"] == "message"
    else:
        assert out["responseId"] == "job-1" and out["candidates"] == []
