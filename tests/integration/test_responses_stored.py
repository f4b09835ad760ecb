"""Stored responses through a real gateway: a Response answered by ``POST /v1/responses``
(unary or streamed) is kept, read back (``retrieve``, ``input_items``), continued with
``previous_response_id`` (the upstream receives the earlier turns as chat messages),
deleted; ``store: false`` keeps nothing; virtual keys see only their own; two gateway
processes sharing one Redis continue each other's conversations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, serve_config, start_mock

KEY = "sk-stored-upstream-0123456789"
VK_A = "sk-bf-stored-a-0123456789abcdef"
VK_B = "sk-bf-stored-b-0123456789abcdef"
TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("stored-up"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


def _config(up: Proc, **more: Any) -> dict[str, Any]:
    key = [{"value": "env.STORED_KEY"}]
    return {
        "providers": {
            "up": {"dialect": "openai", "base_url": up.url + "/v1", "keys": key, "responses": "translate"},
            "anthropic": {"dialect": "anthropic", "base_url": up.url, "keys": key},
            "mock": {"dialect": "mock"},
        },
        "default_provider": "up",
        **more,
    }


def _serve(up: Proc, d: Path, name: str = "gateway", **more: Any) -> Proc:
    return serve_config(_config(up, **more), d, name=name, env={"STORED_KEY": KEY})


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = _serve(up, tmp_path_factory.mktemp("stored-gw"))
    yield proc
    proc.stop()


def _client(gw: Proc, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=10)


def _last_messages(up: Proc) -> list[dict[str, Any]]:
    """The chat messages of the last request the upstream received."""
    seen = httpx.get(up.url + "/mock/requests").json()
    return list(json.loads(seen[-1]["body"])["messages"])


def _text(message: dict[str, Any]) -> str:
    """A chat message's text, whether its content is a string or text parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


@pytest.mark.parametrize("model", ["up/gpt-x", "anthropic/claude-x", "mock/gpt-m"])
def test_stored_response_is_read_back_and_continued(gw: Proc, up: Proc, model: str) -> None:
    with _client(gw) as client:
        first = client.responses.create(model=model, input="Remember the word teal.", instructions="Be brief.")
        got = client.responses.retrieve(first.id)
        assert got.id == first.id and got.output_text == first.output_text and got.status == "completed"
        items = client.responses.input_items.list(first.id)
        assert [i.type for i in items.data] == ["message"]
        assert items.data[0].content[0].text == "Remember the word teal."  # type: ignore[union-attr]
        second = client.responses.create(model=model, input="Which word?", previous_response_id=first.id)
        assert second.previous_response_id == first.id and second.output_text
    if model.startswith("up/"):
        # The upstream got the conversation: the first turn, its answer, the new turn; not
        # the first request's instructions, which (as on OpenAI) do not carry over.
        messages = _last_messages(up)
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        assert [_text(m) for m in messages] == ["Remember the word teal.", first.output_text, "Which word?"]


def test_stored_streamed_response_is_kept_and_continued(gw: Proc, up: Proc) -> None:
    with _client(gw) as client:
        with client.responses.stream(model="up/gpt-x", input="Remember teal.") as stream:
            final = stream.get_final_response()
        got = client.responses.retrieve(final.id)
        assert got.output_text == final.output_text
        with client.responses.stream(model="up/gpt-x", input="Which?", previous_response_id=final.id) as stream:
            second = stream.get_final_response()
        assert second.previous_response_id == final.id
    messages = _last_messages(up)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert _text(messages[1]) == final.output_text


def test_stored_function_call_loop_by_previous_response_id(gw: Proc, up: Proc) -> None:
    with _client(gw) as client:
        first = client.responses.create(model="up/gpt-x", input="Weather in Paris?", tools=[TOOL])  # type: ignore[list-item]
        call = next(o for o in first.output if o.type == "function_call")
        second = client.responses.create(
            model="up/gpt-x",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
            tools=[TOOL],  # type: ignore[list-item]
        )
        assert second.output_text and second.status == "completed"
    messages = _last_messages(up)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id and messages[2]["content"] == "sunny"


def test_stored_store_false_keeps_nothing(gw: Proc) -> None:
    with _client(gw) as client:
        r = client.responses.create(model="mock/gpt-m", input="hi", store=False)
        assert r.store is False
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(r.id)
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="mock/gpt-m", input="more", previous_response_id=r.id)
        assert info.value.code == "previous_response_not_found"


