"""A stream's usage reaches the client exactly once, whether or not it asked for it:
the official openai SDK and LangChain's ``ChatOpenAI`` against a real gateway, whose
upstream is a ``gateway mock`` process speaking OpenAI's, Anthropic's and Gemini's wire
formats (the last two translated by the gateway), with usage reported or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import BaseMessageChunk
from langchain_openai import ChatOpenAI

from gateway.accounting.tokens import Tokenizers
from tests.conftest import Proc, metric, serve_config, start_mock

KEY = "sk-usage-upstream-0123456789"
MESSAGES: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to ten."}]
GPT4O_MINI_OUTPUT = 0.6e-6  # USD per output token, OpenAI's list price


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("usage-up"), "--api-key", KEY)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    key = [{"value": "env.USAGE_UPSTREAM_KEY"}]
    providers = {
        "priced": {"base_url": up.url + "/v1", "keys": key, "pricing_provider": "openai"},
        # Counts streams itself, as for a server that reports no usage; unpriced.
        "counting": {"base_url": up.url + "/v1", "keys": key, "stream_usage": "count"},
        # Translated both ways by the gateway: the mock speaks these dialects too.
        "claude": {"dialect": "anthropic", "base_url": up.url, "keys": key, "pricing_provider": "anthropic"},
        "gem": {"dialect": "gemini", "base_url": up.url, "keys": key, "pricing_provider": "google"},
    }
    proc = serve_config({"providers": providers}, tmp_path_factory.mktemp("usage-gw"), env={"USAGE_UPSTREAM_KEY": KEY})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sdk(gw: Proc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=20) as client:
        yield client


def extra(obj: Any) -> dict[str, Any]:
    fields: dict[str, Any] = (obj.model_extra or {})["extra_fields"]
    return fields


def with_usage(chunks: list[Any]) -> list[Any]:
    return [ch for ch in chunks if ch.usage is not None]


def wire_usages(gw: Proc, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream's data frames as sent, those whose ``usage`` is not null: what a client
    that sums usage over chunks (as LangChain does) adds up."""
    r = httpx.post(gw.url + path, json={**body, "stream": True}, timeout=20)
    assert r.status_code == 200
    frames = [f[6:] for f in r.text.split("\n\n") if f.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1] if json.loads(f).get("usage") is not None]


def chat(sdk: openai.OpenAI, model: str, *, asked: bool, **kw: Any) -> list[Any]:
    options = {"stream_options": {"include_usage": True}} if asked else {}
    return list(sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True, **options, **kw))


# --- the client did not ask: usage on the final chunk, with the finish and extra_fields ------


def test_stream_usage_on_finish_chunk_client_did_not_ask_for(sdk: openai.OpenAI, gw: Proc) -> None:
    chunks = chat(sdk, "priced/gpt-4o-mini", asked=False, max_tokens=6)
    (final,) = with_usage(chunks)
    assert final is chunks[-1]
    assert final.choices and final.choices[0].finish_reason == "length"
    assert final.usage is not None and final.usage.completion_tokens == 6
    assert final.usage.total_tokens == final.usage.prompt_tokens + 6
    cost = (final.usage.model_extra or {})["cost"]
    assert cost["output_tokens_cost"] == pytest.approx(6 * GPT4O_MINI_OUTPUT)
    assert extra(final)["chunk_index"] == len(chunks) - 1
    assert "usage_estimated" not in extra(final)
    assert all(ch.choices for ch in chunks)  # no usage-only chunk
    # On the wire: one frame with a usage object, every other one without.
    body = {"model": "priced/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 6}
    assert [u["usage"]["completion_tokens"] for u in wire_usages(gw, "/v1/chat/completions", body)] == [6]


def test_stream_usage_chunk_once_client_asked_for(sdk: openai.OpenAI, gw: Proc) -> None:
    chunks = chat(sdk, "priced/gpt-4o-mini", asked=True, max_tokens=6)
    (final,) = with_usage(chunks)
    # OpenAI's shape: a last chunk with no choices carries the usage; the finish chunk none.
    assert final is chunks[-1] and final.choices == []
    assert chunks[-2].choices[0].finish_reason == "length"
    assert final.usage is not None and final.usage.completion_tokens == 6
    assert "cost" in (final.usage.model_extra or {})
    assert extra(final)["chunk_index"] == len(chunks) - 1
    body = {"model": "priced/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 6}
    assert len(wire_usages(gw, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}})) == 1


@pytest.mark.parametrize("asked", [False, True])
def test_stream_text_completion_usage_once(sdk: openai.OpenAI, asked: bool) -> None:
    options = {"stream_options": {"include_usage": True}} if asked else {}
    model = "priced/gpt-3.5-turbo-instruct"
    chunks = list(sdk.completions.create(model=model, prompt="Once upon", max_tokens=4, stream=True, **options))
    (final,) = with_usage(chunks)
    assert final is chunks[-1]
    assert final.usage is not None and final.usage.completion_tokens == 4
    assert "cost" in (final.usage.model_extra or {})
    assert extra(final)["request_type"] == "text_completion_stream"
    if asked:
        assert final.choices == [] and chunks[-2].choices[0].finish_reason == "length"
    else:
        assert final.choices[0].finish_reason == "length"


