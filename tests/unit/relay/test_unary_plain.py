"""The fused splice of the common unary answer (``unary._plain``) gives exactly what the
general path (``account`` + ``codec.enrich``) gives, latency aside, for every usage shape
an upstream sends, and charges the call and the metrics alike."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from gateway import codec
from gateway.accounting.pricing import Price
from gateway.metrics import Metrics
from gateway.relay import unary
from gateway.relay.call import Call
from tests.unit.relay.calls import make_call

PRICE = Price(input=2e-6, output=8e-6, cache_read=None, request=0.0)

ANSWERS = [
    # compact, as OpenAI and the mock send it
    b'{"id":"c1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,'
    b'"total_tokens":10}}',
    # usage not last, nested details, spaces and a trailing newline
    b'{"id": "c2", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,'
    b' "prompt_tokens_details": {"cached_tokens": 2}}, "model": "m"}\n',
    # the same usage object twice (a quoted echo before the real one)
    b'{"id":"c3","choices":[],"echo":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10},'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}',
    # an upstream that priced the request itself: its cost is kept
    b'{"id":"c4","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"cost":0.5}}',
    # space before the usage object's closing brace; non-ASCII content, raw and escaped
    b'{"id":"c5","choices":[{"message":{"content":"h\xc3\xa9 \\u00e9 \xf0\x9f\x98\x80"}}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10 } }',
    # usage first, the answer's own closing brace after a newline and spaces
    b'{"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10},"choices":[]\n  }\r\n',
]


def call_and_target(*, priced: bool, model: str = "gpt-x") -> tuple[Call, Any, Metrics]:
    metrics = Metrics()
    provider = SimpleNamespace(
        name="up",
        pricing=SimpleNamespace(lookup=lambda model: PRICE if priced else None),
        dialect="openai",
        translated=False,
    )
    target = SimpleNamespace(provider=provider, model=model, rewrite=False, native=False)
    call = make_call([(target, b"{}")], metrics=metrics, requested=f"up/{model}")
    return call, target, metrics


def without_latency(data: bytes) -> Any:
    out = json.loads(data)
    assert isinstance(out["extra_fields"].pop("latency"), float)
    return out


def gateway_samples(metrics: Metrics) -> list[bytes]:
    """The exposition's gateway_* lines (the process_* ones move by themselves)."""
    return [line for line in metrics.exposition()[0].splitlines() if line.startswith(b"gateway_")]


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("priced", [True, False])
@pytest.mark.parametrize("model", ["gpt-x", 'モデル-ü "q"'])
def test_plain_equals_general_path(answer: bytes, priced: bool, model: str) -> None:
    call_a, target_a, metrics_a = call_and_target(priced=priced, model=model)
    head = codec.response_head(answer)
    usage_raw = bytes(head.usage)
    general, estimated = unary.account(call_a, target_a, answer, usage_raw)
    general = codec.enrich(general, head, call_a.extra_fields(target_a, estimated=estimated))

    call_b, target_b, metrics_b = call_and_target(priced=priced, model=model)
    fused = unary._plain(call_b, target_b, answer, usage_raw)

    assert without_latency(fused) == without_latency(general)
    assert (
        (call_b.used_tokens, call_b.used_cost)
        == (call_a.used_tokens, call_a.used_cost)
        == (
            10,
            pytest.approx(7 * 2e-6 + 3 * 8e-6) if priced else None,
        )
    )
    assert gateway_samples(metrics_b) == gateway_samples(metrics_a)


@pytest.mark.parametrize("priced", [True, False])
def test_plain_empty_usage_before_the_same_bytes_in_a_string(priced: bool) -> None:
    """An empty usage object first and ``"{}"`` later inside a tool call's arguments: the
    cost goes into the usage, the answer stays JSON, as on the general path."""
    answer = b'{"id":"c6","usage":{},"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}'
    call_a, target_a, _ = call_and_target(priced=priced)
    head = codec.response_head(answer)
    general, estimated = unary.account(call_a, target_a, answer, b"{}")
    general = codec.enrich(general, head, call_a.extra_fields(target_a, estimated=estimated))
    call_b, target_b, _ = call_and_target(priced=priced)
    fused = without_latency(unary._plain(call_b, target_b, answer, b"{}"))
    assert fused == without_latency(general)
    assert fused["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_plain_extra_fields_prefix_is_per_model_and_escaped() -> None:
    call, target, _ = call_and_target(priced=True)
    call.requested = 'odd "name"\\'
    out = json.loads(b"{%s}" % (b'"extra_fields":' + call.plain_extra_fields(target)))
    assert out["extra_fields"]["model_requested"] == 'odd "name"\\'
    assert out["extra_fields"]["model_deployment"] == "gpt-x"
    call.requested = "other"
    assert json.loads(call.plain_extra_fields(target))["model_requested"] == "other"
