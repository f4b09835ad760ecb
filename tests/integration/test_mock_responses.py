"""``gateway mock`` answers the Responses API itself, driven by the official openai SDK
with no gateway in front: unary and streamed Responses with OpenAI's usage, a function
call loop, ``previous_response_id`` continued from what the mock keeps, retrieve,
delete, ``store: false``, and the mock's faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, start_mock

KEY = "sk-mock-responses-0123456789"
TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("mock-responses"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture
def client(up: Proc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=up.url + "/v1", api_key=KEY, max_retries=0, timeout=10) as c:
        yield c


def test_mock_responses_unary_has_openai_usage(client: openai.OpenAI) -> None:
    r = client.responses.create(model="gpt-x", input="Say hi", max_output_tokens=8)
    assert r.id.startswith("resp_") and r.status in ("completed", "incomplete")
    assert r.output_text
    u = r.usage
    assert u is not None and u.input_tokens > 0 and u.output_tokens > 0
    assert u.total_tokens == u.input_tokens + u.output_tokens
    assert u.input_tokens_details.cached_tokens == 0 and u.output_tokens_details.reasoning_tokens == 0


def test_mock_responses_stream_ends_completed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-x", input="Say hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    done = events[-1].response  # type: ignore[union-attr]
    assert done.usage is not None and done.usage.output_tokens > 0
    # A streamed response is kept as a unary one.
    assert client.responses.retrieve(done.id).output_text == done.output_text


def test_mock_responses_function_call_loop(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-x", input="Weather in Paris?", tools=[TOOL])
    [call] = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)
    second = client.responses.create(
        model="gpt-x",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}],
        tools=[TOOL],
    )
    assert second.output_text and not [o for o in second.output if o.type == "function_call"]
    assert second.previous_response_id == first.id


def test_mock_responses_previous_response_id_continues(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-x", input="My name is Ada.", instructions="Be brief.")
    second = client.responses.create(model="gpt-x", input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    third = client.responses.create(model="gpt-x", input="And again?", previous_response_id=second.id)
    assert third.output_text
    # The whole conversation, as OpenAI lists it: newest first by default.
    items = client.responses.input_items.list(third.id)
    assert [(i.type, i.role) for i in items.data] == [  # type: ignore[union-attr]
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items.data[0].content[0].text == "And again?"  # type: ignore[union-attr]
    assert items.data[-1].content[0].text == "My name is Ada."  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-x", input="x", previous_response_id="resp_unknown0")
    assert e.value.code == "previous_response_not_found"


def test_mock_responses_retrieve_and_delete(client: openai.OpenAI) -> None:
    r = client.responses.create(model="gpt-x", input="Keep me")
    assert client.responses.retrieve(r.id).id == r.id
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    unkept = client.responses.create(model="gpt-x", input="Forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)


def test_mock_responses_faults_apply(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-x", input="x", extra_body={"mock": {"fail_status": 429}})
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-x", input="x", extra_headers={"x-mock": '{"fail_status": 500}'})
    with pytest.raises(openai.APIError):
        list(client.responses.create(model="gpt-x", input="x", stream=True, extra_body={"mock": {"reset_after": 2}}))
    sized = client.responses.create(model="gpt-x", input="x", extra_body={"mock": {"tokens": 5}})
    assert sized.usage is not None and sized.usage.output_tokens == 5


def test_mock_responses_requires_its_key(up: Proc) -> None:
    r = httpx.post(up.url + "/v1/responses", json={"model": "gpt-x", "input": "x"})
    assert r.status_code == 401
    assert httpx.get(up.url + "/v1/responses/resp_abc").status_code == 401
