"""The official openai SDK pointed at the gateway, through every drop-in prefix, with a
separate ``gateway mock`` process as the upstream (the relay path) and the in-process
mock provider."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import Proc, sdk_client

PREFIXES = ["/v1", "/openai/v1", "/openai", "/langchain/v1", "/pydanticai/v1"]
MESSAGES: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say something."}]


def client(gateway: Proc, prefix: str) -> openai.OpenAI:
    client: openai.OpenAI = sdk_client(gateway.url + prefix)
    return client


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sdk_chat_unary_through_upstream(gateway: Proc, prefix: str) -> None:
    c = client(gateway, prefix).chat.completions.create(model="up/gpt-x", messages=MESSAGES, max_tokens=5, seed=2)
    assert c.object == "chat.completion"
    assert c.model == "gpt-x"  # the upstream saw the provider prefix removed
    assert c.choices[0].finish_reason == "length"
    assert c.choices[0].message.content == "relays every token as it"
    assert c.usage is not None and c.usage.completion_tokens == 5
    assert c.usage.total_tokens == c.usage.prompt_tokens + 5
    extra = (c.model_extra or {})["extra_fields"]
    assert extra["provider"] == "up"
    assert extra["model_requested"] == "up/gpt-x"
    assert extra["model_deployment"] == "gpt-x"
    assert extra["request_type"] == "chat_completion"
    assert extra["latency"] > 0
    assert "raw_request" not in extra and "raw_response" not in extra


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sdk_chat_stream_through_upstream(gateway: Proc, prefix: str) -> None:
    sdk = client(gateway, prefix)
    unary = sdk.chat.completions.create(model="up/gpt-x", messages=MESSAGES, max_tokens=7)
    chunks = list(sdk.chat.completions.create(model="up/gpt-x", messages=MESSAGES, max_tokens=7, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == unary.choices[0].message.content
    assert len(chunks) == 1 + 7 + 1  # role, seven tokens, finish
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)


def test_sdk_chat_stream_with_usage(gateway: Proc) -> None:
    chunks = list(
        client(gateway, "/v1").chat.completions.create(
            model="up/gpt-x", messages=MESSAGES, max_tokens=3, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sdk_text_completion_unary_and_stream(gateway: Proc, prefix: str) -> None:
    sdk = client(gateway, prefix)
    c = sdk.completions.create(model="up/gpt-instruct", prompt="Once upon a time", max_tokens=4)
    assert c.object == "text_completion"
    assert c.choices[0].text == "the gateway relays every"
    assert (c.model_extra or {})["extra_fields"]["request_type"] == "text_completion"
    streamed = "".join(
        ch.choices[0].text
        for ch in sdk.completions.create(model="up/gpt-instruct", prompt="Once upon a time", max_tokens=4, stream=True)
    )
    assert streamed == c.choices[0].text


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sdk_models_list(gateway: Proc, prefix: str) -> None:
    ids = {m.id for m in client(gateway, prefix).models.list()}
    # From the in-process mock's config and from the upstream's own GET /models.
    assert {"mock/mock-chat", "mock/mock-instruct", "up/mock-chat", "slow/mock-chat"} <= ids
    # Unreachable providers are left out, not fatal.
    assert not any(i.startswith(("down/", "nodns/")) for i in ids)


def test_sdk_in_process_mock_provider(gateway: Proc) -> None:
    sdk = client(gateway, "/v1")
    c = sdk.chat.completions.create(model="mock/anything", messages=MESSAGES, max_tokens=3)
    assert c.choices[0].message.content == "the gateway relays"
    assert (c.model_extra or {})["extra_fields"]["provider"] == "mock"
    chunks = list(sdk.completions.create(model="mock/anything", prompt="x", max_tokens=3, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == "the gateway relays"


def test_sdk_upstream_error_status_raises_typed_error(gateway: Proc) -> None:
    sdk = client(gateway, "/v1")
    with pytest.raises(openai.RateLimitError) as e:
        sdk.chat.completions.create(model="up/x", messages=MESSAGES, extra_body={"mock": {"fail_status": 429}})
    assert "injected HTTP 429" in str(e.value)
    with pytest.raises(openai.InternalServerError):
        list(
            sdk.chat.completions.create(
                model="up/x", messages=MESSAGES, stream=True, extra_body={"mock": {"fail_status": 503}}
            )
        )


def test_sdk_mid_stream_reset_raises(gateway: Proc) -> None:
    stream = client(gateway, "/v1").chat.completions.create(
        model="up/x", messages=MESSAGES, stream=True, extra_body={"mock": {"tokens": 10, "reset_after": 3}}
    )
    got = []
    with pytest.raises(openai.APIError) as e:
        for ch in stream:
            got.append(ch)
    assert len(got) == 3
    assert "closed the connection" in str(e.value) or "broken body" in str(e.value)
