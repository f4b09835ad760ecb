"""``responses: auto``, the openai dialect's default: a Responses API request goes to the
server's own ``/responses`` first; a server that answers it has no such route (here
``gateway mock --no-responses``, as Ollama, Groq or an older vLLM) gets that request
translated at once, on the same provider, and every later one translated without the
first try. A server that serves it (``gateway mock``) is relayed natively."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, serve_config, start_mock


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("bare-up"), "--no-responses", "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("full-up"), "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture
def gw(bare: Proc, full: Proc, tmp_path: Path) -> Iterator[Proc]:
    """A fresh gateway for each test: what it learns lasts its life."""
    for up in (bare, full):
        httpx.delete(up.url + "/mock/requests").raise_for_status()
    config = {
        "providers": {
            "bare": {"base_url": bare.url + "/v1"},
            "full": {"base_url": full.url + "/v1"},
            "tr": {"base_url": full.url + "/v1", "responses": "translate"},
        },
        "default_provider": "bare",
    }
    proc = serve_config(config, tmp_path)
    yield proc
    proc.stop()


@pytest.fixture
def client(gw: Proc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as c:
        yield c


def _received(up: Proc) -> list[dict[str, Any]]:
    seen = list(httpx.get(up.url + "/mock/requests").json())
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    return seen


def _paths(up: Proc) -> list[str]:
    """The paths the upstream served (``gateway mock`` records no request it has no
    route for: a first try at a missing /responses shows in the gateway's log)."""
    return [s["path"] for s in _received(up)]


def _learned(gw: Proc, route: str = "/responses") -> int:
    return gw.log.read_text().count(f"has no {route} route")


def test_auto_relays_natively_where_the_server_serves_responses(full: Proc, client: openai.OpenAI) -> None:
    r = client.responses.create(model="full/gpt-x", input="Say hi")
    assert r.status == "completed" and r.output_text
    assert _paths(full) == ["/v1/responses"]
    again = client.responses.create(model="full/gpt-x", input="And again", previous_response_id=r.id)
    assert again.previous_response_id == r.id  # the upstream continued its own
    assert _paths(full) == ["/v1/responses"]


def test_auto_translates_for_a_server_without_responses_and_remembers(
    bare: Proc, gw: Proc, client: openai.OpenAI
) -> None:
    raw = client.responses.with_raw_response.create(model="bare/gpt-x", input="My name is Ada.")
    first = raw.parse()
    assert first.status == "completed" and first.output_text
    # Served by the same provider, translated: not a fallback.
    assert raw.headers["x-bifrost-provider"] == "bare" and "x-bifrost-fallback-index" not in raw.headers
    assert first.model_dump()["extra_fields"]["provider"] == "bare"
    assert _paths(bare) == ["/v1/chat/completions"] and _learned(gw) == 1

    # Learned: the next request goes translated at once, and the gateway kept the first.
    second = client.responses.create(model="bare/gpt-x", input="And my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    [seen] = _received(bare)
    assert seen["path"] == "/v1/chat/completions"
    texts = json.dumps(json.loads(seen["body"])["messages"])
    assert "My name is Ada." in texts and "And my name?" in texts
    assert client.responses.retrieve(first.id).id == first.id

    with client.responses.stream(model="bare/gpt-x", input="Stream it") as stream:
        events = [e.type for e in stream]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert _paths(bare) == ["/v1/chat/completions"]
    assert _learned(gw) == 1


def test_auto_first_stream_to_a_server_without_responses_is_translated(
    bare: Proc, gw: Proc, client: openai.OpenAI
) -> None:
    with client.responses.stream(model="bare/gpt-x", input="Stream it") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.output_text == text and final.usage is not None
    assert _paths(bare) == ["/v1/chat/completions"] and _learned(gw) == 1


def test_auto_unknown_previous_id_on_a_server_without_responses(bare: Proc, gw: Proc, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="bare/gpt-x", input="Go on", previous_response_id="resp_unknown0123")
    assert e.value.code == "previous_response_not_found"
    assert e.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert "resp_unknown0123" in e.value.message
    # Tried natively (the upstream may keep it); the server has no /responses, so no
    # stored responses either: nothing is sent translated.
    assert _paths(bare) == [] and _learned(gw) == 1


def test_auto_input_tokens_counted_offline_where_the_server_cannot(bare: Proc, gw: Proc) -> None:
    sent = {"model": "bare/gpt-x", "input": "Count these words"}
    for _ in range(2):
        r = httpx.post(gw.url + "/v1/responses/input_tokens", json=sent, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["input_tokens"] > 0 and r.headers["x-bifrost-provider"] == "bare"
        assert _paths(bare) == []  # counted offline
    assert _learned(gw, "/responses/input_tokens") == 1  # tried once
    # A server may have /responses without input_tokens: creating is still tried natively.
    assert _learned(gw) == 0
    r = httpx.post(gw.url + "/v1/responses", json=sent, timeout=10)
    assert r.status_code == 200, r.text
    assert _paths(bare) == ["/v1/chat/completions"] and _learned(gw) == 1


def test_auto_continues_a_response_the_gateway_keeps_translated(full: Proc, client: openai.OpenAI) -> None:
    first = client.responses.create(model="tr/gpt-x", input="My name is Ada.")  # kept by the gateway
    assert _paths(full) == ["/v1/chat/completions"]
    second = client.responses.create(model="full/gpt-x", input="And my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    # The server serves /responses but does not know the gateway's id: the conversation
    # is sent translated, where it is kept.
    [seen] = _received(full)
    assert seen["path"] == "/v1/chat/completions"
    assert "My name is Ada." in json.dumps(json.loads(seen["body"])["messages"])
