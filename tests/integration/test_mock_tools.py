"""The fake LLM in an agent's tool loop, driven by the official openai SDK through the
gateway: to the ``gateway mock`` process (the relay path) and to the in-process mock."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import Proc, sdk_client

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
            },
        },
    }
]


@pytest.mark.parametrize("model", ["up/gpt-x", "mock/gpt-x"])
def test_mock_tools_sdk_tool_loop(gateway: Proc, model: str) -> None:
    sdk: openai.OpenAI = sdk_client(gateway.url + "/v1")
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]

    first = sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS, max_tokens=5)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call_mock")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "unit": "celsius"}
    assert (
        first.usage is not None
        and first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    )

    # The same turn streamed: the SDK's chunks rebuild the same call.
    chunks = list(
        sdk.chat.completions.create(
            model=model,
            messages=messages,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    assert deltas[0].id is not None and deltas[0].id.startswith("call_mock")
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert arguments == call.function.arguments
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == first.usage.completion_tokens

    # With the tool's result the model answers text.
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'},
    ]
    second = sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS, max_tokens=5)
    assert second.choices[0].finish_reason == "length"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content

    # A forced tool that is not offered is the client's error.
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.chat.completions.create(
            model=model,
            messages=messages[:1],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert exc.value.status_code == 400
    assert "nope" in str(exc.value)
