"""gateway.providers.dialect and the registry: one object per dialect, each with the
URLs, headers, model lists and flags its module had before it became an object."""

from __future__ import annotations

import typing

import msgspec
import pytest

from gateway.config import ProviderConfig
from gateway.providers import anthropic, gemini, mock, openai, responses
from gateway.providers.dialect import Action
from gateway.providers.registry import CONFIGURABLE, DIALECTS


def test_registry_holds_every_configurable_dialect_by_its_name() -> None:
    configurable = typing.get_args(typing.get_type_hints(ProviderConfig)["dialect"])
    assert list(CONFIGURABLE) == list(configurable)
    assert all(d.name == name for name, d in DIALECTS.items())
    assert DIALECTS == {
        "openai": openai.DIALECT,
        "anthropic": anthropic.DIALECT,
        "gemini": gemini.DIALECT,
        "mock": mock.DIALECT,
        "responses": responses.DIALECT,
    }


def test_sdk_only_dialects_serve_no_endpoint_and_are_not_configurable() -> None:
    sdk_only = [name for name in DIALECTS if name not in CONFIGURABLE]
    assert sdk_only == ["responses"]
    d = DIALECTS["responses"]
    assert d.inbound is not None and d.upstream is None and d.translator is None and not d.endpoints
    # Served under every root an OpenAI SDK's base URL may point at.
    assert d.integrations == openai.DIALECT.integrations


@pytest.mark.parametrize(
    ("name", "endpoints", "translated", "url_names_model", "direct_key"),
    [
        ("openai", {"chat", "text", "embeddings"}, False, False, True),
        ("anthropic", {"chat"}, True, False, True),
        ("gemini", {"chat", "embeddings"}, True, True, True),
        ("mock", {"chat", "text", "embeddings"}, False, False, False),  # in-process: no key, no URL
    ],
)
def test_dialect_flags(
    name: str, endpoints: set[str], translated: bool, url_names_model: bool, direct_key: bool
) -> None:
    d = DIALECTS[name]
    assert d.endpoints == endpoints
    assert (d.translated, d.url_names_model, d.direct_key) == (translated, url_names_model, direct_key)
    assert (d.upstream is None) is (name == "mock")
    # Only the dialects with SDK routes of their own translate their SDK's requests.
    assert (d.inbound is not None) is (name in ("anthropic", "gemini"))


def test_config_refuses_an_sdk_only_dialect() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"dialect": "responses", "base_url": "http://x"}, ProviderConfig)


def test_openai_upstream() -> None:
    up = openai.DIALECT.upstream
    assert up is not None
    assert up.urls("https://api.openai.com/v1") == {
        "chat": "https://api.openai.com/v1/chat/completions",
        "text": "https://api.openai.com/v1/completions",
        "embeddings": "https://api.openai.com/v1/embeddings",
        "responses": "https://api.openai.com/v1/responses",
        "responses_input_tokens": "https://api.openai.com/v1/responses/input_tokens",
    }
    assert up.models_path == "/models"
    assert up.request_headers(api_key="sk-1", extra={"X-A": "b"}) == {
        "Content-Type": "application/json",
        "X-A": "b",
        "Authorization": "Bearer sk-1",
    }
    assert up.request_headers(api_key=None, extra={}) == {"Content-Type": "application/json"}
    assert up.model_list(b'{"object":"list","data":[{"id":"gpt-x","object":"model"},{"id":"o9"}]}') == ["gpt-x", "o9"]
    assert openai.urls("http://h/v1") == up.urls("http://h/v1")


def test_anthropic_upstream() -> None:
    up = anthropic.DIALECT.upstream
    assert up is not None
    assert up.urls("https://api.anthropic.com/") == {
        "chat": "https://api.anthropic.com/v1/messages",
        "count_tokens": "https://api.anthropic.com/v1/messages/count_tokens",
    }
    assert up.models_path == "/v1/models"
    assert up.request_headers(api_key="k", extra={"X-A": "b"}) == {
        "Content-Type": "application/json",
        "anthropic-version": anthropic.VERSION,
        "X-A": "b",
        "x-api-key": "k",
    }
    assert up.model_list(b'{"data":[{"id":"claude-x","type":"model"}],"has_more":false}') == ["claude-x"]
    assert anthropic.DIALECT.inbound is not None
    assert anthropic.DIALECT.inbound.forwarded_headers == ("anthropic-beta",)


def test_gemini_upstream_names_the_model_in_its_url() -> None:
    up = gemini.DIALECT.upstream
    assert up is not None
    assert up.urls("https://g") == {}
    base = "https://generativelanguage.googleapis.com"
    assert up.url(base, "chat", model="gemini-2.5-flash", stream=False) == (
        base + "/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert up.url(base, "chat", model="a/b", stream=True) == base + "/v1beta/models/a%2Fb:streamGenerateContent?alt=sse"
    assert up.request_headers(api_key="k", extra={}) == {"Content-Type": "application/json", "x-goog-api-key": "k"}
    assert up.model_list(b'{"models":[{"name":"models/gemini-x"},{"name":"tuned"}]}') == ["gemini-x", "tuned"]
    assert up.url(base, "count_tokens", model="g", stream=False) == base + "/v1beta/models/g:countTokens"
    # model_path inverts url after the models path.
    assert up.model_path("gemini-x:generateContent") == ("gemini-x", Action("chat", stream=False))
    assert up.model_path("gemini-x:streamGenerateContent") == ("gemini-x", Action("chat", stream=True))
    assert up.model_path("gemini-x:countTokens") == ("gemini-x", Action("count_tokens", stream=False))
    assert up.model_path("gemini-x:predict") is None
    assert up.model_path(":generateContent") is None
    # Every embeddings request goes as a batch (providers.gemini.embed).
    assert up.url(base, "embeddings", model="a/b", stream=False) == base + "/v1beta/models/a%2Fb:batchEmbedContents"


def test_model_list_errors_are_msgspec_errors() -> None:
    for d in (openai.DIALECT, gemini.DIALECT):
        assert d.upstream is not None
        with pytest.raises(msgspec.DecodeError):
            d.upstream.model_list(b"<html>")


def test_translators_and_inbound_sides() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}'
    a, g = anthropic.DIALECT.translator, gemini.DIALECT.translator
    assert a is not None and g is not None
    assert a.chat_request(body, model="claude-x") == anthropic.chat_request(body, model="claude-x")
    assert g.chat_request(body, model="gem-x") == gemini.chat_request(body)
    assert a.stream_error is anthropic.StreamError and g.stream_error is gemini.StreamError
    assert a.error_body(529, b"{}") == anthropic.error_body(529, b"{}")
    assert g.error_body(503, b"{}") == gemini.error_body(503, b"{}")
    ai, gi = anthropic.DIALECT.inbound, gemini.DIALECT.inbound
    assert ai is not None and gi is not None
    assert ai.to_openai(body, model="", stream=False) == anthropic.messages_request(body)[0]
    contents = b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'
    assert gi.to_openai(contents, model="g", stream=True) == gemini.generate_request(contents, model="g", stream=True)
    assert ai.error_fields(429, message="m", kind="rate_limit_error", param=None, code="c") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "m", "param": None, "code": "c"},
    }
    assert gi.error_fields(404, message="m", kind="not_found_error", param="model", code=None) == {
        "error": {"code": 404, "message": "m", "status": "NOT_FOUND", "type": "not_found_error", "param": "model"}
    }
