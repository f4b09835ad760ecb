"""``POST /v1/responses`` with the real ``openai`` SDK (and the frameworks built on it)
against a real gateway, whose upstream is one ``gateway mock`` answering OpenAI's,
Anthropic's and Gemini's wire formats: every target is reached with the request
translated into chat (and on into its dialect), the answer and stream translated back
into a Response and its events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, free_port, serve_config, start_mock

KEY = "sk-responses-upstream-0123456789"
POLLS = 400  # x 0.05 s: a bound on waiting, not a timing assertion
# One model per kind of target: an OpenAI-dialect upstream, an Anthropic one, a Gemini
# one (all the mock process), and the in-process mock.
MODELS = ["up/gpt-x", "anthropic/claude-x", "gemini/gem-x", "mock/gpt-m"]
TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("responses-up"), "--api-key", KEY, "--record", "50")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    key = [{"value": "env.RESPONSES_KEY"}]
    config = {
        "providers": {
            "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key, "responses": "translate"},
            # The same upstream, serving the Responses API itself (gateway mock does).
            "native": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key, "responses": "native"},
            "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
            "gemini": {"dialect": "gemini", "base_url": up.url, "keys": key},
            "mock": {"dialect": "mock"},
            # Nothing listens there: connection refused, a retryable failure.
            "dead": {"dialect": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "keys": key},
        },
        "default_provider": "up",
    }
    proc = serve_config(config, tmp_path_factory.mktemp("responses-gw"), env={"RESPONSES_KEY": KEY})
    yield proc
    proc.stop()
    assert KEY not in proc.log.read_text()


def _client(gw: Proc, root: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + root, api_key="unused", max_retries=0)


def _seen(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


@pytest.mark.parametrize("model", MODELS)
def test_responses_create_string_input(gw: Proc, model: str) -> None:
    with _client(gw) as client:
        r = client.responses.create(
            model=model, input="Say something.", instructions="Be brief.", metadata={"k": "v"}, temperature=0.5
        )
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed"
    assert r.model == model and r.instructions == "Be brief." and r.metadata == {"k": "v"} and r.temperature == 0.5
    (item,) = r.output
    assert item.type == "message" and item.status == "completed" and item.id.startswith("msg_")
    assert r.output_text
    u = r.usage
    assert u is not None and u.input_tokens > 0 and u.output_tokens > 0
    assert u.total_tokens == u.input_tokens + u.output_tokens
    extra = (r.model_extra or {})["extra_fields"]
    assert extra["provider"] == model.split("/")[0] and extra["model_requested"] == model
    assert extra["request_type"] == "responses"


@pytest.mark.parametrize("root", ["/v1", "/openai/v1", "/openai", "/langchain", "/pydanticai/v1", "/litellm"])
def test_responses_served_under_every_openai_root(gw: Proc, root: str) -> None:
    with _client(gw, root) as client:
        assert client.responses.create(model="mock/gpt-m", input="hi").output_text


@pytest.mark.parametrize("model", MODELS)
def test_responses_item_list_reaches_the_upstream_as_chat(gw: Proc, up: Proc, model: str) -> None:
    items: Any = [
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]},
        {"role": "user", "content": "How are you?"},
    ]
    httpx.delete(up.url + "/mock/requests")
    with _client(gw) as client:
        r = client.responses.create(model=model, input=items, max_output_tokens=64)
    assert r.status == "completed" and r.output_text
    if model.startswith("up/"):
        (seen,) = _seen(up)
        body = json.loads(seen["body"])
        assert body["messages"] == [
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "How are you?"},
        ]
        assert body["model"] == "gpt-x" and body["max_completion_tokens"] == 64


@pytest.mark.parametrize("model", MODELS)
def test_responses_stream_matches_unary(gw: Proc, model: str) -> None:
    with _client(gw) as client:
        whole = client.responses.create(model=model, input="Say something.")
        with client.responses.stream(model=model, input="Say something.") as s:
            events = list(s)
            final = s.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas == whole.output_text
    assert final.status == whole.status == "completed"
    assert final.usage is not None and whole.usage is not None
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert (final.model_extra or {})["extra_fields"]["provider"] == model.split("/")[0]
    assert (final.model_extra or {})["extra_fields"]["request_type"] == "responses_stream"


@pytest.mark.parametrize("model", MODELS)
def test_responses_max_output_tokens_makes_an_incomplete_response(gw: Proc, model: str) -> None:
    with _client(gw) as client:
        whole = client.responses.create(model=model, input="Say something.", max_output_tokens=9)
        events = list(client.responses.create(model=model, input="Say something.", max_output_tokens=9, stream=True))
    last = events[-1]
    assert last.type == "response.incomplete"
    for r in (whole, last.response):
        assert r.status == "incomplete" and r.max_output_tokens == 9
        assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"
        assert r.usage is not None and r.usage.output_tokens == 9
        assert r.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert last.response.output_text == whole.output_text


def test_responses_create_stream_true(gw: Proc) -> None:
    with _client(gw) as client:
        stream = client.responses.create(model="mock/gpt-m", input="hi", stream=True)
        events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert b"[DONE]" not in json.dumps([e.to_dict() for e in events]).encode()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("streamed", [False, True])
def test_responses_function_calling_loop(gw: Proc, model: str, streamed: bool) -> None:
    items: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with _client(gw) as client:
        if streamed:
            with client.responses.stream(model=model, input=items, tools=[TOOL]) as s:
                first = s.get_final_response()
        else:
            first = client.responses.create(model=model, input=items, tools=[TOOL])  # type: ignore[list-item]
        assert first.status == "completed" and first.tools[0].name == "get_weather"  # type: ignore[union-attr]
        (call,) = [o for o in first.output if o.type == "function_call"]
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "mock", "unit": "celsius"}
        assert call.id and call.id.startswith("fc_") and call.status == "completed"
        items += [o.to_dict() for o in first.output]
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": "18 C"})
        second = client.responses.create(model=model, input=items, tools=[TOOL])  # type: ignore[list-item]
    assert second.output[0].type == "message" and second.output_text


def test_responses_usage_carries_the_cost(gw: Proc) -> None:
    with _client(gw) as client:
        r = client.responses.create(model="mock/gpt-4o", input="hi")
        with client.responses.stream(model="mock/gpt-4o", input="hi") as s:
            final = s.get_final_response()
    for usage in (r.usage, final.usage):
        assert usage is not None
        cost = (usage.model_extra or {})["cost"]
        assert cost["total_cost"] > 0
        assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0


def test_responses_fallback_serves(gw: Proc) -> None:
    with _client(gw) as client:
        raw = client.responses.with_raw_response.create(
            model="dead/gpt-x", input="hi", extra_body={"fallbacks": ["mock/gpt-m"]}
        )
    assert raw.headers["x-bifrost-provider"] == "mock" and raw.headers["x-bifrost-fallback-index"] == "1"
    assert raw.parse().output_text


def test_responses_upstream_error_is_an_openai_error(gw: Proc) -> None:
    with _client(gw) as client, pytest.raises(openai.RateLimitError) as info:
        client.responses.create(
            model="anthropic/claude-x", input="hi", extra_headers={"x-bf-eh-x-mock": json.dumps({"fail_status": 429})}
        )
    body = info.value.body
    assert isinstance(body, dict) and body["message"] and KEY not in json.dumps(body)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "web_search_call", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "1"}]}, "input[0].call_id"),
        (
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c2", "output": "1"},
                ]
            },
            "input[2].call_id",
        ),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [TOOL, {"type": "file_search", "vector_store_ids": []}]}, "tools[1].type"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"input": 7}, "input"),
        ({}, "input"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ],
)
@pytest.mark.parametrize("model", ["up/gpt-x", "anthropic/claude-x"])
def test_responses_bad_input_is_a_400_naming_the_param(gw: Proc, body: dict[str, Any], param: str, model: str) -> None:
    r = httpx.post(gw.url + "/v1/responses", json={"model": model, **body}, timeout=10)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param and err["type"] == "invalid_request_error" and param in err["message"]


def test_responses_previous_response_id_unknown_says_why(gw: Proc) -> None:
    with _client(gw) as client, pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="mock/gpt-m", input="hi", previous_response_id="resp_1")
    assert info.value.code == "previous_response_not_found" and "resp_1" in info.value.message


def test_responses_previous_response_id_with_async_says_why(gw: Proc) -> None:
    body = {"model": "mock/gpt-m", "input": "hi", "previous_response_id": "resp_1"}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"x-bf-async": "true"}, timeout=10)
    assert r.status_code == 400 and "x-bf-async" in r.json()["error"]["message"], r.text


def test_responses_unknown_top_level_fields_are_ignored(gw: Proc) -> None:
    body = {
        "model": "mock/gpt-m",
        "input": "hi",
        "include": ["web_search_call.results"],
        "truncation": "auto",
        "whatever": {"a": [1]},
    }
    r = httpx.post(gw.url + "/v1/responses", json=body, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "completed"


@pytest.mark.parametrize("model", ["up/gpt-x", "anthropic/claude-x"])
def test_responses_stream_cut_mid_way_ends_with_response_failed(gw: Proc, model: str) -> None:
    body = {"model": model, "input": "hi", "stream": True, "max_output_tokens": 20}
    headers = {"x-bf-eh-x-mock": json.dumps({"reset_after": 4})}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers=headers, timeout=10)
    assert r.status_code == 200
    events = [f for f in r.text.split("\n\n") if f]
    assert events[0].startswith("event: response.created")
    assert events[-2].startswith("event: error") and events[-1].startswith("event: response.failed")
    failed = json.loads(events[-1].split("data: ", 1)[1])
    assert failed["response"]["status"] == "failed" and failed["response"]["error"]["message"]
    assert "[DONE]" not in r.text and "response.completed" not in r.text


def test_responses_input_tokens(gw: Proc) -> None:
    with _client(gw) as client:
        short = client.responses.input_tokens.count(model="anthropic/claude-x", input="hi")
        longer = client.responses.input_tokens.count(
            model="anthropic/claude-x", input="hi there, a longer prompt", instructions="Be brief."
        )
    assert short.object == "response.input_tokens" and 0 < short.input_tokens < longer.input_tokens


def test_responses_async_job_is_polled_to_a_response(gw: Proc) -> None:
    with _client(gw) as client:
        before = int(time.time())
        raw = client.responses.with_raw_response.create(
            model="up/gpt-x", input="hi", max_output_tokens=4, extra_headers={"x-bf-async": "true"}
        )
        assert raw.status_code == 202, raw.http_response.text
        pending = raw.parse()
        assert pending.status == "queued" and pending.output == [] and pending.model == "up/gpt-x"
        # When the job was submitted, in Unix seconds, as OpenAI's created_at.
        assert before <= pending.created_at <= time.time()
        job = (pending.model_extra or {})["extra_fields"]["async_job"]
        assert job["id"] == pending.id
        for _ in range(POLLS):
            polled = client.responses.with_raw_response.create(
                model="up/gpt-x", input="hi", extra_headers={"x-bf-async-id": pending.id}
            )
            if polled.status_code == 200:
                break
            time.sleep(0.05)
    done = polled.parse()
    assert polled.status_code == 200 and done.object == "response" and done.status == "incomplete"
    assert done.output_text and done.usage is not None and done.usage.output_tokens == 4


def test_responses_async_job_cannot_stream(gw: Proc) -> None:
    body = {"model": "up/gpt-x", "input": "hi", "stream": True}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"x-bf-async": "true"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"


@pytest.mark.parametrize("model", ["up/gpt-x", "native/gpt-x", "anthropic/claude-x"])
def test_responses_langchain_chat_openai(gw: Proc, model: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=gw.url + "/v1", api_key="unused", model=model, use_responses_api=True, max_retries=0)  # type: ignore[arg-type]
    answer = llm.invoke("Say something.")
    assert answer.text
    chunks = list(llm.stream("Say something."))
    assert "".join(c.text for c in chunks) == answer.text


@pytest.mark.parametrize("model", ["mock/gpt-m", "native/gpt-x"])
def test_responses_pydantic_ai(gw: Proc, model: str) -> None:
    import httpx2
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    # run_sync drives the thread's event loop: one of the test's own, so its HTTP client
    # is closed on the loop it ran on.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    http = httpx2.AsyncClient(timeout=20)
    try:
        provider = OpenAIProvider(base_url=gw.url + "/v1", api_key="unused", http_client=http)
        agent = Agent(OpenAIResponsesModel(model, provider=provider), model_settings={"max_tokens": 6})
        result = agent.run_sync("Say something.")
    finally:
        loop.run_until_complete(http.aclose())
        asyncio.set_event_loop(None)
        loop.close()
    assert len(result.output.split()) == 6 and result.usage.output_tokens == 6
