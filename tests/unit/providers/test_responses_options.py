"""The Responses request's options as chat fields (``providers.responses.options``):
``allowed_tools``, ``include`` and ``top_logprobs``, ``truncation``; and a function
call's output given as parts (images and files after the tool messages)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response

from gateway.errors import InvalidRequest
from gateway.providers import responses
from tests.unit.providers.test_responses import _events


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object"}}


TOOLS = [_tool("a"), _tool("b"), _tool("c")]
IMAGE = {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
FILE = {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        responses.to_chat(json.dumps({"model": "x", **body}).encode(), model="m", stream=False)
    )
    return out


def _bad(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        _chat(body)
    return info.value


@pytest.mark.parametrize("mode", ["auto", "required"])
def test_responses_allowed_tools_filter_the_tools_and_set_the_mode(mode: str) -> None:
    allowed = [{"type": "function", "name": "c"}, {"type": "function", "name": "a"}]
    chat = _chat(
        {"input": "hi", "tools": TOOLS, "tool_choice": {"type": "allowed_tools", "mode": mode, "tools": allowed}}
    )
    assert [t["function"]["name"] for t in chat["tools"]] == ["a", "c"]  # in the request's order
    assert chat["tool_choice"] == mode


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "z"}]},
            "tool_choice.tools[0]",
        ),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "a"}, {"type": "mcp"}]},
            "tool_choice.tools[1]",
        ),
        ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function"}]}, "tool_choice.tools[0]"),
        ({"type": "allowed_tools", "mode": "auto", "tools": []}, "tool_choice.tools"),
        ({"type": "allowed_tools", "mode": "auto"}, "tool_choice.tools"),
        ({"type": "allowed_tools", "mode": "none", "tools": [{"type": "function", "name": "a"}]}, "tool_choice.mode"),
        ({"type": "allowed_tools", "tools": [{"type": "function", "name": "a"}]}, "tool_choice.mode"),
    ],
)
def test_responses_allowed_tools_refused_by_param(choice: dict[str, Any], param: str) -> None:
    err = _bad({"input": "hi", "tools": TOOLS, "tool_choice": choice})
    assert err.param == param and param in err.message and err.status == 400


def test_responses_allowed_tools_without_tools_names_the_first() -> None:
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "a"}]}
    assert _bad({"input": "hi", "tool_choice": choice}).param == "tool_choice.tools[0]"


def test_responses_function_output_parts_put_media_after_the_tool_messages() -> None:
    items = [
        {"role": "user", "content": "Look"},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "one"}, IMAGE]},
        {"type": "function_call_output", "call_id": "c2", "output": [FILE]},
        {"role": "user", "content": "And?"},
    ]
    messages = _chat({"input": items})["messages"]
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "one"}]},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
            ],
        },
        {"role": "user", "content": "And?"},
    ]
    # Last in the input: the user message ends it.
    assert _chat({"input": items[:4]})["messages"][-1] == {"role": "user", "content": [messages[4]["content"][0]]}


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_audio"}, "input[1].output[0].type"),
        ({"type": "input_image"}, "input[1].output[0].image_url"),
        ({"type": "input_file", "file_url": "https://x"}, "input[1].output[0].file_url"),
    ],
)
def test_responses_function_output_bad_part_is_refused_by_param(part: dict[str, Any], param: str) -> None:
    items = [
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [part]},
    ]
    assert _bad({"input": items}).param == param


def test_responses_include_logprobs_asks_the_chat_request_for_them() -> None:
    chat = _chat({"input": "hi", "include": ["message.output_text.logprobs"], "top_logprobs": 3})
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 3)
    chat = _chat({"input": "hi", "include": ["message.output_text.logprobs"]})
    assert chat["logprobs"] is True and "top_logprobs" not in chat
    # Nothing to send for the other values, nor for top_logprobs alone.
    every = ["reasoning.encrypted_content", "message.input_image.image_url", "web_search_call.results"]
    assert not {"logprobs", "top_logprobs", "include"} & set(
        _chat({"input": "hi", "include": every, "top_logprobs": 2})
    )


@pytest.mark.parametrize("truncation", ["auto", "disabled", None])
def test_responses_truncation_is_accepted(truncation: str | None) -> None:
    assert "truncation" not in _chat({"input": "hi", "truncation": truncation})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"include": ["reasoning.encrypted_content", "output_text.logprobs"]}, "include[1]"),
        ({"include": [7]}, "include[0]"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"truncation": "middle"}, "truncation"),
    ],
)
def test_responses_options_refused_by_param(body: dict[str, Any], param: str) -> None:
    err = _bad({"input": "hi", **body})
    assert err.param == param and param in err.message


# --- logprobs in the answer and the stream -----------------------------------------------

LOGPROBS_REQUEST = json.dumps({"model": "x", "input": "hi", "include": ["message.output_text.logprobs"]}).encode()


def _lp(token: str, logprob: float, *, sent_bytes: bool) -> dict[str, Any]:
    """A chat token logprob, with one alternative; Gemini's translation sends no bytes."""
    alt = {"token": token.upper(), "logprob": logprob - 1, "bytes": None}
    entry: dict[str, Any] = {"token": token, "logprob": logprob, "top_logprobs": [alt]}
    entry["bytes"] = list(token.encode()) if sent_bytes else None
    return entry


def _responses_lp(token: str, logprob: float) -> dict[str, Any]:
    top = {"token": token.upper(), "bytes": list(token.upper().encode()), "logprob": logprob - 1}
    return {"token": token, "bytes": list(token.encode()), "logprob": logprob, "top_logprobs": [top]}


def test_responses_answer_output_text_carries_the_logprobs() -> None:
    chat = {
        "id": "c",
        "created": 1,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hé there"},
                "logprobs": {"content": [_lp("Hé", -0.5, sent_bytes=True), _lp(" there", -1.5, sent_bytes=False)]},
            }
        ],
    }
    data = json.loads(responses.from_chat(json.dumps(chat).encode(), request=LOGPROBS_REQUEST))
    Response.model_validate(data)
    (part,) = data["output"][0]["content"]
    assert part["logprobs"] == [_responses_lp("Hé", -0.5), _responses_lp(" there", -1.5)]
    chat["choices"][0]["logprobs"] = None
    data = json.loads(responses.from_chat(json.dumps(chat).encode(), request=LOGPROBS_REQUEST))
    assert data["output"][0]["content"][0]["logprobs"] == []


def test_responses_stream_deltas_carry_their_logprobs() -> None:
    def chunk(delta: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return b"data: " + json.dumps({"created": 1, "choices": [choice]}).encode() + b"\n\n"

    frames = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hé"}, {"content": [_lp("Hé", -0.5, sent_bytes=False)]}),
        chunk({"content": " there"}, {"content": [_lp(" there", -1.5, sent_bytes=True)]}),
        chunk({}, finish="stop"),
        b"data: [DONE]\n\n",
    ]
    events = _events(responses.ResponsesStream(request=LOGPROBS_REQUEST).feed(b"".join(frames)))
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [d["logprobs"] for d in deltas] == [[_responses_lp("Hé", -0.5)], [_responses_lp(" there", -1.5)]]
    whole = [_responses_lp("Hé", -0.5), _responses_lp(" there", -1.5)]
    (done,) = [e for e in events if e["type"] == "response.output_text.done"]
    (part,) = [e for e in events if e["type"] == "response.content_part.done"]
    assert done["logprobs"] == part["part"]["logprobs"] == whole
    assert events[-1]["response"]["output"][0]["content"][0]["logprobs"] == whole
