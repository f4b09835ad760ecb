"""The Responses API relayed natively: a real gateway in front of ``gateway mock`` (which
answers the Responses API itself, ``server.mock_responses``) as an OpenAI-dialect
provider with ``responses: native``. The upstream receives ``POST /v1/responses`` with
the client's bytes; answers and streams come back with ``usage.cost`` and
``extra_fields``; usage is counted in the gateway's metrics; ``previous_response_id``
is continued by the upstream, not the gateway; a response kept by the upstream is
retrieved, listed and deleted there through the gateway, by its owner only; a native
target that fails falls back to a translated one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, metric, serve_config, start_mock

KEY = "sk-native-upstream-0123456789"
PRICE = {"input_mtok": 1.0, "output_mtok": 2.0}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("native-up"), "--api-key", KEY, "--record", "20")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    key = [{"value": "env.NATIVE_KEY"}]
    base = up.url + "/v1"
    config = {
        "providers": {
            "up": {"base_url": base, "keys": key, "responses": "native", "prices": {"gpt-x": PRICE}},
            "tr": {"base_url": base, "keys": key, "responses": "translate", "prices": {"gpt-x": PRICE}},
        },
        "default_provider": "up",
    }
    proc = serve_config(config, tmp_path_factory.mktemp("native-gw"), env={"NATIVE_KEY": KEY})
    yield proc
    proc.stop()


@pytest.fixture
def client(gw: Proc, up: Proc) -> Iterator[openai.OpenAI]:
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as c:
        yield c


def _received(up: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(up.url + "/mock/requests").json())


def test_responses_native_unary_relays_the_clients_bytes(gw: Proc, up: Proc, client: openai.OpenAI) -> None:
    sent = {"model": "up/gpt-x", "input": "Say hi", "max_output_tokens": 8, "fallbacks": [], "zz_unknown": {"a": 1}}
    r = httpx.post(gw.url + "/v1/responses", json=sent, timeout=10)
    assert r.status_code == 200, r.text
    [seen] = _received(up)
    assert seen["method"] == "POST" and seen["path"] == "/v1/responses"
    # The client's fields as sent, unknown ones too; the model swapped, fallbacks gone.
    expected = {k: v for k, v in sent.items() if k != "fallbacks"} | {"model": "gpt-x"}
    assert json.loads(seen["body"]) == expected
    body = r.json()
    assert body["object"] == "response" and body["id"].startswith("resp_")
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cost"]["total_cost"] == pytest.approx((usage["input_tokens"] + 2 * usage["output_tokens"]) / 1e6)
    extra = body["extra_fields"]
    assert extra["provider"] == "up" and extra["request_type"] == "responses" and extra["model_deployment"] == "gpt-x"
    assert r.headers["x-bifrost-provider"] == "up"
    # The SDK reads it as OpenAI's Response.
    parsed = client.responses.create(model="up/gpt-x", input="Say hi")
    assert parsed.output_text and parsed.usage is not None


def test_responses_native_stream_ends_with_cost(up: Proc, client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="up/gpt-x", input="Say hi", stream=True))
    [seen] = _received(up)
    assert seen["path"] == "/v1/responses" and json.loads(seen["body"])["stream"] is True
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    raw = done.response.model_dump()
    assert raw["usage"]["cost"]["total_cost"] > 0
    assert raw["extra_fields"]["provider"] == "up"
    assert raw["extra_fields"]["request_type"] == "responses_stream"


def test_responses_native_usage_is_counted(gw: Proc, client: openai.OpenAI) -> None:
    before_in = metric(gw, "gateway_tokens_total", provider="up", direction="input")
    before_out = metric(gw, "gateway_tokens_total", provider="up", direction="output")
    r = client.responses.create(model="up/gpt-x", input="Count me", extra_body={"mock": {"tokens": 7}})
    events = list(client.responses.create(model="up/gpt-x", input="Count me", stream=True))
    assert r.usage is not None and r.usage.output_tokens == 7
    streamed = events[-1].response.usage  # type: ignore[union-attr]
    assert streamed is not None
    after_in = metric(gw, "gateway_tokens_total", provider="up", direction="input")
    after_out = metric(gw, "gateway_tokens_total", provider="up", direction="output")
    assert after_out - before_out == 7 + streamed.output_tokens
    assert after_in - before_in == r.usage.input_tokens + streamed.input_tokens


def test_responses_native_previous_response_id_is_the_upstreams(up: Proc, client: openai.OpenAI) -> None:
    first = client.responses.create(model="up/gpt-x", input="My name is Ada.")
    second = client.responses.create(model="up/gpt-x", input="And my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    seen = _received(up)
    assert [s["path"] for s in seen] == ["/v1/responses", "/v1/responses"]
    # Passed on unchanged: the upstream rebuilt the conversation from what it keeps.
    assert json.loads(seen[1]["body"])["previous_response_id"] == first.id
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="up/gpt-x", input="x", previous_response_id="resp_unknown0")
    assert e.value.code == "previous_response_not_found"


def test_responses_native_failure_falls_back_to_translated(up: Proc, client: openai.OpenAI) -> None:
    for stream in (False, True):
        httpx.delete(up.url + "/mock/requests").raise_for_status()
        fault = json.dumps({"fail_status": 500, "fail_times": 1, "fail_id": f"fb-{stream}"})
        raw = client.responses.with_raw_response.create(
            model="up/gpt-x",
            input="Fall back",
            stream=stream,
            extra_body={"fallbacks": ["tr/gpt-x"]},
            extra_headers={"x-bf-eh-x-mock": fault},
        )
        assert raw.headers["x-bifrost-provider"] == "tr" and raw.headers["x-bifrost-fallback-index"] == "1"
        seen = _received(up)
        assert [s["path"] for s in seen] == ["/v1/responses", "/v1/chat/completions"]
        assert "messages" in json.loads(seen[1]["body"])
        if stream:
            events = list(raw.parse())
            done = events[-1].response  # type: ignore[union-attr]
        else:
            done = raw.parse()
        assert done.output_text
        extra = done.model_dump()["extra_fields"]
        assert extra["provider"] == "tr"
        # Served by translation, the gateway keeps it.
        assert client.responses.retrieve(done.id).id == done.id


def test_responses_native_stream_cut_short_ends_with_an_error_event(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="up/gpt-x", input="x", stream=True, extra_body={"mock": {"tokens": 20, "reset_after": 4}}
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and "response.completed" not in kinds
    last = events[-1]
    assert last.type == "error" and last.sequence_number == len(events) - 1
    assert last.message  # type: ignore[union-attr]


def test_responses_native_without_usage_is_estimated(client: openai.OpenAI) -> None:
    r = client.responses.create(model="up/gpt-x", input="Say hi", extra_body={"mock": {"usage": False}})
    extra = r.model_dump()["extra_fields"]
    assert r.usage is None and extra["usage_estimated"] is True and extra["provider"] == "up"


def test_responses_native_previous_id_is_not_sent_to_a_translated_fallback(up: Proc, client: openai.OpenAI) -> None:
    first = client.responses.create(model="up/gpt-x", input="My name is Ada.")
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    with pytest.raises(openai.InternalServerError):
        client.responses.create(
            model="up/gpt-x",
            input="And my name?",
            previous_response_id=first.id,
            extra_body={"fallbacks": ["tr/gpt-x"]},
            extra_headers={"x-bf-eh-x-mock": '{"fail_status": 500}'},
        )
    # The translated fallback has no conversation to send (the upstream keeps it): not tried.
    assert [s["path"] for s in _received(up)] == ["/v1/responses"]


VK = "sk-bf-native-budget-0123456789ab"


@pytest.fixture(scope="module")
def governed(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = {
        "providers": {
            "up": {
                "base_url": up.url + "/v1",
                "keys": [{"value": "env.NATIVE_KEY"}],
                "responses": "native",
                "prices": {"gpt-x": {"input_mtok": 0, "output_mtok": 1_000_000}},  # $1 an output token
            }
        },
        "default_provider": "up",
        "auth": {
            "required": True,
            "virtual_keys": [{"name": "b", "value": VK, "budgets": [{"usd": 6, "window": "1d"}]}],
        },
    }
    proc = serve_config(config, tmp_path_factory.mktemp("native-gov"), env={"NATIVE_KEY": KEY})
    yield proc
    proc.stop()


def test_responses_native_charges_virtual_key_budgets(governed: Proc) -> None:
    with openai.OpenAI(base_url=governed.url + "/v1", api_key=VK, max_retries=0, timeout=10) as c:
        r = c.responses.create(model="gpt-x", input="x", max_output_tokens=2)
        assert r.usage is not None and r.usage.output_tokens == 2
        list(c.responses.create(model="gpt-x", input="x", max_output_tokens=2, stream=True))
        c.responses.create(model="gpt-x", input="x", max_output_tokens=2)
        # $2 a request: the budget of $6 is spent.
        with pytest.raises(openai.APIStatusError) as e:
            c.responses.create(model="gpt-x", input="x", max_output_tokens=2)
        assert e.value.status_code == 402


def test_responses_native_async_job_is_relayed_natively(up: Proc, client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="up/gpt-x", input="hi", max_output_tokens=4, extra_headers={"x-bf-async": "true"}
    )
    assert raw.status_code == 202, raw.http_response.text
    pending = raw.parse()
    for _ in range(400):  # x 0.05 s: a bound on waiting, not a timing assertion
        polled = client.responses.with_raw_response.create(
            model="up/gpt-x", input="hi", extra_headers={"x-bf-async-id": pending.id}
        )
        if polled.status_code == 200:
            break
        time.sleep(0.05)
    done = polled.parse()
    assert polled.status_code == 200 and done.usage is not None and done.usage.output_tokens == 4
    assert done.model_dump()["extra_fields"]["provider"] == "up"
    assert [s["path"] for s in _received(up)] == ["/v1/responses"]


def _auth(seen: dict[str, Any]) -> str | None:
    return next((v for k, v in seen["headers"].items() if k.lower() == "authorization"), None)


def test_responses_native_retrieve_items_and_delete_reach_the_upstream(up: Proc, client: openai.OpenAI) -> None:
    first, second = ({"role": "user", "content": t} for t in ("one", "two"))
    r = client.responses.create(model="up/gpt-x", input=[first, second])  # type: ignore[list-item]
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text
    raw = client.responses.input_items.with_raw_response.list(r.id, limit=1, order="asc")
    page = raw.http_response.json()
    # limit and order reached the upstream: the first of two items, more to come.
    assert [i["content"] for i in page["data"]] == ["one"] and page["has_more"] is True
    client.responses.delete(r.id)
    seen = _received(up)
    assert [(s["method"], s["path"]) for s in seen] == [
        ("GET", f"/v1/responses/{r.id}"),
        ("GET", f"/v1/responses/{r.id}/input_items"),
        ("DELETE", f"/v1/responses/{r.id}"),
    ]
    assert all(_auth(s) == f"Bearer {KEY}" for s in seen)
    assert seen[1]["query"] == "limit=1&order=asc"
    # Deleted upstream, and its index entry with it: the gateway's own 404, nothing sent.
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve(r.id)
    assert e.value.code == "response_not_found"
    assert _received(up) == []


def test_responses_native_stream_is_retrievable_after_its_terminal_event(up: Proc, client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="up/gpt-x", input="Stream me", stream=True))
    done = events[-1]
    assert done.type == "response.completed"
    got = client.responses.retrieve(done.response.id)
    assert got.id == done.response.id and got.output_text == done.response.output_text
    assert [s["method"] for s in _received(up)] == ["POST", "GET"]


def test_responses_native_store_false_leaves_nothing_to_reach(up: Proc, client: openai.OpenAI) -> None:
    r = client.responses.create(model="up/gpt-x", input="Forget me", store=False)
    events = list(client.responses.create(model="up/gpt-x", input="Forget me", stream=True, store=False))
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    for rid in (r.id, events[-1].response.id):  # type: ignore[union-attr]
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(rid)
        with pytest.raises(openai.NotFoundError):
            client.responses.delete(rid)
    assert _received(up) == []  # the gateway knew of neither: the upstream was not asked


def test_responses_native_upstream_error_is_relayed(up: Proc, client: openai.OpenAI) -> None:
    r = client.responses.create(model="up/gpt-x", input="Gone upstream")
    # Deleted at the upstream behind the gateway's back: its 404 comes back.
    gone = httpx.delete(f"{up.url}/v1/responses/{r.id}", headers={"Authorization": f"Bearer {KEY}"})
    assert gone.status_code == 200
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    raw = httpx.get(f"{client.base_url}responses/{r.id}", timeout=10)
    assert raw.status_code == 404 and raw.json()["error"]["code"] == "response_not_found"
    assert KEY not in raw.text
    assert [(s["method"], s["path"]) for s in _received(up)] == [("GET", f"/v1/responses/{r.id}")]


def test_responses_native_input_tokens_are_counted_upstream(up: Proc, client: openai.OpenAI) -> None:
    sent = {"model": "up/gpt-x", "input": "Count these words", "zz_unknown": 1}
    r = httpx.post(f"{client.base_url}responses/input_tokens", json=sent, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "response.input_tokens" and r.json()["input_tokens"] > 0
    assert r.headers["x-bifrost-provider"] == "up"
    [seen] = _received(up)
    assert (seen["method"], seen["path"]) == ("POST", "/v1/responses/input_tokens")
    assert json.loads(seen["body"]) == sent | {"model": "gpt-x"}  # the client's bytes, the model swapped
    assert _auth(seen) == f"Bearer {KEY}"
    # A translated provider's count stays offline: nothing goes upstream.
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    offline = httpx.post(f"{client.base_url}responses/input_tokens", json=sent | {"model": "tr/gpt-x"}, timeout=10)
    assert offline.status_code == 200 and offline.json()["input_tokens"] > 0
    assert _received(up) == []


VK_A = "sk-bf-native-owner-a-0123456789"
VK_B = "sk-bf-native-owner-b-0123456789"


@pytest.fixture(scope="module")
def owners(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = {
        "providers": {"up": {"base_url": up.url + "/v1", "keys": [{"value": "env.NATIVE_KEY"}], "responses": "native"}},
        "default_provider": "up",
        "auth": {"required": True, "virtual_keys": [{"name": "a", "value": VK_A}, {"name": "b", "value": VK_B}]},
    }
    proc = serve_config(config, tmp_path_factory.mktemp("native-owners"), env={"NATIVE_KEY": KEY})
    yield proc
    proc.stop()


def test_responses_native_another_virtual_key_gets_404(owners: Proc, up: Proc) -> None:
    with (
        openai.OpenAI(base_url=owners.url + "/v1", api_key=VK_A, max_retries=0, timeout=10) as a,
        openai.OpenAI(base_url=owners.url + "/v1", api_key=VK_B, max_retries=0, timeout=10) as b,
    ):
        r = a.responses.create(model="gpt-x", input="Mine")
        httpx.delete(up.url + "/mock/requests").raise_for_status()
        with pytest.raises(openai.NotFoundError) as e:
            b.responses.retrieve(r.id)
        assert e.value.code == "response_not_found"
        with pytest.raises(openai.NotFoundError):
            b.responses.input_items.list(r.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.delete(r.id)
        assert _received(up) == []  # refused by the gateway: the upstream was not asked
        assert a.responses.retrieve(r.id).id == r.id


def test_responses_native_upstream_gone_is_a_gateway_error(tmp_path: Path) -> None:
    lone = start_mock(tmp_path, "--api-key", KEY)
    key = [{"value": "env.NATIVE_KEY"}]
    config = {"providers": {"up": {"base_url": lone.url + "/v1", "keys": key, "responses": "native"}}}
    proc = serve_config(config, tmp_path, env={"NATIVE_KEY": KEY})
    try:
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=10) as c:
            r = c.responses.create(model="up/gpt-x", input="x")
            lone.stop()
            raw = httpx.get(f"{proc.url}/v1/responses/{r.id}", timeout=10)
        assert raw.status_code == 502, raw.text
        assert raw.json()["error"]["type"] and KEY not in raw.text
    finally:
        lone.stop()
        proc.stop()


def test_responses_native_cancel_reaches_the_upstream(up: Proc, client: openai.OpenAI) -> None:
    r = client.responses.create(model="up/gpt-x", input="Cancel me")
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    # The mock cancels nothing (it runs no background response): its 404 comes back.
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel(r.id)
    [seen] = _received(up)
    assert (seen["method"], seen["path"]) == ("POST", f"/v1/responses/{r.id}/cancel")
    assert _auth(seen) == f"Bearer {KEY}"


def test_responses_native_made_with_a_direct_key_is_not_indexed(up: Proc, tmp_path: Path) -> None:
    key = [{"value": "env.NATIVE_KEY"}]
    config = {
        "providers": {"up": {"base_url": up.url + "/v1", "keys": key, "responses": "native"}},
        "auth": {"client_provider_keys": True},
    }
    proc = serve_config(config, tmp_path, env={"NATIVE_KEY": KEY})
    try:
        direct = {"x-bf-direct-key": "true"}
        with openai.OpenAI(base_url=proc.url + "/v1", api_key=KEY, max_retries=0, timeout=10) as c:
            made = [
                c.responses.create(model="up/gpt-x", input="Mine", extra_headers=direct).id,
                list(c.responses.create(model="up/gpt-x", input="Mine", stream=True, extra_headers=direct))[
                    -1
                ].response.id,  # type: ignore[union-attr]
            ]
            httpx.delete(up.url + "/mock/requests").raise_for_status()
            for rid in made:  # kept under the client's own key: the gateway's cannot read it
                with pytest.raises(openai.NotFoundError):
                    c.responses.retrieve(rid)
        assert _received(up) == []
    finally:
        proc.stop()
