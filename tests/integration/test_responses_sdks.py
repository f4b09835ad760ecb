"""The Responses API through a real gateway with the clients built on it: the openai SDK's
``responses.parse`` (structured output from ``text.format`` json_schema, which the mock
answers with a document valid against the schema) and the OpenAI Agents SDK running an
agent with one tool (a function-call loop over ``/v1/responses``), against an
OpenAI-dialect upstream (the ``gateway mock`` process) translated and native, an
Anthropic one and the in-process mock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import Proc, serve_config, start_mock

KEY = "sk-responses-sdks-upstream-0123456789"
# Translated to an OpenAI-dialect upstream, relayed natively to one (the mock serves the
# Responses API itself), translated to Anthropic, and the in-process mock.
MODELS = ["up/gpt-x", "native/gpt-x", "anthropic/claude-x", "mock/gpt-m"]


class City(BaseModel):
    name: str
    population: int
    coastal: bool
    districts: list[str]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("responses-sdks")
    up = start_mock(d, "--api-key", KEY)
    key = [{"value": "env.SDKS_KEY"}]
    config = {
        "providers": {
            "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key, "responses": "translate"},
            "native": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key, "responses": "native"},
            "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
            "mock": {"dialect": "mock"},
        },
        "default_provider": "up",
    }
    proc = serve_config(config, d, env={"SDKS_KEY": KEY})
    yield proc
    proc.stop()
    up.stop()


@pytest.mark.parametrize("model", MODELS)
def test_responses_parse_structured_output(gw: Proc, model: str) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as client:
        r = client.responses.parse(model=model, input="Describe a city.", text_format=City)
        parsed = r.output_parsed
        assert isinstance(parsed, City) and parsed.name and isinstance(parsed.districts, list)


@pytest.mark.parametrize("model", MODELS)
def test_responses_agents_sdk_runs_an_agent_with_one_tool(gw: Proc, model: str) -> None:
    import agents

    agents.set_tracing_disabled(True)
    called: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(city)
        return f"sunny in {city}"

    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10)
        try:
            agent = agents.Agent(
                name="weather",
                instructions="Answer with the weather.",
                tools=[get_weather],
                model=agents.OpenAIResponsesModel(model=model, openai_client=client),
            )
            result = await agents.Runner.run(agent, "What is the weather in Paris?", max_turns=4)
            return str(result.final_output)
        finally:
            await client.close()

    final = asyncio.run(run())
    # The mock called the tool once (a placeholder city), then answered text.
    assert called and final
