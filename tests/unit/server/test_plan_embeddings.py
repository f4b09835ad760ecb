"""server.plan: embeddings requests, whose targets that cannot serve them hold a 400 each
instead of refusing the request."""

from __future__ import annotations

import json
from typing import Any

from gateway import codec
from gateway.errors import InvalidRequest
from gateway.relay.call import Call
from gateway.server.plan import Planner
from tests.unit.server.test_plan import planner, request, upstream

__all__ = ["planner"]  # the fixture, shared


def embeddings(planner: Planner, fields: dict[str, Any]) -> Call:
    body = json.dumps({"input": "hi", **fields}).encode()
    req = codec.decode_embeddings(body)
    return planner.embeddings(request(path="/v1/embeddings"), body, model=req.model, fallbacks=req.fallbacks, t0=0.0)


def test_plan_embeddings_target_per_dialect(planner: Planner) -> None:
    call = embeddings(planner, {"model": "oa/e", "fallbacks": ["ge/g", "mock/m"], "x": 1})
    assert call.endpoint == "embeddings" and call.request_type == "embedding"
    assert upstream(call, 0) == {"model": "e", "input": "hi", "x": 1}  # OpenAI: bytes, fallbacks removed
    assert upstream(call, 1) == {"requests": [{"model": "models/g", "content": {"parts": [{"text": "hi"}]}}]}
    assert upstream(call, 2) == {"model": "m", "input": "hi", "x": 1}


def test_plan_embeddings_unserved_target_holds_its_400(planner: Planner) -> None:
    call = embeddings(planner, {"model": "an/claude-x", "fallbacks": ["oa/e", "an/claude-y"]})
    first, last = call.targets[0][1], call.targets[2][1]
    assert isinstance(first, InvalidRequest) and first.param == "model" and first.code == "unsupported_endpoint"
    assert "'claude-x'" in first.message and "embeddings" in first.message
    assert isinstance(last, InvalidRequest) and last.param == "fallbacks[1]"
    assert isinstance(call.targets[1][1], bytes)


def test_plan_embeddings_gemini_token_ids_refused_per_target(planner: Planner) -> None:
    call = embeddings(planner, {"model": "oa/e", "input": [1, 2], "fallbacks": ["ge/g"]})
    err = call.targets[1][1]
    assert isinstance(call.targets[0][1], bytes)
    assert isinstance(err, InvalidRequest) and err.param == "input" and err.message.startswith("fallbacks[0] (ge)")
