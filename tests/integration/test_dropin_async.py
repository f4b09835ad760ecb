# ruff: noqa: F811  (the imported fixtures are the tests' parameters)
"""``x-bf-async`` on the SDK drop-in chat routes, with the real ``anthropic`` and
``google-genai`` SDKs: a submit answers 202 in the SDK's own shape (a message without
content, which the Anthropic SDK parses; a response without candidates, which
google-genai raises as an APIError of code 202 carrying it), polls with ``x-bf-async-id`` on the same kind
of route give the synchronous answer once the job ended, a stream cannot be a job, and
a job is polled only on its own kind of route."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import Proc

# The SDK route tests' upstream (gateway mock) and gateway: Anthropic, Gemini and
# OpenAI-dialect providers on it.
from tests.integration.test_sdk_routes import gw, up  # noqa: F401 (fixtures, named by the tests)

POLLS = 400  # x 0.05 s: a bound on waiting, not a timing assertion
MESSAGES: list[Any] = [{"role": "user", "content": "Say something."}]


def _claude(gw: Proc, prefix: str = "/anthropic") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url + prefix, api_key="sk-owner", max_retries=0)


def _genai(gw: Proc, headers: dict[str, str]) -> genai.Client:
    opts = types.HttpOptions(base_url=gw.url + "/genai", headers=headers, retry_options=None)
    return genai.Client(api_key="sk-owner", http_options=opts)


def _volatile_free(text: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    for key in ("id", "responseId"):
        data.pop(key, None)
    return data


@pytest.mark.parametrize("model", ["claude-x", "up/gpt-x"])
def test_anthropic_async_job_is_polled_to_the_synchronous_answer(gw: Proc, model: str) -> None:
    with _claude(gw) as client:
        sync = client.messages.with_raw_response.create(model=model, max_tokens=4, messages=MESSAGES)
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=4, messages=MESSAGES, extra_headers={"x-bf-async": "true"}
        )
        assert raw.status_code == 202, raw.http_response.text
        pending = raw.parse()  # the SDK parses the pending job as a message without content
        assert pending.type == "message" and pending.content == [] and pending.id.startswith("job-")
        job = (pending.model_extra or {})["extra_fields"]["async_job"]
        assert job["id"] == pending.id and job["status"] == "pending"
        with _claude(gw, "/langchain") as other_prefix:  # the same kind of route, another prefix
            for _ in range(POLLS):
                raw = other_prefix.messages.with_raw_response.create(
                    model=model, max_tokens=4, messages=[], extra_headers={"x-bf-async-id": pending.id}
                )
                if raw.status_code != 202:
                    break
                assert raw.parse().content == []
                time.sleep(0.05)
    assert raw.status_code == 200
    done = raw.parse()
    assert done.type == "message" and len(done.content[0].text.split()) == 4  # type: ignore[union-attr]
    assert raw.headers["x-bifrost-provider"] == ("anthropic" if model == "claude-x" else "up")
    assert _volatile_free(raw.http_response.content) == _volatile_free(sync.http_response.content)


@pytest.mark.parametrize("model", ["gem-x", "up/gpt-x"])
def test_genai_async_job_is_polled_to_the_synchronous_answer(gw: Proc, model: str) -> None:
    config = types.GenerateContentConfig(max_output_tokens=4)
    sync = httpx.post(
        gw.url + f"/genai/v1beta/models/{model}:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 4}},
    )
    # google-genai takes any status but 200 for an error: a pending job (202) reaches the
    # caller as APIError code 202, the pending body (the job) in its details.
    submitter = _genai(gw, {"x-bf-async": "true"})
    with pytest.raises(genai_errors.APIError) as info:
        submitter.models.generate_content(model=model, contents="hi", config=config)
    assert info.value.code == 202
    job_id = info.value.details["responseId"]
    assert job_id.startswith("job-") and info.value.details["extra_fields"]["async_job"]["status"] == "pending"
    poller = _genai(gw, {"x-bf-async-id": job_id})
    for _ in range(POLLS):
        try:
            answer = poller.models.generate_content(model=model, contents="hi", config=config)
            break
        except genai_errors.APIError as e:
            assert e.code == 202, e
            time.sleep(0.05)
    assert answer.text is not None and len(answer.text.split()) == 4
    assert answer.usage_metadata is not None and answer.usage_metadata.candidates_token_count == 4
    raw = httpx.post(
        gw.url + f"/genai/v1beta/models/{model}:generateContent",
        json={},
        headers={"x-bf-async-id": job_id, "x-goog-api-key": "sk-owner"},
    )
    assert raw.status_code == 200 and _volatile_free(raw.content) == _volatile_free(sync.content)


def test_dropin_async_pending_answer_is_202_with_the_job(gw: Proc) -> None:
    r = httpx.post(
        gw.url + "/genai/v1/models/gem-x:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-bf-async": "true"},
    )
    assert r.status_code == 202
    body = r.json()
    assert body["candidates"] == [] and body["modelVersion"] == "gem-x"
    assert body["extra_fields"]["async_job"]["id"] == body["responseId"]


def test_dropin_async_stream_is_400_in_the_sdk_shape(gw: Proc) -> None:
    r = httpx.post(
        gw.url + "/anthropic/v1/messages",
        json={"model": "claude-x", "max_tokens": 3, "messages": MESSAGES, "stream": True},
        headers={"x-bf-async": "true"},
    )
    assert r.status_code == 400 and r.json()["type"] == "error" and r.json()["error"]["param"] == "stream"
    r = httpx.post(
        gw.url + "/genai/v1beta/models/gem-x:streamGenerateContent?alt=sse",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-bf-async": "true"},
    )
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert r.json()["error"]["param"] == "stream"


def test_dropin_job_is_polled_on_its_own_kind_of_route_only(gw: Proc) -> None:
    r = httpx.post(
        gw.url + "/anthropic/v1/messages",
        json={"model": "claude-x", "max_tokens": 3, "messages": MESSAGES},
        headers={"x-bf-async": "true", "x-api-key": "sk-owner"},
    )
    job_id = r.json()["id"]
    poll = {"x-bf-async-id": job_id, "x-api-key": "sk-owner"}
    r = httpx.post(gw.url + "/genai/v1beta/models/gem-x:generateContent", json={}, headers=poll)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = httpx.post(gw.url + "/v1/chat/completions", json={}, headers=poll)
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    r = httpx.post(gw.url + "/anthropic/v1/messages", json={}, headers={"x-bf-async-id": job_id, "x-api-key": "other"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert r.json()["error"]["code"] == "job_not_found"


def test_dropin_failed_job_answers_the_sdk_error(gw: Proc) -> None:
    with _claude(gw) as client:
        pending = client.messages.create(
            model="claude-x",
            max_tokens=3,
            messages=MESSAGES,
            extra_headers={"x-bf-async": "true", "x-bf-eh-x-mock": json.dumps({"fail_status": 400})},
        )
        for _ in range(POLLS):
            try:
                client.messages.create(
                    model="claude-x", max_tokens=3, messages=[], extra_headers={"x-bf-async-id": pending.id}
                )
            except anthropic.BadRequestError as e:
                assert e.body["type"] == "error"  # type: ignore[index]
                return
            time.sleep(0.05)
    raise AssertionError("the job never failed")
