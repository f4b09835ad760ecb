"""``x-bf-send-back-raw-request`` / ``x-bf-send-back-raw-response`` on the Responses API
served natively, streamed as well as unary: the body sent upstream and the upstream's
Response as received, in the ``extra_fields`` of the answer (a stream's: of its terminal
event's ``response``). The real openai SDK against a real gateway in front of ``gateway
mock`` (which records the bodies it receives)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai

from tests.conftest import Proc
from tests.integration.test_responses_native import client, gw, up  # noqa: F401 (fixtures, named by the tests)

RAW = {"x-bf-send-back-raw-request": "true", "x-bf-send-back-raw-response": "true"}


def _sent(upstream: Proc) -> dict[str, Any]:
    [seen] = httpx.get(upstream.url + "/mock/requests").json()
    body: dict[str, Any] = json.loads(seen["body"])
    return body


def test_responses_native_stream_sends_back_raw_request_and_response(
    up: Proc,  # noqa: F811
    client: openai.OpenAI,  # noqa: F811
) -> None:
    events = list(client.responses.create(model="up/gpt-x", input="Echo me", stream=True, extra_headers=RAW))
    done = events[-1]
    assert done.type == "response.completed"
    extra = (done.response.model_extra or {})["extra_fields"]
    assert extra["request_type"] == "responses_stream"
    # The body the upstream received, as JSON; the upstream's Response before the
    # gateway's additions (no cost, no extra_fields of its own).
    assert extra["raw_request"] == _sent(up)
    assert extra["raw_request"]["model"] == "gpt-x" and extra["raw_request"]["stream"] is True
    raw = extra["raw_response"]
    assert raw["id"] == done.response.id and raw["status"] == "completed"
    assert "cost" not in raw["usage"] and "extra_fields" not in raw
    assert done.response.usage is not None and done.response.usage.model_extra["cost"]["total_cost"] > 0  # type: ignore[index]


def test_responses_native_stream_sends_back_only_what_is_asked(
    up: Proc,  # noqa: F811
    client: openai.OpenAI,  # noqa: F811
) -> None:
    for header, present, absent in (
        ("x-bf-send-back-raw-request", "raw_request", "raw_response"),
        ("x-bf-send-back-raw-response", "raw_response", "raw_request"),
    ):
        events = list(client.responses.create(model="up/gpt-x", input="x", stream=True, extra_headers={header: "true"}))
        extra = (events[-1].response.model_extra or {})["extra_fields"]  # type: ignore[union-attr]
        assert present in extra and absent not in extra
    plain = list(client.responses.create(model="up/gpt-x", input="x", stream=True))
    extra = (plain[-1].response.model_extra or {})["extra_fields"]  # type: ignore[union-attr]
    assert "raw_request" not in extra and "raw_response" not in extra


def test_responses_native_unary_sends_back_raw_request_and_response(
    up: Proc,  # noqa: F811
    client: openai.OpenAI,  # noqa: F811
) -> None:
    r = client.responses.create(model="up/gpt-x", input="Echo me", extra_headers=RAW)
    extra = (r.model_extra or {})["extra_fields"]
    assert extra["raw_request"] == _sent(up)
    assert extra["raw_response"]["id"] == r.id and "cost" not in extra["raw_response"]["usage"]
