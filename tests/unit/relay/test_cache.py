"""The response cache's pure parts: the canonical request key, the rules' overrides, and
a kept answer turned from one form into the other (``relay.replay``)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from gateway.config import CacheConfig, CacheRuleConfig
from gateway.relay.cache import Rule
from gateway.relay.cachekey import canonical, direct_key
from gateway.relay.replay import assemble, split_answer
from tests.unit.relay.calls import make_call


def _target(provider: str = "up", model: str = "gpt-x") -> Any:
    return SimpleNamespace(provider=SimpleNamespace(name=provider), model=model)


def _key(body: str, *, target: Any = None, namespace: str | None = "ns", caller: str | None = "c") -> str:
    call = make_call([(target or _target(), b"{}")], body=body.encode())
    return direct_key(call, namespace=namespace, caller=caller)


BASE = '{"model":"gpt-x","temperature":0.5,"messages":[{"role":"user","content":"hi"}]}'


def test_cache_key_ignores_key_order_spacing_and_number_spelling() -> None:
    same = '{ "messages": [ { "content": "hi", "role": "user" } ],\n "temperature": 0.50, "model": "gpt-x" }'
    assert _key(same) == _key(BASE)


@pytest.mark.parametrize(
    "extra",
    ['"stream":true', '"stream_options":{"include_usage":true}', '"user":"u"', '"metadata":{"a":"b"}', '"store":true'],
)
def test_cache_key_ignores_fields_that_do_not_change_the_answer(extra: str) -> None:
    assert _key(BASE[:-1] + "," + extra + "}") == _key(BASE)


@pytest.mark.parametrize(
    "changed",
    [
        BASE.replace("0.5", "0.7"),
        BASE.replace('"hi"', '"hello"'),
        BASE[:-1] + ',"max_tokens":5}',
        BASE[:-1] + ',"unknown_field":1}',
    ],
)
def test_cache_key_changes_with_what_changes_the_answer(changed: str) -> None:
    assert _key(changed) != _key(BASE)


def test_cache_key_holds_target_namespace_and_caller() -> None:
    k = _key(BASE)
    assert _key(BASE, target=_target(model="gpt-y")) != k
    assert _key(BASE, target=_target(provider="other")) != k
    assert _key(BASE, namespace="other") != k
    assert _key(BASE, caller="other") != k
    assert len(k) == 32 and int(k, 16) >= 0


def test_cache_key_of_the_model_named_through_an_alias_is_the_target() -> None:
    aliased = BASE.replace('"gpt-x"', '"fast"')
    assert _key(aliased) == _key(BASE)  # the body's model is replaced by the resolved target


def test_cache_canonical_is_sorted_compact_json() -> None:
    out = canonical(b'{"b": 1, "a": {"d": 2, "c": [3, 1]}, "user": "x"}')
    assert out == b'{"a":{"c":[3,1],"d":2},"b":1}'


def test_cache_rule_overrides_provider_then_model() -> None:
    cfg = CacheConfig(
        enabled=False,
        ttl_s=60,
        providers={"up": CacheRuleConfig(enabled=True, ttl_s=120)},
        models={"up/gpt-x": CacheRuleConfig(every_request=True)},
    )
    rule = Rule(cfg, cfg.providers.get("up"), cfg.models.get("up/gpt-x"))
    assert (rule.enabled, rule.ttl_s, rule.every_request, rule.threshold) == (True, 120, True, 0.8)
    other = Rule(cfg, cfg.providers.get("down"), None)
    assert (other.enabled, other.ttl_s, other.every_request) == (False, 60, False)


CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 7,
    "model": "gpt-x",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        },
        {
            "index": 1,
            "message": {"role": "assistant", "content": "two words"},
            "logprobs": None,
            "finish_reason": "stop",
        },
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def test_cache_split_then_assembled_is_the_answer() -> None:
    frames = split_answer(CHAT, text=False)
    assert frames[-1] == b"data: [DONE]\n\n" and all(f.endswith(b"\n\n") for f in frames)
    assert assemble(frames, text=False) == CHAT


def test_cache_text_completion_round_trip() -> None:
    text = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "abc", "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    assert assemble(split_answer(text, text=True), text=True) == text


def test_cache_assemble_adds_up_streamed_deltas_and_tool_calls() -> None:
    def frame(choices: list[dict[str, Any]], **more: Any) -> bytes:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 2, "model": "m", "choices": choices, **more}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    call = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "g", "arguments": '{"x"'}}
    regions = [
        frame([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}])
        + frame([{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]),
        frame([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]),
        frame([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]),
        frame([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        frame([], usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}) + b"data: [DONE]\n\n",
    ]
    out = assemble(regions, text=False)
    message = out["choices"][0]["message"]
    assert message["content"] == "Hello"
    assert message["tool_calls"] == [
        {"id": "call_9", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}}
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["total_tokens"] == 3
    msgspec.json.encode(out)  # encodable as it stands


def _hit(body: bytes, usage: bytes) -> tuple[Any, Any, Any]:
    from gateway.relay.cache import CacheTicket, Entry

    entry = Entry(stream=False, body=body, frames=[], gaps_s=[], usage=usage, provider="up", model="gpt-x", text=False)
    ticket = CacheTicket(SimpleNamespace(), "id", "ns", ttl_s=1.0, keep=False)  # type: ignore[arg-type]
    ticket.entry = entry
    call = make_call([(_target(), b"{}")])
    return call, ticket, entry


@pytest.mark.parametrize(
    ("body", "usage"),
    [
        (b'{"id":"a","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}', None),
        (b'{"id":"a","usage":{"prompt_tokens":1,"details":{"cached_tokens":0}},"system_fingerprint":"x"}', None),
        (b'{"id":"a","usage":{}}', None),
        # nested values kept with the upstream's spacing (keep_unary encodes the top level only)
        (b'{"id":"a","usage":{"prompt_tokens":1,"details":{ "cached_tokens" : 0 }}}', None),
        (b'{"id":"a","usage":null}', b""),
        # an empty usage, and the same bytes later inside a string
        (b'{"id":"a","usage":{},"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}', b"{}"),
        # the same object as the usage nested after it
        (b'{"id":"a","usage":{"n":1},"x":{"n":1}}', None),
        (b'{"id":"a","choices":[{"message":{"content":"{\\"usage\\":1}"}}]}', b""),
    ],
)
def test_cache_unary_hit_spliced_equals_decoded_and_encoded(
    body: bytes, usage: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hit's answer built by splicing cost and extra_fields into the kept bytes is
    the answer decoding and encoding them builds, byte for byte."""
    from gateway.relay import hit
    from gateway.relay.call import Call

    monkeypatch.setattr(Call, "latency_ms", lambda self: 1.5)  # both answers built alike

    if usage is None:
        usage = bytes(msgspec.json.decode(body, type=dict[str, msgspec.Raw])["usage"])
    call, ticket, entry = _hit(body, usage)
    spliced = hit.unary_answer(call, ticket)
    assert spliced == hit._rebuilt(call, ticket, entry)
    out = json.loads(spliced)
    assert out["extra_fields"]["cache_debug"]["cache_id"] == "id"
    if usage not in (b"", b"null"):
        assert out["usage"]["cost"] == {"input_tokens_cost": 0.0, "output_tokens_cost": 0.0, "total_cost": 0.0}


def test_cache_key_digests_are_remembered_by_bytes_and_bounded() -> None:
    """The canonical digest is remembered by the body's exact bytes (a reordered body is
    computed, and equal); the bodies remembered never pass the byte bound."""
    from gateway.relay.cachekey import _Digests

    d = _Digests(max_bytes=1000, max_body=500)
    first = d.of(BASE.encode())
    assert d.of(BASE.encode()) is first  # remembered, not computed again
    same = '{"temperature":0.5,"messages":[{"content":"hi","role":"user"}],"model":"gpt-x"}'
    assert d.of(same.encode()) == first
    for i in range(200):
        d.of(BASE.replace("hi", f"hi {i}").encode())
        assert d._bytes <= 1000 and sum(len(b) for b in d._by_body) == d._bytes
    big = BASE.replace("hi", "x" * (501)).encode()
    assert d.of(big) == d.of(big) and big not in d._by_body
