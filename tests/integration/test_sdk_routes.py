"""The frameworks' prefixes with their real SDKs: LangChain's ``ChatOpenAI`` and
``ChatAnthropic`` at ``<gateway>/langchain`` (ChatOpenAI without the ``/v1``), and
pydantic-ai's Anthropic and Google models at ``<gateway>/pydanticai``, unary and
streaming, against a real gateway whose upstream is one ``gateway mock`` answering
every dialect and recording what it received."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.google import GoogleProvider

from tests.conftest import Proc, serve_config, start_mock

KEY = "sk-sdk-routes-upstream-0123456789"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("sdk-routes-up"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    key = [{"value": "env.SDK_ROUTES_KEY"}]
    config = {
        "providers": {
            "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
            "gemini": {"dialect": "gemini", "base_url": up.url, "keys": key},
            "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key},
        },
        "default_provider": "up",
    }
    proc = serve_config(config, tmp_path_factory.mktemp("sdk-routes-gw"), env={"SDK_ROUTES_KEY": KEY})
    yield proc
    proc.stop()
    assert KEY not in proc.log.read_text()


def _clear(up: Proc) -> None:
    httpx.delete(up.url + "/mock/requests").raise_for_status()


def _paths(up: Proc) -> list[str]:
    return [r["path"] for r in httpx.get(up.url + "/mock/requests").json()]


# --- LangChain -------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "upstream_path"), [("gpt-x", "/v1/chat/completions"), ("gemini/gem-x", None)])
def test_langchain_chat_openai_at_the_prefix_without_v1(gw: Proc, up: Proc, model: str, upstream_path: str) -> None:
    """ChatOpenAI(base_url=".../langchain") sends /langchain/chat/completions."""
    llm = ChatOpenAI(base_url=gw.url + "/langchain", api_key="unused", model=model, max_tokens=4, max_retries=0)
    _clear(up)
    answer = llm.invoke("Say something.")
    assert isinstance(answer.content, str) and len(answer.content.split()) == 4
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 4
    expected = upstream_path or "/v1beta/models/gem-x:generateContent"
    assert _paths(up) == [expected]
    chunks = list(llm.stream("Stream something."))
    text = "".join(str(c.content) for c in chunks)
    assert len(text.split()) == 4


def test_langchain_chat_anthropic_at_the_prefix(gw: Proc, up: Proc) -> None:
    llm = ChatAnthropic(  # type: ignore[call-arg]
        base_url=gw.url + "/langchain", api_key="unused", model="claude-x", max_tokens=5, max_retries=0
    )
    _clear(up)
    answer = llm.invoke("Say something.")
    assert isinstance(answer.content, str) and len(answer.content.split()) == 5
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 5
    assert _paths(up) == ["/v1/messages"]  # bare: the anthropic provider, passed through
    chunks = list(llm.stream("Stream something."))
    text = "".join(c.text if hasattr(c, "text") and isinstance(c.text, str) else str(c.content) for c in chunks)
    assert len(text.split()) == 5


def test_langchain_chat_anthropic_to_an_openai_target(gw: Proc, up: Proc) -> None:
    llm = ChatAnthropic(  # type: ignore[call-arg]
        base_url=gw.url + "/langchain", api_key="unused", model="up/gpt-x", max_tokens=3, max_retries=0
    )
    _clear(up)
    answer = llm.invoke("Say something.")
    assert isinstance(answer.content, str) and len(answer.content.split()) == 3
    (seen,) = httpx.get(up.url + "/mock/requests").json()
    assert seen["path"] == "/v1/chat/completions" and json.loads(seen["body"])["model"] == "gpt-x"


# --- pydantic-ai -----------------------------------------------------------------------


def _anthropic_agent(gw: Proc, model: str, http: httpx2.AsyncClient) -> Agent[None, str]:
    provider = AnthropicProvider(base_url=gw.url + "/pydanticai", api_key="unused", http_client=http)
    return Agent(AnthropicModel(model, provider=provider), model_settings={"max_tokens": 6})


def _google_agent(gw: Proc, model: str, http: httpx2.AsyncClient) -> Agent[None, str]:
    provider = GoogleProvider(base_url=gw.url + "/pydanticai", api_key="unused", http_client=http)
    return Agent(GoogleModel(model, provider=provider), model_settings={"max_tokens": 6})


AGENTS: list[tuple[Any, str, str]] = [
    (_anthropic_agent, "claude-x", "/v1/messages"),
    (_anthropic_agent, "up/gpt-x", "/v1/chat/completions"),
    (_google_agent, "gem-x", "/v1beta/models/gem-x:generateContent"),
    (_google_agent, "anthropic/claude-x", "/v1/messages"),
]


@pytest.mark.parametrize(("agent", "model", "upstream_path"), AGENTS, ids=lambda v: getattr(v, "__name__", v))
def test_pydanticai_agent_run_sync(gw: Proc, up: Proc, agent: Any, model: str, upstream_path: str) -> None:
    # run_sync drives the thread's event loop: one of the test's own, so its HTTP client
    # is closed on the loop it ran on.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    http = httpx2.AsyncClient(timeout=20)
    try:
        _clear(up)
        result = agent(gw, model, http).run_sync("Say something.")
    finally:
        loop.run_until_complete(http.aclose())
        asyncio.set_event_loop(None)
        loop.close()
    assert len(result.output.split()) == 6
    assert result.usage.output_tokens == 6
    assert _paths(up) == [upstream_path]


@pytest.mark.parametrize(("agent", "model", "upstream_path"), AGENTS, ids=lambda v: getattr(v, "__name__", v))
def test_pydanticai_agent_run_stream(gw: Proc, up: Proc, agent: Any, model: str, upstream_path: str) -> None:
    async def run() -> str:
        async with httpx2.AsyncClient(timeout=20) as http, agent(gw, model, http).run_stream("Stream this.") as result:
            return str(await result.get_output())

    _clear(up)
    assert len(asyncio.run(run()).split()) == 6
    (path,) = _paths(up)
    assert path.startswith(upstream_path.replace(":generateContent", ":streamGenerateContent"))
