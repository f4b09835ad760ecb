# ruff: noqa: F811  (the imported fixtures are the tests' parameters)
"""Responses request options through a real gateway with the real ``openai`` SDK, seen
in what the upstream received (``gateway mock``, recording, behind an OpenAI-dialect,
an Anthropic and a Gemini provider) and in the answer (those and the in-process mock):
``tool_choice`` ``allowed_tools``, a function call's output given as parts, ``include``
and ``top_logprobs``, ``truncation``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc
from tests.integration.test_responses import MODELS, _client, _seen, gw, up  # noqa: F401 (fixtures)

PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: list[Any] = [
    {"type": "function", "name": n, "description": f"tool {n}", "parameters": PARAMS}
    for n in ("get_weather", "get_time", "get_news")
]
# A 1x1 PNG.
IMAGE = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def _body(up: Proc) -> tuple[str, dict[str, Any]]:
    """The path and body of the one request the upstream received."""
    (seen,) = _seen(up)
    return seen["path"], json.loads(seen["body"])


def _declared(body: dict[str, Any]) -> list[str]:
    """The tool names a translated upstream body declares, whatever its dialect."""
    if "messages" in body and "tools" in body and "function" in body["tools"][0]:
        return [t["function"]["name"] for t in body["tools"]]
    if "contents" in body:
        return [d["name"] for t in body["tools"] for d in t["functionDeclarations"]]
    return [t["name"] for t in body["tools"]]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("mode", ["auto", "required"])
def test_responses_allowed_tools_reach_every_provider(gw: Proc, up: Proc, model: str, mode: str) -> None:
    choice: Any = {"type": "allowed_tools", "mode": mode, "tools": [{"type": "function", "name": "get_news"}]}
    httpx.delete(up.url + "/mock/requests")
    with _client(gw) as client:
        r = client.responses.create(model=model, input="News in Paris?", tools=TOOLS, tool_choice=choice)
    # The fake LLM calls the first tool it is offered: only the allowed one was.
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "get_news" and json.loads(call.arguments) == {"city": "mock"}
    assert r.tool_choice.type == "allowed_tools" and len(r.tools) == 3  # type: ignore[union-attr]
    if model.startswith("mock/"):
        return  # answered in-process: nothing recorded
    _, body = _body(up)
    assert _declared(body) == ["get_news"]
    if model.startswith("up/"):
        assert body["tool_choice"] == mode
    elif model.startswith("anthropic/"):
        assert body["tool_choice"]["type"] == {"auto": "auto", "required": "any"}[mode]
    else:
        assert body["toolConfig"]["functionCallingConfig"]["mode"] == {"auto": "AUTO", "required": "ANY"}[mode]


def test_responses_allowed_tools_naming_an_unknown_tool_is_a_400(gw: Proc) -> None:
    choice: Any = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_weather"}]}
    choice["tools"].append({"type": "function", "name": "launch"})
    with _client(gw) as client, pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="anthropic/claude-x", input="hi", tools=TOOLS, tool_choice=choice)
    assert info.value.param == "tool_choice.tools[1]" and "launch" in info.value.message


@pytest.mark.parametrize("model", ["up/gpt-x", "anthropic/claude-x", "gemini/gem-x"])
def test_responses_function_output_image_follows_the_tool_result(gw: Proc, up: Proc, model: str) -> None:
    items: Any = [
        {"role": "user", "content": "What does the camera show?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": [{"type": "input_text", "text": "a snapshot:"}, {"type": "input_image", "image_url": IMAGE}],
        },
    ]
    httpx.delete(up.url + "/mock/requests")
    with _client(gw) as client:
        r = client.responses.create(model=model, input=items, tools=TOOLS)
    assert r.status == "completed"
    _, body = _body(up)
    if model.startswith("up/"):
        assert body["messages"][2:] == [
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "a snapshot:"}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE}}]},
        ]
    elif model.startswith("anthropic/"):
        last = body["messages"][-1]
        assert last["role"] == "user" and [b["type"] for b in last["content"]] == ["tool_result", "image"]
        assert last["content"][0]["tool_use_id"] == "call_1"
    else:
        last = body["contents"][-1]
        assert "functionResponse" in last["parts"][0] and "inlineData" in last["parts"][-1]


def _logprobs_ok(logprobs: list[Any], text: str, top: int) -> None:
    assert "".join(lp.token for lp in logprobs) == text
    for lp in logprobs:
        assert lp.bytes == list(lp.token.encode()) and lp.logprob <= 0
        assert len(lp.top_logprobs) == top
        if top:
            assert lp.top_logprobs[0].token == lp.token and lp.top_logprobs[0].logprob == lp.logprob


# native/: gateway mock's own Responses API, which the gateway relays as is.
@pytest.mark.parametrize("model", ["up/gpt-x", "gemini/gem-x", "mock/gpt-m", "native/gpt-x"])
def test_responses_include_logprobs_unary_and_streamed(gw: Proc, model: str) -> None:
    ask: Any = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}
    with _client(gw) as client:
        r = client.responses.create(model=model, input="Say something.", **ask)
        plain = client.responses.create(model=model, input="Say something.")
        with client.responses.stream(model=model, input="Say something.", **ask) as s:
            events = list(s)
            final = s.get_final_response()
    part = r.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text"
    _logprobs_ok(part.logprobs, r.output_text, 2)
    assert not plain.output[0].content[0].logprobs  # type: ignore[union-attr]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas and all(len(e.logprobs) == 1 and e.logprobs[0].token == e.delta for e in deltas)
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    streamed = final.output[0].content[0]  # type: ignore[union-attr]
    assert [lp.to_dict() for lp in streamed.logprobs] == [lp.to_dict() for lp in done.logprobs]  # type: ignore[union-attr]
    assert [lp.to_dict() for e in deltas for lp in e.logprobs] == [lp.to_dict() for lp in done.logprobs]
    _logprobs_ok(streamed.logprobs, final.output_text, 2)  # type: ignore[union-attr]
    assert [lp.token for lp in streamed.logprobs] == [lp.token for lp in part.logprobs]  # type: ignore[union-attr]


def test_responses_include_logprobs_reach_the_upstream(gw: Proc, up: Proc) -> None:
    httpx.delete(up.url + "/mock/requests")
    with _client(gw) as client:
        client.responses.create(
            model="up/gpt-x", input="hi", include=["message.output_text.logprobs"], top_logprobs=0, truncation="auto"
        )
    _, body = _body(up)
    assert (body["logprobs"], body["top_logprobs"]) == (True, 0)
    assert not {"include", "truncation"} & set(body)


def test_responses_include_encrypted_content_carries_the_signature(gw: Proc) -> None:
    from gateway.providers.mock import REASONING_SIGNATURE

    with _client(gw) as client:
        r = client.responses.create(
            model="anthropic/claude-x", input="hi", reasoning={"effort": "low"}, include=["reasoning.encrypted_content"]
        )
    assert r.output[0].type == "reasoning" and r.output[0].encrypted_content == REASONING_SIGNATURE


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"include": ["message.output_text.logprobs", "usage.details"]}, "include[1]"),
        ({"truncation": "middle"}, "truncation"),
        ({"top_logprobs": 21}, "top_logprobs"),
    ],
)
def test_responses_bad_options_are_a_400_naming_the_param(gw: Proc, body: dict[str, Any], param: str) -> None:
    r = httpx.post(gw.url + "/v1/responses", json={"model": "up/gpt-x", "input": "hi", **body}, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
