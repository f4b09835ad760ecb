"""gateway.codec: request validation and the byte surgery on bodies."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import codec, screen
from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.schemas.response import ExtraFields, ResponseHead

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
TEXT: dict[str, Any] = {"model": "m", "prompt": "Say this is a test"}


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def chat_error(body: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as exc:
        codec.decode_chat(body)
    return exc.value


def completion_error(body: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as exc:
        codec.decode_completion(body)
    return exc.value


def extra() -> ExtraFields:
    return ExtraFields(
        request_type="chat.completion",
        provider="up",
        model_requested="up/gpt",
        model_deployment="gpt",
        latency=12.5,
    )


EXTRA_JSON = {
    "request_type": "chat.completion",
    "provider": "up",
    "model_requested": "up/gpt",
    "model_deployment": "gpt",
    "latency": 12.5,
}


# --- decode_chat: rejections --------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"top_p": 1.5}, "top_p"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "robot"}]}, "messages[1].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": "hello"}, "messages"),
        ({"tool_choice": "any"}, "tool_choice"),
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"model": ""}, "model"),
        ({"model": 5}, "model"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({"fallbacks": [""]}, "fallbacks[0]"),
        ({"tool_choice": {"type": "function", "function": {"name": ""}}}, "tool_choice.function.name"),
    ],
)
def test_decode_chat_rejects_with_param(change: dict[str, Any], param: str) -> None:
    err = chat_error(dumps({**CHAT, **change}))
    assert err.param == param
    assert err.code == "invalid_value"
    assert err.status == 400
    assert param in err.message


def test_decode_chat_missing_model() -> None:
    err = chat_error(dumps({"messages": CHAT["messages"]}))
    assert err.param == "model"


def test_decode_chat_missing_messages() -> None:
    err = chat_error(dumps({"model": "m"}))
    assert err.param == "messages"


@pytest.mark.parametrize("body", [b"{", b"not json", b'{"model": "m",}', b"\xff\xfe"])
def test_decode_chat_invalid_json(body: bytes) -> None:
    err = chat_error(body)
    assert err.param is None
    assert err.code == "invalid_json"


def test_decode_chat_empty_body() -> None:
    err = chat_error(b"")
    assert err.param is None
    assert err.code == "invalid_json"


@pytest.mark.parametrize("body", [b"[]", b"null", b'"text"', b"42"])
def test_decode_chat_non_object_root_has_no_param(body: bytes) -> None:
    err = chat_error(body)
    assert err.param is None
    assert err.code == "invalid_value"


def test_decode_completion_invalid_json_and_empty_body() -> None:
    for body in (b"", b"{"):
        err = completion_error(body)
        assert err.param is None
        assert err.code == "invalid_json"


# --- decode_chat: acceptances -------------------------------------------------------


def test_decode_chat_minimal_request() -> None:
    req = codec.decode_chat(dumps(CHAT))
    assert req.model == "m"
    assert len(req.messages) == 1
    assert req.messages[0].role == "user"
    assert req.messages[0].content == "hi"


def test_decode_chat_tool_choice_object() -> None:
    req = codec.decode_chat(dumps({**CHAT, "tool_choice": {"type": "function", "function": {"name": "f"}}}))
    assert not isinstance(req.tool_choice, str)
    assert req.tool_choice is not None
    assert req.tool_choice is not msgspec.UNSET
    assert req.tool_choice.type == "function"
    assert req.tool_choice.function.name == "f"


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
def test_decode_chat_tool_choice_strings(choice: str) -> None:
    assert codec.decode_chat(dumps({**CHAT, "tool_choice": choice})).tool_choice == choice


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh"])
def test_decode_chat_reasoning_effort_values(effort: str) -> None:
    assert codec.decode_chat(dumps({**CHAT, "reasoning_effort": effort})).reasoning_effort == effort


def test_decode_chat_null_optional_fields() -> None:
    nulls = {
        "stream": None,
        "stream_options": None,
        "max_tokens": None,
        "max_completion_tokens": None,
        "temperature": None,
        "top_p": None,
        "frequency_penalty": None,
        "presence_penalty": None,
        "logit_bias": None,
        "n": None,
        "stop": None,
        "seed": None,
        "user": None,
        "fallbacks": None,
        "logprobs": None,
        "top_logprobs": None,
        "tools": None,
        "tool_choice": None,
        "parallel_tool_calls": None,
        "response_format": None,
        "reasoning_effort": None,
        "service_tier": None,
    }
    req = codec.decode_chat(dumps({**CHAT, **nulls}))
    assert req.temperature is None
    assert req.tool_choice is None
    assert req.stop is None


def test_decode_chat_content_parts() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    req = codec.decode_chat(dumps({**CHAT, "messages": [{"role": "user", "content": content}]}))
    parts = req.messages[0].content
    assert isinstance(parts, list)
    assert [p.type for p in parts] == ["text", "image_url"]


def test_decode_chat_full_conversation_and_boundaries() -> None:
    body = {
        "model": "up/gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "really"},
            {"role": "user", "content": "call f", "name": "bob"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "temperature": 2,
        "top_p": 0,
        "frequency_penalty": -2,
        "presence_penalty": 2,
        "n": 128,
        "stop": ["a", "b", "c", "d"],
        "max_tokens": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
        "fallbacks": ["other/model"],
        "some_future_field": {"anything": [1, 2, 3]},
    }
    req = codec.decode_chat(dumps(body))
    assert req.stream is True
    assert len(req.messages) == 5
    assert req.fallbacks == ["other/model"]


def test_decode_chat_stop_as_string() -> None:
    assert codec.decode_chat(dumps({**CHAT, "stop": "\n"})).stop == "\n"


# --- decode_completion --------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]],
)
def test_decode_completion_prompt_forms(prompt: object) -> None:
    req = codec.decode_completion(dumps({**TEXT, "prompt": prompt}))
    assert req.prompt == prompt


@pytest.mark.parametrize("prompt", [["a", 1], [1, "a"], [[1], 2], [1, [2]], ["a", [1]]])
def test_decode_completion_mixed_prompt_rejected(prompt: list[object]) -> None:
    err = completion_error(dumps({**TEXT, "prompt": prompt}))
    assert err.param == "prompt"
    assert err.code == "invalid_value"


def test_decode_completion_empty_prompt_list_rejected() -> None:
    assert completion_error(dumps({**TEXT, "prompt": []})).param == "prompt"


def test_decode_completion_missing_prompt() -> None:
    assert completion_error(dumps({"model": "m"})).param == "prompt"


def test_decode_completion_missing_model() -> None:
    assert completion_error(dumps({"prompt": "x"})).param == "model"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"best_of": 21}, "best_of"),
        ({"logprobs": 6}, "logprobs"),
        ({"stream": "yes"}, "stream"),
        ({"n": 0}, "n"),
    ],
)
def test_decode_completion_rejects_with_param(change: dict[str, Any], param: str) -> None:
    assert completion_error(dumps({**TEXT, **change})).param == param


def test_decode_completion_null_optional_fields() -> None:
    nulls = {"suffix": None, "echo": None, "best_of": None, "logprobs": None, "max_tokens": None, "stop": None}
    req = codec.decode_completion(dumps({**TEXT, **nulls}))
    assert req.suffix is None
    assert req.max_tokens is None


# --- upstream_body ------------------------------------------------------------------


def test_upstream_body_unchanged_is_same_object() -> None:
    body = b'{"model": "gpt", "messages": [],  "x": 1}'
    assert codec.upstream_body(body, model="gpt", rewrite_model=False, has_gateway_fields=False) is body


def test_upstream_body_swaps_model() -> None:
    body = b'{"model": "up/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    out = codec.upstream_body(body, model="gpt-4o", rewrite_model=True, has_gateway_fields=False)
    data = json.loads(out)
    assert data["model"] == "gpt-4o"
    assert data["messages"] == [{"role": "user", "content": "hi"}]
    assert b"up/gpt-4o" not in out


def test_upstream_body_model_needing_escape() -> None:
    body = b'{"model": "a/b"}'
    out = codec.upstream_body(body, model='we"ird\\name', rewrite_model=True, has_gateway_fields=False)
    assert json.loads(out)["model"] == 'we"ird\\name'


def test_upstream_body_removes_fallbacks() -> None:
    body = b'{"model": "gpt", "fallbacks": ["a/b", "c/d"], "messages": []}'
    out = codec.upstream_body(body, model="gpt", rewrite_model=False, has_gateway_fields=True)
    data = json.loads(out)
    assert "fallbacks" not in data
    assert data == {"model": "gpt", "messages": []}


def test_upstream_body_removes_fallbacks_and_swaps_model() -> None:
    body = b'{"fallbacks": ["x/y"], "model": "up/gpt"}'
    out = codec.upstream_body(body, model="gpt", rewrite_model=True, has_gateway_fields=True)
    assert json.loads(out) == {"model": "gpt"}


def test_upstream_body_keeps_unknown_fields_byte_for_byte() -> None:
    nested = b'{"y": [1,  2],   "z" :"\\u00e9 \\n"}'
    content = b'"caf\\u00e9\\t  spaced"'
    body = (
        b'{"model": "up/gpt", "x": '
        + nested
        + b', "messages": [{"role": "user", "content": '
        + content
        + b'}], "fallbacks": []}'
    )
    out = codec.upstream_body(body, model="gpt", rewrite_model=True, has_gateway_fields=True)
    assert nested in out
    assert content in out
    assert json.loads(out)["x"] == {"y": [1, 2], "z": "\u00e9 \n"}


def test_upstream_body_preserves_key_order() -> None:
    body = b'{"z": 1, "model": "up/gpt", "a": 2}'
    out = codec.upstream_body(body, model="gpt", rewrite_model=True, has_gateway_fields=False)
    assert list(json.loads(out)) == ["z", "model", "a"]


# --- response_head / enrich ---------------------------------------------------------


def test_response_head_reads_id_model_usage() -> None:
    head = codec.response_head(b'{"id": "c1", "model": "gpt", "choices": [], "usage": {"total_tokens": 3}}')
    assert head.id == "c1"
    assert head.model == "gpt"
    assert isinstance(head.usage, msgspec.Raw)
    assert json.loads(bytes(head.usage)) == {"total_tokens": 3}
    assert head.extra_fields is msgspec.UNSET


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"null", b"42", b"{", b"", b"<html>"])
def test_response_head_rejects_non_object(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as exc:
        codec.response_head(body)
    assert exc.value.status == 502
    assert exc.value.code == "upstream_bad_response"


@pytest.mark.parametrize(
    "body", [b"{}", b'{"id": "c1", "model": "gpt", "usage": {"total_tokens": 3}}', b'{"error": {"message": "busy"}}']
)
def test_response_head_rejects_object_without_choices(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as exc:
        codec.response_head(body)
    assert exc.value.status == 502
    assert exc.value.code == "upstream_bad_response"
    assert "choices" in exc.value.message


ENRICH_BODIES = [
    b'{"id": "c1", "object": "chat.completion", "choices": [{"index": 0}], "usage": null}',
    b'{"id":"c1","choices":[]}\n',
    b'{"id": "c1"}  \r\n\t',
    b"{}",
    b"{ }\n",
    b'{\n  "id": "c1"\n}\n',
]


# enrich reads only the head's extra_fields: these bodies need not be whole completions.
NO_EXTRA_FIELDS = ResponseHead(choices=msgspec.Raw(b"[]"))


@pytest.mark.parametrize("body", ENRICH_BODIES)
def test_enrich_adds_extra_fields_keeping_original(body: bytes) -> None:
    out = codec.enrich(body, NO_EXTRA_FIELDS, extra())
    data = json.loads(out)
    original = json.loads(body)
    assert data["extra_fields"] == EXTRA_JSON
    assert {k: v for k, v in data.items() if k != "extra_fields"} == original
    assert out.count(b"extra_fields") == 1


def test_enrich_keeps_choices_bytes() -> None:
    choices = b'"choices": [{"index": 0, "message": {"content":  "a\\u00e9  b"}}]'
    body = b'{"id": "c1", ' + choices + b"}"
    out = codec.enrich(body, codec.response_head(body), extra())
    assert choices in out


def test_enrich_replaces_existing_extra_fields() -> None:
    body = b'{"id": "c1", "extra_fields": {"provider": "inner", "latency": 1}, "choices": []}'
    out = codec.enrich(body, codec.response_head(body), extra())
    assert out.count(b"extra_fields") == 1
    data = json.loads(out)
    assert data["extra_fields"] == EXTRA_JSON
    assert data["id"] == "c1"
    assert data["choices"] == []
    assert b"inner" not in out


def test_enrich_optional_extra_fields_encoded() -> None:
    ex = ExtraFields(
        request_type="chat.completion",
        provider="up",
        model_requested="up/gpt",
        model_deployment="gpt",
        latency=1.0,
        chunk_index=3,
    )
    body = b'{"id": "c1"}'
    data = json.loads(codec.enrich(body, NO_EXTRA_FIELDS, ex))
    assert data["extra_fields"]["chunk_index"] == 3
    assert "raw_request" not in data["extra_fields"]


def test_strip_signatures_removes_gemini_thought_signatures_from_tool_ids_only() -> None:
    sig = "EqQBCgIYAhIM1gbcDa9GJwZA2b3h+/=="
    signed = "call_1|ts:" + sig
    body = json.dumps(
        {
            "model": "up/gpt",
            "messages": [
                {"role": "user", "content": 'id is "x|ts:AAAA" literally |ts:BB'},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": signed, "type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": signed, "content": "18"},
            ],
        }
    ).encode()
    assert codec.SIGNATURE_MARK in body
    out = json.loads(codec.strip_signatures(body))
    assert out["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert out["messages"][2]["tool_call_id"] == "call_1"
    assert out["messages"][0]["content"] == 'id is "x|ts:AAAA" literally |ts:BB'  # content untouched
    plain = b'{"messages":[{"role":"user","content":"hi"}]}'
    assert codec.strip_signatures(plain) == plain


# screen: the byte pre-tests against the exact scans they stand in for.


def test_screen_deep_nesting_is_a_400_from_the_decoder() -> None:
    with pytest.raises(InvalidRequest, match="nested too deeply") as exc:
        codec.decode_chat(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + b"[" * 5000 + b"}")
    assert exc.value.code == "nesting_too_deep"
    codec.decode_chat(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + b"[" * 200 + b"]" * 200 + b"}")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["model", "stream", "user", "mod\\u0065l", "x"]), min_size=1, max_size=4))
def test_screen_read_key_pretest_never_misses_a_repeat(keys: list[str]) -> None:
    body = ("{" + ",".join(f'"{k}":1' for k in keys) + "}").encode()
    repeated = screen.repeated_keys(body) & codec.CHAT_KEYS.names
    if repeated:
        assert codec.CHAT_KEYS.suspect(body)
        with pytest.raises(InvalidRequest) as e:
            screen.check(body, codec.CHAT_KEYS)
        assert e.value.code == "duplicate_key" and e.value.param in repeated


def test_screen_invalid_utf8_names_the_byte() -> None:
    with pytest.raises(InvalidRequest, match="byte 0xc3 at offset 12"):
        codec.decode_chat(b'{"model":"ab\xc3"}')


def test_screen_repeated_key_behind_a_number_json_refuses_is_still_found() -> None:
    # Python's json refuses integers past 4300 digits; msgspec skips one in an unknown
    # field. The exact scan must not read that refusal as "nothing repeated".
    body = b'{"model":"a/x","messages":[{"role":"user","content":"hi"}],"z":' + b"9" * 5000 + b',"model":"b/y"}'
    with pytest.raises(InvalidRequest) as exc:
        codec.decode_chat(body, strict=True)
    assert exc.value.code == "duplicate_key" and exc.value.param == "model"


# --- without_reasoning -------------------------------------------------------------------


def test_without_reasoning_drops_the_messages_reasoning_fields() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "a", "reasoning": "r", "reasoning_signature": "s"},
        {"role": "assistant", "content": None, "tool_calls": [], "reasoning": "r2"},
    ]
    body = codec.encode({"model": "m", "messages": messages, "reasoning_effort": "low"})
    out = json.loads(codec.without_reasoning(body))
    assert out == {
        "model": "m",
        "messages": [
            messages[0],
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
        "reasoning_effort": "low",
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low"},
        # The mark elsewhere: a tool parameter, a top-level field another server reads.
        {"messages": [{"role": "user", "content": "hi"}], "tools": [{"properties": {"reasoning": {}}}]},
        {"messages": [{"role": "user", "content": "hi"}], "reasoning": {"effort": "low"}},
    ],
)
def test_without_reasoning_leaves_other_bodies_as_they_are(fields: dict[str, Any]) -> None:
    body = codec.encode({"model": "m", **fields})
    assert codec.without_reasoning(body) is body
