"""gateway.server.plan: one request's targets, their bodies and its options, for the
OpenAI routes, the SDK drop-in routes and async jobs alike. The providers are the real
ones (nothing is sent: a plan is made before the first attempt)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from msgspec import UNSET

from gateway import codec
from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices
from gateway.accounting.tokens import Tokenizers
from gateway.config import KeyConfig, ProviderConfig
from gateway.errors import GatewayError, InvalidRequest
from gateway.metrics import Metrics
from gateway.providers.registry import DIALECTS
from gateway.relay.call import NO_OPTIONS, Call
from gateway.routing.providers import build
from gateway.routing.table import ModelTable
from gateway.server.plan import Planner
from gateway.upstream.client import Timeouts

LEDGER = Ledger(metrics=Metrics(), tokenizers=Tokenizers())
URL = "http://127.0.0.1:9"  # never reached
PROVIDERS = {
    "oa": ProviderConfig(dialect="openai", base_url=URL + "/v1", keys=(KeyConfig(value="sk-oa", name="main"),)),
    "oa2": ProviderConfig(dialect="openai", base_url=URL + "/v1", keys=(KeyConfig(value="sk-oa2"),)),
    "an": ProviderConfig(dialect="anthropic", base_url=URL, keys=(KeyConfig(value="sk-an"),)),
    "ge": ProviderConfig(dialect="gemini", base_url=URL, keys=(KeyConfig(value="sk-ge"),)),
    "mock": ProviderConfig(dialect="mock"),
}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def planner() -> Planner:
    genai = GenaiPrices()
    built = {n: build(n, c, session=None, genai=genai, ledger=LEDGER) for n, c in PROVIDERS.items()}  # type: ignore[arg-type]
    return Planner(ModelTable(built, default="oa", aliases={}), ledger=LEDGER, direct_keys=True)


def request(headers: dict[str, str] | None = None, path: str = "/v1/chat/completions") -> web.BaseRequest:
    return make_mocked_request("POST", path, headers={"Content-Type": "application/json", **(headers or {})})


def openai(planner: Planner, fields: dict[str, Any], headers: dict[str, str] | None = None, **kw: Any) -> Call:
    body = json.dumps({"messages": MESSAGES, **fields}).encode()
    req = codec.decode_chat(body, strict=False)
    return planner.openai(request(headers), body, req, endpoint="chat", t0=0.0, stream=bool(req.stream), **kw)


def upstream(call: Call, i: int) -> dict[str, Any]:
    body = call.targets[i][1]
    assert isinstance(body, bytes), body
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def test_plan_model_and_fallbacks_become_targets_in_order(planner: Planner) -> None:
    call = openai(planner, {"model": "oa/gpt-x", "fallbacks": ["oa2/gpt-y", "an/claude-x"], "x_vendor": 1})
    assert [(t.provider.name, t.model) for t, _ in call.targets] == [
        ("oa", "gpt-x"),
        ("oa2", "gpt-y"),
        ("an", "claude-x"),
    ]
    # OpenAI targets: the client's fields, the model swapped, the gateway's own removed.
    for i, model in ((0, "gpt-x"), (1, "gpt-y")):
        sent = upstream(call, i)
        assert sent["model"] == model and sent["x_vendor"] == 1 and "fallbacks" not in sent
    # The Anthropic fallback gets the request translated into its dialect.
    sent = upstream(call, 2)
    assert sent["model"] == "claude-x" and "max_tokens" in sent and sent["messages"][0]["role"] == "user"
    assert call.requested == "oa/gpt-x" and call.request_type == "chat_completion" and call.client is None
    assert call.ledger is LEDGER and call.body.startswith(b'{"messages"')


def test_plan_common_request_shares_no_options(planner: Planner) -> None:
    call = openai(planner, {"model": "oa/gpt-x"})
    assert call.options is NO_OPTIONS
    assert upstream(call, 0)["model"] == "gpt-x"


def test_plan_fallback_whose_dialect_cannot_take_the_request_holds_its_error(planner: Planner) -> None:
    call = openai(planner, {"model": "oa/gpt-x", "fallbacks": ["an/claude-x"], "logit_bias": {"1": 2}})
    assert isinstance(call.targets[0][1], bytes)
    err = call.targets[1][1]
    assert isinstance(err, InvalidRequest)
    assert err.message.startswith("fallbacks[0] (an): ") and "logit_bias" in err.message


def test_plan_primary_whose_dialect_cannot_take_the_request_holds_its_error_unprefixed(planner: Planner) -> None:
    call = openai(planner, {"model": "an/claude-x", "fallbacks": ["oa/gpt-x"], "logit_bias": {"1": 2}})
    err = call.targets[0][1]
    assert isinstance(err, InvalidRequest) and not err.message.startswith("model")
    assert isinstance(call.targets[1][1], bytes)


def test_plan_endpoint_not_served_is_a_400_naming_the_model(planner: Planner) -> None:
    body = json.dumps({"model": "oa/gpt-x", "prompt": "hi", "fallbacks": ["an/claude-x"]}).encode()
    req = codec.decode_completion(body, strict=False)
    with pytest.raises(InvalidRequest) as info:
        planner.openai(request(), body, req, endpoint="text", t0=0.0, stream=False)
    assert info.value.param == "fallbacks[0]" and info.value.code == "unsupported_endpoint"


def test_plan_stream_asks_upstream_for_usage_the_client_did_not(planner: Planner) -> None:
    call = openai(planner, {"model": "oa/gpt-x", "stream": True})
    assert call.request_type == "chat_completion_stream" and call.client_usage is False
    assert upstream(call, 0)["stream_options"] == {"include_usage": True}
    asked = openai(planner, {"model": "oa/gpt-x", "stream": True, "stream_options": {"include_usage": True}})
    assert asked.client_usage is True


def test_plan_options_are_read_and_checked_against_the_targets(planner: Planner) -> None:
    call = openai(planner, {"model": "oa/gpt-x"}, {"x-bf-api-key": "main", "x-bf-request-timeout": "5"})
    assert call.options.pinned_key == "main" and call.options.timeouts == Timeouts(5.0, None)
    with pytest.raises(InvalidRequest) as info:
        openai(planner, {"model": "oa2/gpt-x"}, {"x-bf-api-key": "main"})
    assert info.value.code == "unknown_key"


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model": "mock/gpt-x"}, "direct_key_unsupported", "model"),
        ({"model": "oa/gpt-x", "fallbacks": ["oa/gpt-y", "oa2/gpt-x"]}, "direct_key_one_provider", "fallbacks[1]"),
    ],
)
def test_plan_client_key_goes_to_one_http_provider(
    planner: Planner, fields: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(GatewayError) as info:
        openai(planner, fields, {"x-bf-direct-key": "true", "x-api-key": "sk-client"})
    assert info.value.code == code and info.value.param == param
    ok = openai(
        planner, {"model": "oa/gpt-x", "fallbacks": ["oa/gpt-y"]}, {"x-bf-direct-key": "true", "x-api-key": "k"}
    )
    assert ok.options.direct_key == "k"


def test_plan_bad_model_is_reported_before_a_bad_header(planner: Planner) -> None:
    with pytest.raises(InvalidRequest) as info:
        openai(planner, {"model": "oa/"}, {"x-bf-request-timeout": "never"})
    assert info.value.param == "model"


ANTHROPIC_BODY = {"model": "an/claude-x", "max_tokens": 8, "messages": MESSAGES, "x_vendor": {"a": 1}}


def dropin(planner: Planner, client: str, fields: dict[str, Any], *, model: str, **headers: str) -> Call:
    body = json.dumps(fields).encode()
    fallbacks = fields.get("fallbacks", UNSET)
    wire = DIALECTS[client]
    return planner.dropin(request(headers), wire, body, model=model, fallbacks=fallbacks, stream=False, t0=0.0)


def test_plan_dropin_same_dialect_passes_the_clients_bytes(planner: Planner) -> None:
    call = dropin(planner, "anthropic", {**ANTHROPIC_BODY, "fallbacks": ["oa/gpt-x"]}, model="an/claude-x")
    assert call.client is DIALECTS["anthropic"] and call.client_usage is True and call.request_type == "chat_completion"
    native = upstream(call, 0)
    # The client's own fields, unknown ones included; the gateway's fallbacks removed.
    assert native == {"model": "claude-x", "max_tokens": 8, "messages": MESSAGES, "x_vendor": {"a": 1}}
    # Another dialect gets the request in OpenAI's form, which is also what the call counts from.
    translated = upstream(call, 1)
    assert translated["model"] == "gpt-x" and translated["messages"] == MESSAGES
    assert json.loads(call.body) == {"model": "an/claude-x", "messages": MESSAGES, "max_completion_tokens": 8}


def test_plan_dropin_untranslatable_request_still_passes_to_its_own_dialect(planner: Planner) -> None:
    fields = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "cachedContent": "c1", "fallbacks": ["oa/m"]}
    call = dropin(planner, "gemini", fields, model="ge/gemini-x")
    native = upstream(call, 0)
    assert native["cachedContent"] == "c1" and "model" not in native and "fallbacks" not in native
    err = call.targets[1][1]
    assert isinstance(err, InvalidRequest) and "cachedContent" in err.message
    assert call.body.startswith(b'{"contents"')  # nothing translated: the client's bytes


def test_plan_dropin_forwards_anthropic_beta(planner: Planner) -> None:
    call = dropin(planner, "anthropic", ANTHROPIC_BODY, model="an/claude-x", **{"anthropic-beta": "b1"})
    assert call.options.extra_headers == (("anthropic-beta", "b1"),)
    assert NO_OPTIONS.extra_headers == ()
    own = dropin(
        planner,
        "anthropic",
        ANTHROPIC_BODY,
        model="an/claude-x",
        **{"anthropic-beta": "b1", "x-bf-eh-anthropic-beta": "b2"},
    )
    assert own.options.extra_headers == (("anthropic-beta", "b2"),)
    assert dropin(planner, "gemini", {"contents": []}, model="ge/g", **{"anthropic-beta": "b1"}).options is NO_OPTIONS