def test_stored_deleted_response_cannot_be_continued(gw: Proc) -> None:
    with _client(gw) as client:
        r = client.responses.create(model="mock/gpt-m", input="hi")
        client.responses.delete(r.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(r.id)
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="mock/gpt-m", input="more", previous_response_id=r.id)
        assert info.value.code == "previous_response_not_found"
        assert info.value.param == "previous_response_id"  # type: ignore[attr-defined]


def test_stored_responses_are_their_callers_own(up: Proc, tmp_path: Path) -> None:
    auth = {"required": True, "virtual_keys": [{"name": "a", "value": VK_A}, {"name": "b", "value": VK_B}]}
    gw = _serve(up, tmp_path, auth=auth)
    try:
        with _client(gw, VK_A) as a, _client(gw, VK_B) as b:
            r = a.responses.create(model="mock/gpt-m", input="hi")
            assert a.responses.retrieve(r.id).id == r.id
            with pytest.raises(openai.NotFoundError):
                b.responses.retrieve(r.id)
            with pytest.raises(openai.BadRequestError) as info:
                b.responses.create(model="mock/gpt-m", input="more", previous_response_id=r.id)
            assert info.value.code == "previous_response_not_found"
            assert a.responses.create(model="mock/gpt-m", input="more", previous_response_id=r.id).output_text
    finally:
        gw.stop()


def test_stored_responses_shared_through_redis(up: Proc, tmp_path: Path, redis_server: str) -> None:
    store = {"redis_url": redis_server}
    one = _serve(up, tmp_path, name="one", store=store)
    two = _serve(up, tmp_path, name="two", store=store)
    try:
        with _client(one) as a, _client(two) as b:
            first = a.responses.create(model="up/gpt-x", input="Remember teal.")
            assert b.responses.retrieve(first.id).output_text == first.output_text
            second = b.responses.create(model="up/gpt-x", input="Which?", previous_response_id=first.id)
            assert a.responses.retrieve(second.id).previous_response_id == first.id
        messages = _last_messages(up)
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    finally:
        one.stop()
        two.stop()


def test_stored_response_cancel_is_refused_as_synchronous(gw: Proc) -> None:
    with _client(gw) as client:
        r = client.responses.create(model="mock/gpt-m", input="hi")
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.cancel(r.id)
        assert "synchronous" in info.value.message
        with pytest.raises(openai.NotFoundError):
            client.responses.cancel("resp_" + "0" * 48)
    got = httpx.get(f"{gw.url}/v1/responses/{r.id}/cancel")
    assert (got.status_code, got.headers["allow"]) == (405, "POST")


def item_texts(items: list[Any]) -> list[tuple[str, str]]:
    """(role, text) of each listed message item."""
    return [(i.role, "".join(c.text for c in i.content)) for i in items]


def check_inherited_turns(client: openai.OpenAI, model: str) -> None:
    """Three turns chained by previous_response_id: the last one's input items are the
    whole conversation, as OpenAI lists them, in both orders and across pages."""
    first = client.responses.create(model=model, input="one")
    second = client.responses.create(model=model, input="two", previous_response_id=first.id)
    third = client.responses.create(model=model, input="three", previous_response_id=second.id)
    expected = [
        ("user", "one"),
        ("assistant", first.output_text),
        ("user", "two"),
        ("assistant", second.output_text),
        ("user", "three"),
    ]
    assert item_texts(client.responses.input_items.list(third.id, order="asc").data) == expected
    assert item_texts(client.responses.input_items.list(third.id).data) == expected[::-1]  # desc by default
    page = client.responses.input_items.list(third.id, order="asc", limit=2)
    assert item_texts(page.data) == expected[:2] and page.has_more
    # The SDK's own pagination (after=<last id>) walks the inherited items too.
    assert item_texts(list(client.responses.input_items.list(third.id, order="asc", limit=2))) == expected
    before = client.responses.input_items.list(third.id, order="asc", extra_query={"before": page.data[1].id})
    assert item_texts(before.data) == expected[:1]
    # The first turn gone: listed from the turns still kept.
    client.responses.delete(first.id)
    assert item_texts(client.responses.input_items.list(third.id, order="asc").data) == expected[2:]


@pytest.mark.parametrize("model", ["up/gpt-x", "mock/gpt-m"])
def test_stored_input_items_include_the_inherited_turns(gw: Proc, model: str) -> None:
    with _client(gw) as client:
        check_inherited_turns(client, model)
