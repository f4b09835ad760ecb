"""gateway.providers.responses: a Responses request into OpenAI chat, a chat answer and
its chunk frames back into a Response and its events, from wire fixtures; every object
produced is validated against the openai SDK's own types."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import responses
from gateway.providers.responses import answer, request

EVENT = TypeAdapter(ResponseStreamEvent)
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}


def _chat(body: dict[str, Any], *, stream: bool = False, prior: list[Any] | None = None) -> dict[str, Any]:
    raw = json.dumps(prior).encode() if prior is not None else None
    out: dict[str, Any] = json.loads(responses.to_chat(json.dumps(body).encode(), model="m", stream=stream, prior=raw))
    return out


def _bad(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        _chat({"model": "x", **body})
    return info.value


def test_responses_string_input_and_instructions() -> None:
    body = {"model": "x", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 7, "metadata": {"a": "b"}}
    assert _chat(body, stream=True) == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 7,
    }


def test_responses_items_become_chat_messages() -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look:"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                {"type": "input_file", "file_id": "file-1"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Calling.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "f",
            "arguments": '{"a":1}',
            "id": "fc_1",
            "status": "completed",
        },
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
    ]
    assert _chat({"model": "x", "input": items})["messages"] == [
        {"role": "developer", "content": "Rules."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
    ]


def test_responses_options_become_chat_fields() -> None:
    body = {
        "model": "x",
        "input": "hi",
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "low", "summary": "auto"},
        "temperature": 0.2,
        "top_p": 0.9,
        "parallel_tool_calls": False,
        "user": "u1",
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "truncation": "auto",
    }
    chat = _chat(body)
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (chat["reasoning_effort"], chat["temperature"], chat["top_p"]) == ("low", 0.2, 0.9)
    assert (chat["parallel_tool_calls"], chat["user"]) == (False, "u1")
    assert not {"store", "include", "truncation", "metadata", "text", "reasoning"} & set(chat)
    assert _chat({"model": "x", "input": "hi", "text": {"format": {"type": "json_object"}}})["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in _chat({"model": "x", "input": "hi", "text": {"format": {"type": "text"}}})


def test_responses_prior_items_come_first() -> None:
    prior = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "id": "fc_1", "status": "completed"},
    ]
    body = {
        "model": "x",
        "instructions": "Sys.",
        "input": [{"type": "function_call_output", "call_id": "c1", "output": "ok"}],
    }
    assert _chat(body, prior=prior)["messages"] == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    # With the conversation loaded, previous_response_id itself is no longer refused.
    assert _chat({**body, "previous_response_id": "resp_1"}, prior=prior)["messages"][-1]["role"] == "tool"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "computer_call"}]}, "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}]},
            "input[0].content[0].file_url",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].image_url"),
        (
            {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": [{"role": "user"}]}, "input[0].content"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]}, "input[0].call_id"),
        ({"input": "hi", "tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "conversation": "conv_1"}, "conversation"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "temperature": 3}, "temperature"),
        ({"input": [{"role": "user", "content": "x"}] * 4097}, "input"),
        ({"instructions": "only"}, "input"),
    ],
)
def test_responses_bad_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    err = _bad(body)
    assert err.param == param and param in err.message and err.status == 400


def test_responses_head() -> None:
    h = request.head(b'{"model":"a","stream":true,"max_output_tokens":9,"fallbacks":["b"]}', strict=True)
    assert (h.model, h.stream, h.max_out, h.fallbacks) == ("a", True, 9, ["b"])
    with pytest.raises(InvalidRequest) as info:
        request.head(b'{"input":"hi"}', strict=False)
    assert info.value.param == "model"


def test_responses_input_items_for_storage() -> None:
    assert json.loads(responses.input_items(b'{"model":"x","input":"hi"}')) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]
    items = b'[{"type":"function_call_output","call_id":"c","output":"o","extra":1}]'
    assert responses.input_items(b'{"model":"x","input":%s}' % items) == items


# --- answers ----------------------------------------------------------------------------

REQUEST = json.dumps(
    {
        "model": "up/gpt-x",
        "input": "hi",
        "instructions": "Sys.",
        "tools": [TOOL],
        "metadata": {"k": "v"},
        "store": False,
    }
).encode()
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-x-2024",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"P"}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
        "cost": {"input_cost": 1e-05, "output_cost": 2e-05, "total_cost": 3e-05},
    },
    "extra_fields": {"request_type": "chat_completion", "provider": "up", "latency": 1.5},
}


def _ids(value: Any) -> Any:
    """``value`` with the random ids made comparable."""
    return json.loads(re.sub(r'"(resp|msg|fc)_[0-9a-f]{48}"', r'"\1_*"', json.dumps(value)))


def test_responses_answer_is_a_response() -> None:
    data = json.loads(responses.from_chat(json.dumps(COMPLETION).encode(), request=REQUEST))
    r = Response.model_validate(data)  # the SDK's own type, validated
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed"
    assert r.created_at == 1700000000 and r.model == "up/gpt-x"  # as requested
    assert r.output_text == "Let me look."
    assert _ids(data["output"]) == [
        {
            "type": "message",
            "id": "msg_*",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me look.", "annotations": [], "logprobs": []}],
        },
        {
            "type": "function_call",
            "id": "fc_*",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"P"}',
            "status": "completed",
        },
    ]
    assert data["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
        "cost": COMPLETION["usage"]["cost"],  # type: ignore[index]
    }
    assert data["extra_fields"] == COMPLETION["extra_fields"]
    assert (data["instructions"], data["metadata"], data["store"], data["tools"]) == ("Sys.", {"k": "v"}, False, [TOOL])
    assert (data["tool_choice"], data["text"], data["parallel_tool_calls"]) == (
        "auto",
        {"format": {"type": "text"}},
        True,
    )
    assert json.loads(responses.output_items(json.dumps(data).encode())) == data["output"]


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_responses_answer_cut_short_is_incomplete(finish: str, reason: str) -> None:
    done = {"created": 1, "choices": [{"finish_reason": finish, "message": {"role": "assistant", "content": "ab"}}]}
    data = json.loads(responses.from_chat(json.dumps(done).encode(), request=REQUEST))
    r = Response.model_validate(data)
    assert r.status == "incomplete" and r.incomplete_details is not None and r.incomplete_details.reason == reason
    assert data["output"][0]["status"] == "incomplete" and data["usage"] is None


def test_responses_answer_unreadable_is_an_upstream_error() -> None:
    for data in (b"{", b'{"choices":[]}', b'{"choices":[{"message":{"tool_calls":[{"id":"c"}]}}]}'):
        with pytest.raises(UpstreamProtocolError):
            responses.from_chat(data, request=REQUEST)


def test_responses_pending_job_is_a_queued_response() -> None:
    job = b'{"id":"job-1","status":"pending"}'
    data = json.loads(answer.pending(job_id="job-1", model="m", job=job, created=1700000000))
    r = Response.model_validate(data)
    assert (r.id, r.status, r.output, r.model, r.created_at) == ("job-1", "queued", [], "m", 1700000000)
    assert data["extra_fields"] == {"async_job": {"id": "job-1", "status": "pending"}}


# --- streams ----------------------------------------------------------------------------


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **more: Any) -> dict[str, Any]:
    choices = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if delta is not None or finish else []
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "choices": choices, **more}


CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
FRAMES = [
    _frame(_chunk({"role": "assistant", "content": ""})),
    _frame(_chunk({"content": "Let "})),
    _frame(_chunk({"content": "me look."})),
    _frame(_chunk({"tool_calls": [CALL]})),
    _frame(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]})),
    _frame(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ':"P"}'}}]})),
    _frame(_chunk(finish="tool_calls")),
    _frame(_chunk(usage=COMPLETION["usage"], extra_fields=COMPLETION["extra_fields"])),
    b"data: [DONE]\n\n",
]


def _events(out: bytes) -> list[dict[str, Any]]:
    events = []
    for block in out.split(b"\n\n")[:-1]:
        name, data = block.split(b"\n")
        event = json.loads(data[len(b"data: ") :])
        assert name == b"event: " + event["type"].encode()
        EVENT.validate_python(event)  # the SDK's own event types
        events.append(event)
    return events


def _run(groups: list[list[bytes]]) -> list[dict[str, Any]]:
    tr = responses.ResponsesStream(request=REQUEST)
    return _events(b"".join(tr.feed(b"".join(g)) for g in groups))


def test_responses_stream_events() -> None:
    events = _run([FRAMES])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-3]["arguments"] == '{"city":"P"}' and events[6]["text"] == "Let me look."
    final = events[-1]["response"]
    Response.model_validate(final)
    whole = json.loads(responses.from_chat(json.dumps(COMPLETION).encode(), request=REQUEST))
    # The stream's final Response is the unary answer, ids aside.
    assert _ids({**final, "id": "resp_*"}) == _ids({**whole, "id": "resp_*"})
    assert events[0]["response"]["id"] == final["id"] and events[0]["response"]["status"] == "in_progress"


def test_responses_stream_is_the_same_however_the_frames_are_grouped() -> None:
    whole = _ids(_run([FRAMES]))
    for cut in range(1, len(FRAMES)):
        assert _ids(_run([FRAMES[:cut], FRAMES[cut:]])) == whole
    assert _ids(_run([[f] for f in FRAMES])) == whole


def test_responses_stream_cut_short_is_incomplete() -> None:
    frames = [_frame(_chunk({"content": "ab"})), _frame(_chunk(finish="length")), b"data: [DONE]\n\n"]
    last = _run([frames])[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_responses_stream_error_frame_fails_the_response() -> None:
    err = {"error": {"message": "provider 'up' failed", "type": "upstream_error", "param": None, "code": "x"}}
    events = _run([FRAMES[:3], [_frame(err), FRAMES[-1]]])
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "provider 'up' failed" and events[-2]["code"] == "x"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"] == {
        "code": "server_error",
        "message": "provider 'up' failed",
    }


def test_responses_stream_unreadable_chunk_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        responses.ResponsesStream(request=REQUEST).feed(b"data: {nope\n\n")


# --- reasoning --------------------------------------------------------------------------

SIGNATURE = "EqQBCkYIBxgCKkD"
THOUGHT = "The user wants weather. I should call the tool."
REASONED = {
    **COMPLETION,
    "choices": [
        {
            **COMPLETION["choices"][0],  # type: ignore[index]
            "message": {
                **COMPLETION["choices"][0]["message"],  # type: ignore[index]
                "reasoning": THOUGHT,
                "reasoning_signature": SIGNATURE,
            },
        }
    ],
}
REASONED_FRAMES = [
    FRAMES[0],
    _frame(_chunk({"reasoning": "The user wants weather. "})),
    _frame(_chunk({"reasoning": "I should call the tool."})),
    _frame(_chunk({"reasoning_signature": SIGNATURE})),
    *FRAMES[1:],
]


def _reasoning_ids(value: Any) -> Any:
    return json.loads(re.sub(r'"rs_[0-9a-f]{48}"', '"rs_*"', json.dumps(_ids(value))))


def test_responses_answer_reasoning_is_an_item_before_the_message() -> None:
    data = json.loads(responses.from_chat(json.dumps(REASONED).encode(), request=REQUEST))
    r = Response.model_validate(data)
    assert [o.type for o in r.output] == ["reasoning", "message", "function_call"]
    assert _reasoning_ids(data["output"][0]) == {
        "type": "reasoning",
        "id": "rs_*",
        "summary": [{"type": "summary_text", "text": THOUGHT}],
        "encrypted_content": SIGNATURE,
        "status": "completed",
    }
    assert r.output_text == "Let me look." and data["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}


def test_responses_answer_reasoning_content_and_unsigned_reasoning() -> None:
    done = {
        "created": 1,
        "choices": [
            {"finish_reason": "stop", "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2"}}
        ],
    }
    data = json.loads(responses.from_chat(json.dumps(done).encode(), request=REQUEST))
    Response.model_validate(data)
    item = data["output"][0]
    assert item["summary"] == [{"type": "summary_text", "text": "2+2"}] and "encrypted_content" not in item
    # Without reasoning, no reasoning item (the answers of every other test).
    plain = json.loads(responses.from_chat(json.dumps(COMPLETION).encode(), request=REQUEST))
    assert [o["type"] for o in plain["output"]] == ["message", "function_call"]


def test_responses_stream_reasoning_events_come_first() -> None:
    events = _run([REASONED_FRAMES])
    kinds = [e["type"] for e in events]
    assert kinds[:9] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    assert kinds[9:] == [e["type"] for e in _run([FRAMES])][2:]  # the message and call as before
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    rs = events[2]["item"]
    assert rs["type"] == "reasoning" and rs["id"].startswith("rs_") and rs["summary"] == []
    for e in events[2:9]:
        assert e["output_index"] == 0 and e.get("item_id", e.get("item", {}).get("id")) == rs["id"]
    for e in events[3:8]:
        assert e["summary_index"] == 0
    assert events[6]["text"] == THOUGHT and events[7]["part"] == {"type": "summary_text", "text": THOUGHT}
    assert events[8]["item"]["encrypted_content"] == SIGNATURE and events[8]["item"]["status"] == "completed"
    assert events[9]["output_index"] == 1 and events[9]["item"]["type"] == "message"
    final = events[-1]["response"]
    whole = json.loads(responses.from_chat(json.dumps(REASONED).encode(), request=REQUEST))
    assert _reasoning_ids({**final, "id": "resp_*"}) == _reasoning_ids({**whole, "id": "resp_*"})


def test_responses_stream_reasoning_is_the_same_however_the_frames_are_grouped() -> None:
    whole = _reasoning_ids(_run([REASONED_FRAMES]))
    for cut in range(1, len(REASONED_FRAMES)):
        assert _reasoning_ids(_run([REASONED_FRAMES[:cut], REASONED_FRAMES[cut:]])) == whole


def test_responses_reasoning_cut_short_is_an_incomplete_item() -> None:
    frames = [_frame(_chunk({"reasoning_content": "hmm"})), _frame(_chunk(finish="length")), b"data: [DONE]\n\n"]
    last = _run([frames])[-1]["response"]
    done = {"created": 1, "choices": [{"finish_reason": "length", "message": {"reasoning_content": "hmm"}}]}
    whole = json.loads(responses.from_chat(json.dumps(done).encode(), request=REQUEST))
    for r in (last, whole):
        assert r["status"] == "incomplete" and [o["type"] for o in r["output"]] == ["reasoning"]
        assert r["output"][0]["status"] == "incomplete" and r["output"][0]["summary"][0]["text"] == "hmm"


def test_responses_reasoning_items_go_with_the_next_assistant_turn() -> None:
    rs = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think."}]}
    items = [
        {"role": "user", "content": "Weather?"},
        {**rs, "encrypted_content": "sig1"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Calling."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        # reasoning_text content wins over the summary; a second item joins the first.
        {**rs, "content": [{"type": "reasoning_text", "text": "Raw."}], "encrypted_content": None},
        {**rs, "summary": [], "encrypted_content": "sig2"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c2", "output": "ok"},
        rs,  # followed by a user turn: nothing carries it
        {"role": "user", "content": "Thanks."},
    ]
    assert _chat({"model": "x", "input": items})["messages"] == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Calling.",
            "reasoning": "Think.",
            "reasoning_signature": "sig1",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}],
            "reasoning": "Raw.",
            "reasoning_signature": "sig2",
        },
        {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        {"role": "user", "content": "Thanks."},
    ]


def test_responses_reasoning_between_text_and_call_starts_a_turn() -> None:
    items = [
        {"role": "user", "content": "Go."},
        {"type": "message", "role": "assistant", "content": "First."},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Now call."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ]
    messages = _chat({"model": "x", "input": items})["messages"]
    assert [m.get("reasoning") for m in messages] == [None, None, "Now call."]
    assert messages[1] == {"role": "assistant", "content": "First."} and messages[2]["tool_calls"][0]["id"] == "c1"


def test_responses_reasoning_survives_a_round_trip_to_anthropic_thinking() -> None:
    """The answer's output sent back as input: an Anthropic target gets its signed
    thinking block back, before the text and the tool use."""
    from gateway.providers import anthropic

    answered = json.loads(responses.from_chat(json.dumps(REASONED).encode(), request=REQUEST))
    prior = [{"role": "user", "content": "Weather?"}, *answered["output"]]
    items = [*prior, {"type": "function_call_output", "call_id": "call_1", "output": "18 C"}]
    chat = responses.to_chat(json.dumps({"model": "x", "input": items}).encode(), model="claude-x", stream=False)
    assistant = json.loads(chat)["messages"][1]
    assert (assistant["reasoning"], assistant["reasoning_signature"]) == (THOUGHT, SIGNATURE)
    sent = json.loads(anthropic.chat_request(chat, model="claude-x"))
    assert sent["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE},
        {"type": "text", "text": "Let me look."},
    ]
    assert sent["messages"][1]["content"][2]["type"] == "tool_use"
    # As a stored conversation (previous_response_id), the same.
    stored = responses.output_items(json.dumps(answered).encode())
    again = responses.to_chat(
        json.dumps({"model": "x", "input": items[-1:]}).encode(),
        model="m",
        stream=False,
        prior=json.dumps([prior[0], *json.loads(stored)]).encode(),
    )
    assert json.loads(again)["messages"][1]["reasoning_signature"] == SIGNATURE


def test_responses_reasoning_item_without_text_is_refused_by_param() -> None:
    err = _bad({"input": [{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text"}]}]})
    assert err.param == "input[0].summary[0].text"