# --- translated upstreams --------------------------------------------------------------


@pytest.mark.parametrize("asked", [False, True])
@pytest.mark.parametrize("model", ["claude/claude-3-5-haiku-latest", "gem/gemini-2.0-flash"])
def test_stream_translated_upstream_usage_once(sdk: openai.OpenAI, model: str, asked: bool) -> None:
    chunks = chat(sdk, model, asked=asked, max_tokens=9)
    (final,) = with_usage(chunks)
    assert final is chunks[-1]
    assert final.usage is not None and final.usage.completion_tokens == 9 and final.usage.prompt_tokens > 0
    assert "cost" in (final.usage.model_extra or {})
    assert extra(final)["provider"] == model.split("/")[0]
    finishes = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert [ch.choices[0].finish_reason for ch in finishes] == ["length"]
    assert (finishes[-1] is final) is not asked


# --- an upstream that reports no usage: counted, once --------------------------------------


@pytest.mark.parametrize("asked", [False, True])
def test_stream_counted_usage_once_when_upstream_reports_none(sdk: openai.OpenAI, asked: bool) -> None:
    chunks = chat(sdk, "counting/gpt-4o", asked=asked, extra_body={"mock": {"usage": False, "tokens": 25}})
    (final,) = with_usage(chunks)
    assert final is chunks[-1]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert final.usage is not None and final.usage.completion_tokens == Tokenizers().for_model("gpt-4o").count(text)
    assert extra(final)["usage_estimated"] is True
    assert (final.choices == []) is asked
    if not asked:
        assert final.choices[0].finish_reason == "stop"


# --- LangChain: ChatOpenAI with a custom base_url sums usage over the chunks ----------------


def langchain(gw: Proc, model: str, **kw: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=gw.url + "/v1", api_key="x", model=model, max_retries=0, timeout=20, **kw)  # type: ignore[arg-type]


def aggregate(llm: ChatOpenAI, prompt: str) -> BaseMessageChunk:
    whole: BaseMessageChunk | None = None
    for chunk in llm.stream(prompt):
        whole = chunk if whole is None else whole + chunk
    assert whole is not None
    return whole


@pytest.mark.parametrize("stream_usage", [None, True])
def test_langchain_stream_usage_metadata_not_doubled(gw: Proc, stream_usage: bool | None) -> None:
    llm = langchain(gw, "priced/gpt-4o-mini", max_tokens=7, streaming=True, stream_usage=stream_usage)
    reported = llm.invoke("Count to ten.").usage_metadata  # the mock's counts, unary
    assert reported is not None and reported["output_tokens"] == 7
    streamed = aggregate(llm, "Count to ten.")
    assert streamed.usage_metadata is not None  # type: ignore[attr-defined]
    got = streamed.usage_metadata  # type: ignore[attr-defined]
    assert (got["input_tokens"], got["output_tokens"], got["total_tokens"]) == (
        reported["input_tokens"],
        reported["output_tokens"],
        reported["total_tokens"],
    )


def test_langchain_stream_usage_metadata_translated_upstream(gw: Proc) -> None:
    streamed = aggregate(langchain(gw, "claude/claude-3-5-haiku-latest", max_tokens=8, streaming=True), "Count to ten.")
    got = streamed.usage_metadata  # type: ignore[attr-defined]
    assert got is not None and got["output_tokens"] == 8 and got["input_tokens"] > 0
    assert got["total_tokens"] == got["input_tokens"] + 8


def test_langchain_stream_usage_metadata_counted(gw: Proc) -> None:
    llm = langchain(gw, "counting/gpt-4o", streaming=True, extra_body={"mock": {"usage": False, "tokens": 20}})
    streamed = aggregate(llm, "Count to ten.")
    got = streamed.usage_metadata  # type: ignore[attr-defined]
    assert got is not None and got["input_tokens"] > 0
    assert got["output_tokens"] == Tokenizers().for_model("gpt-4o").count(str(streamed.content))
    assert got["total_tokens"] == got["input_tokens"] + got["output_tokens"]


@pytest.mark.parametrize("asked", [False, True])
def test_stream_priced_once_per_stream(sdk: openai.OpenAI, gw: Proc, asked: bool) -> None:
    # The final chunk's cost and the ledger's are one pricing: an unpriced stream is one
    # unpriced request, however its usage reaches the client.
    before = metric(gw, "gateway_unpriced_requests_total", provider="priced")
    chunks = chat(sdk, "priced/no-such-model-xyz", asked=asked, max_tokens=3)
    (final,) = with_usage(chunks)
    assert final.usage is not None and "cost" not in (final.usage.model_extra or {})
    assert metric(gw, "gateway_unpriced_requests_total", provider="priced") == before + 1
