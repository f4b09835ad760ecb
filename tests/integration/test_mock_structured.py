"""The fake LLM answering structured output, driven by the official openai SDK's
``chat.completions.parse`` / ``.stream`` with a pydantic model: through the gateway to the
``gateway mock`` process (the relay path) and to the in-process mock, and to
``gateway mock`` directly."""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from typing import Annotated, Any, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from tests.conftest import Proc, sdk_client

MODELS = ["up/gpt-x", "mock/gpt-x"]


class Role(enum.Enum):
    chair = "chair"
    guest = "guest"


class Attendee(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    age: Annotated[int, Field(ge=18, lt=130)]
    email: str | None


class Meeting(BaseModel):
    title: str
    starts_at: datetime.datetime
    kind: Literal["online", "on-site"]
    attendees: list[Attendee]
    follow_up: Meeting | None


MESSAGES: Any = [{"role": "user", "content": "Plan the weekly meeting."}]


def check_parsed(completion: Any) -> Meeting:
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.refusal is None
    parsed = choice.message.parsed
    assert isinstance(parsed, Meeting)
    assert Meeting.model_validate_json(choice.message.content or "") == parsed
    assert parsed.attendees and isinstance(parsed.attendees[0].id, uuid.UUID)
    return parsed


def parse_both_ways(sdk: openai.OpenAI, model: str) -> None:
    unary = sdk.chat.completions.parse(model=model, messages=MESSAGES, response_format=Meeting)
    parsed = check_parsed(unary)
    usage = unary.usage
    assert usage is not None
    assert usage.completion_tokens == len(unary.choices[0].message.content or "") // 4

    with sdk.chat.completions.stream(
        model=model, messages=MESSAGES, response_format=Meeting, stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 10 and all(len(d) <= 8 for d in deltas)
    assert check_parsed(final) == parsed
    assert final.usage is not None and final.usage.completion_tokens == usage.completion_tokens


@pytest.mark.parametrize("model", MODELS)
def test_mock_structured_sdk_parse_through_gateway(gateway: Proc, model: str) -> None:
    parse_both_ways(sdk_client(gateway.url + "/v1"), model)


def test_mock_structured_sdk_parse_direct(plain_upstream: Proc) -> None:
    parse_both_ways(sdk_client(plain_upstream.url + "/v1"), "gpt-x")


@pytest.mark.parametrize("model", MODELS)
def test_mock_structured_json_object(gateway: Proc, model: str) -> None:
    sdk = sdk_client(gateway.url + "/v1")
    out = sdk.chat.completions.create(
        model=model, messages=MESSAGES, response_format={"type": "json_object"}, extra_body={"mock": {"tokens": 3}}
    )
    content = out.choices[0].message.content or ""
    assert json.loads(content) == {"answer": "the gateway relays"}
    assert out.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", MODELS)
def test_mock_structured_unbuildable_schema_is_400(gateway: Proc, model: str) -> None:
    sdk = sdk_client(gateway.url + "/v1")
    schema = {"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}, "required": ["x"]}
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.chat.completions.create(
            model=model,
            messages=MESSAGES,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )
    assert exc.value.status_code == 400
    body: Any = exc.value.body
    assert body["param"] == "response_format.json_schema.schema"
    assert "#/$defs/Missing" in body["message"]
