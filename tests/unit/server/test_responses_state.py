"""gateway.server.responses_state: responses kept, continued, read, listed and deleted,
against the in-memory store and a real Redis (``states``); the Redis sharing between
processes as two stores on two connections."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from openai.types.responses import Response, ResponseItemList

from gateway.errors import InvalidRequest, StoreUnavailable
from gateway.metrics import Metrics
from gateway.server import responses_state
from gateway.server.responses_state import (
    PreviousResponseNotFound,
    ResponseNotFound,
    ResponseStates,
    new_response_id,
    with_item_ids,
)
from gateway.state import MemoryStore, RedisStore, Store
from tests.conftest import free_port

MiB = 1024 * 1024
Scenario = Callable[[Callable[..., ResponseStates]], Awaitable[None]]


class States:
    """Runs a scenario with a factory of ResponseStates over fresh stores of one kind
    (each call a new store client; Redis ones share one prefix, as processes sharing a
    Redis do)."""

    def __init__(self, kind: str, redis_url: str | None) -> None:
        self.kind = kind
        self.url = redis_url
        self.prefix = f"t{uuid.uuid4().hex[:12]}:"

    def run(self, scenario: Scenario) -> None:
        async def main() -> None:
            made: list[Store] = []
            memory = MemoryStore()

            def make(*, ttl_s: float = 60.0, store: Store | None = None, **kw: Any) -> ResponseStates:
                if store is None:
                    store = memory if self.url is None else RedisStore(self.url, prefix=self.prefix)
                made.append(store)
                kw = {"max_record_bytes": 4 * MiB, "max_conversation_bytes": 32 * MiB, **kw}
                return ResponseStates(store, ttl_s=ttl_s, **kw)

            try:
                await scenario(make)
            finally:
                for s in made:
                    await s.close()

        asyncio.run(main())


@pytest.fixture(params=["memory", "redis"])
def states(request: pytest.FixtureRequest) -> States:
    if request.param == "memory":
        return States("memory", None)
    return States("redis", request.getfixturevalue("redis_server"))


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}], **extra}


def response(rid: str, text: str) -> bytes:
    out = {
        "id": f"msg_{text}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    body = {
        "id": rid,
        "object": "response",
        "created_at": 1_700_000_000,
        "model": "mock/mock-chat",
        "status": "completed",
        "output": [out],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    return json.dumps(body).encode()


async def turn(s: ResponseStates, owner: str, text: str, previous: str | None = None) -> str:
    rid = new_response_id()
    stored = await s.save(
        owner,
        response=response(rid, f"answer-{text}"),
        input_items=json.dumps([user(text)]).encode(),
        previous_id=previous,
    )
    assert stored
    return rid


def texts(conversation: bytes) -> list[str]:
    return [item["content"][0]["text"] for item in json.loads(conversation)]


def test_responses_state_conversation_of_three_oldest_first(states: States) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make()
        r1 = await turn(s, "vk:a", "one")
        r2 = await turn(s, "vk:a", "two", r1)
        r3 = await turn(s, "vk:a", "three", r2)
        assert texts(await s.conversation("vk:a", r3)) == [
            "one",
            "answer-one",
            "two",
            "answer-two",
            "three",
            "answer-three",
        ]
        assert texts(await s.conversation("vk:a", r1)) == ["one", "answer-one"]
        # A branch: two requests continuing one response, each its own conversation.
        r2b = await turn(s, "vk:a", "two-b", r1)
        assert texts(await s.conversation("vk:a", r2b)) == ["one", "answer-one", "two-b", "answer-two-b"]
        items = json.loads(await s.conversation("vk:a", r3))
        assert items[1]["id"] == "msg_answer-one" and items[0]["id"].startswith("msg_")
        # The stored Response comes back byte for byte, and an OpenAI SDK parses it.
        got = await s.get("vk:a", r2)
        assert got == response(r2, "answer-two")
        assert Response.model_validate_json(got).output_text == "answer-two"

    states.run(scenario)


def test_responses_state_other_owners_unknown_and_malformed_ids_look_alike(states: States) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make()
        r1 = await turn(s, "vk:a", "one")
        unknown = new_response_id()
        seen = []
        for owner, rid in (("vk:b", r1), ("anonymous", r1), ("vk:a", unknown)):
            with pytest.raises(PreviousResponseNotFound) as e:
                await s.conversation(owner, rid)
            err = e.value
            assert (err.status, err.type, err.param, err.code) == (
                400,
                "invalid_request_error",
                "previous_response_id",
                "previous_response_not_found",
            )
            seen.append(err.message.replace(rid, "<id>"))
            with pytest.raises(ResponseNotFound) as nf:
                await s.get(owner, rid)
            seen.append(nf.value.message)
            assert nf.value.status == 404
            with pytest.raises(ResponseNotFound):
                await s.input_items(owner, rid)
            assert not await s.delete(owner, rid)
        assert len(set(seen)) == 2  # one message for the conversation, one for the routes
        for bad in ("nope", "resp_", "resp_a/b", "resp_" + "a" * 129, f"{r1}\n", "RESP_abc"):
            with pytest.raises(ResponseNotFound):
                await s.get("vk:a", bad)
        with pytest.raises(PreviousResponseNotFound) as e:
            await s.conversation("vk:a", "msg_123")
        assert (e.value.status, e.value.code) == (400, "invalid_value")
        assert await s.get("vk:a", r1)  # a foreign delete removed nothing

    states.run(scenario)


def test_responses_state_expire_after_their_ttl(states: States) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        short, long = make(ttl_s=0.1), make(ttl_s=60)
        r1 = await turn(short, "vk:a", "one")
        r2 = await turn(long, "vk:a", "two", r1)
        assert texts(await long.conversation("vk:a", r2)) == ["one", "answer-one", "two", "answer-two"]
        await asyncio.sleep(0.25)
        with pytest.raises(ResponseNotFound):
            await long.get("vk:a", r1)
        with pytest.raises(PreviousResponseNotFound) as e:
            await long.conversation("vk:a", r1)
        assert e.value.message == f"Previous response with id '{r1}' not found."
        with pytest.raises(PreviousResponseNotFound) as e:  # a link gone mid-chain names it
            await long.conversation("vk:a", r2)
        assert r1 in e.value.message and "expired or was deleted" in e.value.message
        assert await long.get("vk:a", r2)

    states.run(scenario)


def test_responses_state_delete_ends_reads_and_the_conversations_through_it(states: States) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make()
        r1 = await turn(s, "vk:a", "one")
        r2 = await turn(s, "vk:a", "two", r1)
        r3 = await turn(s, "vk:a", "three", r2)
        assert await s.delete("vk:a", r2)
        assert not await s.delete("vk:a", r2)
        with pytest.raises(ResponseNotFound):
            await s.get("vk:a", r2)
        with pytest.raises(PreviousResponseNotFound) as e:
            await s.conversation("vk:a", r3)
        assert r2 in e.value.message
        assert texts(await s.conversation("vk:a", r1)) == ["one", "answer-one"]

    states.run(scenario)


def ids_of(page: bytes) -> tuple[list[str], str | None, str | None, bool]:
    body = json.loads(page)
    assert body["object"] == "list"
    if body["data"]:  # the OpenAI SDK's own type of the answer (which types no empty page's null ids)
        ResponseItemList.model_validate(body)
    return [i["id"] for i in body["data"]], body["first_id"], body["last_id"], body["has_more"]


def test_responses_state_input_items_pages_both_orders_after_and_before(states: States) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make()
        rid = new_response_id()
        items = [user(f"u{i}", id=f"msg_{i}") for i in range(1, 6)]
        await s.save("vk:a", response=response(rid, "a"), input_items=json.dumps(items).encode(), previous_id=None)

        async def page(**kw: Any) -> tuple[list[str], str | None, str | None, bool]:
            return ids_of(await s.input_items("vk:a", rid, **kw))

        assert await page() == (["msg_5", "msg_4", "msg_3", "msg_2", "msg_1"], "msg_5", "msg_1", False)  # desc, 20
        assert await page(order="asc", limit=2) == (["msg_1", "msg_2"], "msg_1", "msg_2", True)
        assert await page(order="asc", limit=2, after="msg_2") == (["msg_3", "msg_4"], "msg_3", "msg_4", True)
        assert await page(order="asc", limit=2, after="msg_4") == (["msg_5"], "msg_5", "msg_5", False)
        assert await page(order="asc", after="msg_5") == ([], None, None, False)
        assert await page(limit=2) == (["msg_5", "msg_4"], "msg_5", "msg_4", True)
        assert await page(limit=2, after="msg_4") == (["msg_3", "msg_2"], "msg_3", "msg_2", True)
        # before: the page just before the cursor, in the same order.
        assert await page(order="asc", limit=2, before="msg_4") == (["msg_2", "msg_3"], "msg_2", "msg_3", True)
        assert await page(order="asc", limit=2, before="msg_2") == (["msg_1"], "msg_1", "msg_1", False)
        assert await page(limit=2, before="msg_2") == (["msg_4", "msg_3"], "msg_4", "msg_3", True)
        assert await page(order="asc", after="msg_1", before="msg_5") == (
            ["msg_2", "msg_3", "msg_4"],
            "msg_2",
            "msg_4",
            False,
        )
        assert await page(order="asc", limit=100) == (
            ["msg_1", "msg_2", "msg_3", "msg_4", "msg_5"],
            "msg_1",
            "msg_5",
            False,
        )
        for bad in ({"limit": 0}, {"limit": 101}, {"after": "msg_9"}, {"before": "nope"}):
            with pytest.raises(InvalidRequest) as e:
                await page(**bad)
            assert e.value.status == 400 and e.value.param == next(iter(bad))

    states.run(scenario)


def test_responses_state_items_get_ids_where_they_have_none() -> None:
    items = [
        {"role": "user", "content": "hi"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        user("kept", id="msg_mine"),
        {"type": "item_reference", "id": "msg_earlier"},
    ]
    out = json.loads(with_item_ids(json.dumps(items).encode()))
    assert out[0]["id"].startswith("msg_") and out[0]["type"] == "message" and len(out[0]["id"]) == 52
    assert out[1]["id"].startswith("fco_") and out[1]["output"] == "42"
    assert out[2]["id"].startswith("fc_")
    assert out[3:] == items[3:]
    assert len({i["id"] for i in out}) == 5
    already = json.dumps([user("a", id="msg_1")]).encode()
    assert with_item_ids(already) is already  # nothing to add: the bytes as given
    for bad in (b"{}", b"[1]", b'[{"id": 5}]', b"not json"):
        with pytest.raises(ValueError):
            with_item_ids(bad)


def test_responses_state_record_over_the_cap_is_not_stored(states: States, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make(max_record_bytes=4096)
        rid = new_response_id()
        big = json.dumps([user("x" * 5000)]).encode()
        with caplog.at_level(logging.WARNING, logger="gateway.responses"):
            assert not await s.save("vk:a", response=response(rid, "a"), input_items=big, previous_id=None)
        assert f"response {rid} not stored" in caplog.text and "responses.max_record_bytes (4096)" in caplog.text
        with pytest.raises(ResponseNotFound):
            await s.get("vk:a", rid)
        assert await turn(s, "vk:a", "small")

    states.run(scenario)


def test_responses_state_chain_bounded_by_length_and_bytes(states: States, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responses_state, "MAX_CHAIN", 3)

    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make()
        r = None
        for i in range(4):
            r = await turn(s, "vk:a", f"t{i}", r)
            if i < 3:
                assert len(texts(await s.conversation("vk:a", r))) == 2 * (i + 1)
        assert r is not None
        with pytest.raises(InvalidRequest) as e:
            await s.conversation("vk:a", r)
        assert (e.value.status, e.value.code, e.value.param) == (400, "conversation_too_long", "previous_response_id")
        small = make(max_conversation_bytes=3000)
        r1 = await turn(small, "vk:a", "x" * 500)  # ~2000 bytes a record
        r2 = await turn(small, "vk:a", "y" * 500, r1)
        assert await small.conversation("vk:a", r1)
        with pytest.raises(InvalidRequest) as e:
            await small.conversation("vk:a", r2)
        assert e.value.code == "conversation_too_long" and "max_conversation_bytes" in e.value.message

    states.run(scenario)


def test_responses_state_evicted_from_a_full_memory_store() -> None:
    async def main() -> None:
        s = ResponseStates(
            MemoryStore(max_response_bytes=20_000), ttl_s=60, max_record_bytes=4 * MiB, max_conversation_bytes=MiB
        )
        first = await turn(s, "vk:a", "first")
        later = [await turn(s, "vk:a", f"n{i}") for i in range(40)]
        with pytest.raises(PreviousResponseNotFound):
            await s.conversation("vk:a", first)
        assert texts(await s.conversation("vk:a", later[-1])) == ["n39", "answer-n39"]

    asyncio.run(main())


def test_responses_state_store_down_saves_nothing_and_reads_answer_503() -> None:
    async def main() -> None:
        metrics = Metrics()
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.05)
        s = ResponseStates(store, ttl_s=60, max_record_bytes=MiB, max_conversation_bytes=MiB, metrics=metrics)
        try:
            rid = new_response_id()
            saved = await s.save("vk:a", response=response(rid, "a"), input_items=b"[]", previous_id=None)
            assert not saved and metrics.store_errors == 1
            for call in (
                s.get("vk:a", rid),
                s.conversation("vk:a", rid),
                s.input_items("vk:a", rid),
                s.delete("vk:a", rid),
            ):
                with pytest.raises(StoreUnavailable) as e:
                    await call
                assert e.value.status == 503
            assert metrics.store_errors == 5
        finally:
            await store.close()

    asyncio.run(main())


def test_responses_state_save_refuses_what_is_not_a_response() -> None:
    async def main() -> None:
        s = ResponseStates(MemoryStore(), ttl_s=60, max_record_bytes=MiB, max_conversation_bytes=MiB)
        for body in (b"[]", b'{"object":"response"}', b'{"id":"chatcmpl-1"}', b'{"id":"resp_x/../y"}'):
            with pytest.raises(ValueError):
                await s.save("vk:a", response=body, input_items=b"[]", previous_id=None)

    asyncio.run(main())


def test_responses_state_shared_by_two_processes_through_redis(redis_server: str) -> None:
    """Two gateway processes on one Redis: each its own store client and ResponseStates."""

    async def scenario(make: Callable[..., ResponseStates]) -> None:
        a, b = make(), make()
        r1 = await turn(a, "vk:a", "one")
        r2 = await turn(b, "vk:a", "two", r1)  # continued on the other process
        assert texts(await a.conversation("vk:a", r2)) == ["one", "answer-one", "two", "answer-two"]
        assert json.loads(await b.input_items("vk:a", r1))["data"][0]["content"][0]["text"] == "one"
        assert await a.get("vk:a", r2) == await b.get("vk:a", r2)
        with pytest.raises(ResponseNotFound):
            await b.get("vk:b", r1)
        assert await b.delete("vk:a", r1)
        with pytest.raises(ResponseNotFound):
            await a.get("vk:a", r1)
        with pytest.raises(PreviousResponseNotFound):
            await a.conversation("vk:a", r2)

    States("redis", redis_server).run(scenario)


def test_responses_state_native_index_names_the_upstream_for_its_owner_only(states: States) -> None:
    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s, short = make(), make(ttl_s=0.1)
        rid, brief = new_response_id(), new_response_id()
        assert await s.index("vk:a", response=response(rid, "up"), provider="up", model="gpt-x")
        assert await short.index("vk:a", response=response(brief, "up"), provider="up", model="gpt-x")
        found = await s.upstream("vk:a", rid)
        assert found is not None and (found.provider, found.model) == ("up", "gpt-x")
        assert await s.upstream("vk:b", rid) is None and await s.upstream("anonymous", rid) is None
        # Not the gateway's own: its reads answer as for an unknown id, and nothing is deleted.
        with pytest.raises(ResponseNotFound):
            await s.get("vk:a", rid)
        with pytest.raises(ResponseNotFound):
            await s.input_items("vk:a", rid)
        assert not await s.delete("vk:a", rid)
        # A translated request cannot continue it: its items are the upstream's.
        with pytest.raises(PreviousResponseNotFound) as e:
            await s.conversation("vk:a", rid)
        assert "provider 'up'" in e.value.message
        own = await turn(s, "vk:a", "mine")
        assert await s.upstream("vk:a", own) is None  # the gateway's own: no upstream
        await asyncio.sleep(0.25)
        assert await s.upstream("vk:a", brief) is None  # the kept-response TTL
        await s.forget(rid)
        assert await s.upstream("vk:a", rid) is None
        with pytest.raises(ValueError):
            await s.index("vk:a", response=response("resp_a/b", "x"), provider="up", model="gpt-x")

    states.run(scenario)


def test_responses_state_kept_conversation_reads_each_link_once(redis_server: str) -> None:
    """``kept_conversation`` (a native-first request continuing a response): the same
    items as ``conversation``, None for a response the gateway does not keep, and one
    Redis GET per link of the chain, as counted by the server (INFO commandstats): the
    record read to decide is the one the conversation starts from."""
    from redis.asyncio import Redis

    async def scenario(make: Callable[..., ResponseStates]) -> None:
        s = make()
        r1 = await turn(s, "vk:a", "one")
        r2 = await turn(s, "vk:a", "two", r1)
        native = new_response_id()
        assert await s.index("vk:a", response=response(native, "up"), provider="up", model="gpt-x")
        assert await s.kept_conversation("vk:a", native) is None
        assert await s.kept_conversation("vk:b", r2) is None  # another owner's
        assert await s.kept_conversation("vk:a", new_response_id()) is None
        assert await s.kept_conversation("vk:a", "msg_123") is None
        admin = Redis.from_url(redis_server)
        try:

            async def gets() -> int:
                stats: dict[str, dict[str, int]] = await admin.info("commandstats")
                return stats.get("cmdstat_get", {}).get("calls", 0)

            before = await gets()
            kept = await s.kept_conversation("vk:a", r2)
            assert await gets() - before == 2  # r2, then r1
        finally:
            await admin.aclose()
        assert kept == await s.conversation("vk:a", r2)
        assert texts(kept) == ["one", "answer-one", "two", "answer-two"]

    States("redis", redis_server).run(scenario)
