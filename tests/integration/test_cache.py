"""The response cache over real sockets: a gateway with the in-process store and two
gateways sharing one real redis-server, in front of a recording ``gateway mock``; the
official openai SDK as the client. A hit is proven by the upstream's own record of what
it received (no new request), not by the gateway's word."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, RedisServer, free_port, metric, sdk_client, serve_config, start_mock

ADMIN = "admin-token-cache-0123456789"
VK_A = "sk-bf-cache-alice-0123456789"
VK_B = "sk-bf-cache-bob-0123456789ab"
VK_C = "sk-bf-cache-carol-0123456789"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("cache-up"), "--record", "1000")
    yield proc
    proc.stop()


def _config(up: Proc, **cache: Any) -> dict[str, Any]:
    return {
        "providers": {"up": {"base_url": up.url + "/v1", "client": "pool"}},
        "default_provider": "up",
        "aliases": {"fast": "up/gpt-fast"},
        "cache": {"enabled": True, **cache},
        "auth": {
            "admin_token": ADMIN,
            "virtual_keys": [
                {"name": "alice", "value": VK_A},
                {"name": "bob", "value": VK_B},
                {"name": "carol", "value": VK_C, "rate_limits": [{"tokens": 100000, "window": "1h"}]},
            ],
        },
    }


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_config(_config(up, max_entry_bytes=8192), tmp_path_factory.mktemp("cache-gw"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def shared_gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """Every request takes part, callers share namespaces, streams replay paced; one
    model has the cache off."""
    config = _config(
        up, every_request=True, shared=True, stream_replay="paced", models={"up/gpt-off": {"enabled": False}}
    )
    proc = serve_config(config, tmp_path_factory.mktemp("cache-shared"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("cache-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(up: Proc, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    d = tmp_path_factory.mktemp("cache-pair")
    config = _config(up)
    config["store"] = {"prefix": f"gw-cache-{free_port()}:", "timeout_s": 0.2}
    procs = [serve_config(config, d, name=f"gw{i}", env={"GATEWAY_REDIS_URL": redis.url}) for i in range(2)]
    yield procs
    for p in procs:
        p.stop()


def _received(up: Proc) -> int:
    return len(httpx.get(up.url + "/mock/requests").json())


def _ns() -> dict[str, str]:
    """A namespace of the test's own: tests never see each other's entries."""
    return {"x-bf-cache-key": uuid.uuid4().hex}


def _body(text: str, **more: Any) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": [{"role": "user", "content": text}], **more}


def _post(proc: Proc, body: str | dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    if isinstance(body, str):
        return httpx.post(proc.url + "/v1/chat/completions", content=body, headers=headers, timeout=10)
    return httpx.post(proc.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def _debug(answer: dict[str, Any]) -> dict[str, Any]:
    debug: dict[str, Any] = answer["extra_fields"]["cache_debug"]
    return debug


def _stream_text(proc: Proc, headers: dict[str, str], text: str, **more: Any) -> tuple[str, list[Any]]:
    client = sdk_client(proc.url + "/v1")
    chunks = list(
        client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": text}], stream=True, extra_headers=headers, **more
        )
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_cache_sdk_unary_hit_is_identical_and_goes_nowhere(gw: Proc, up: Proc) -> None:
    client = sdk_client(gw.url + "/v1")
    h = _ns()
    first = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "unary"}], extra_headers=h
    )
    before = _received(up)
    second = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "unary"}], extra_headers=h
    )
    assert _received(up) == before  # no upstream call
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage is not None and first.usage is not None
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert second.usage.completion_tokens == first.usage.completion_tokens
    extra = second.model_extra or {}
    assert extra["extra_fields"]["cache_debug"]["cache_hit"] is True
    assert extra["extra_fields"]["cache_debug"]["hit_type"] == "direct"
    assert (first.model_extra or {})["extra_fields"]["cache_debug"]["cache_hit"] is False
    assert (second.usage.model_extra or {})["cost"]["total_cost"] == 0


def test_cache_sdk_stream_hit_is_identical_in_both_forms(gw: Proc, up: Proc) -> None:
    h = _ns()
    text, chunks = _stream_text(gw, h, "streamed")
    assert text and chunks[-1].choices and chunks[-1].usage is not None  # usage on the finish chunk
    before = _received(up)
    again, replayed = _stream_text(gw, h, "streamed")
    assert again == text
    # Replayed chunk by chunk, as the upstream sent them.
    assert [c.choices[0].delta.content for c in replayed if c.choices] == [
        c.choices[0].delta.content for c in chunks if c.choices
    ]
    assert _received(up) == before
    # The client asks for the usage chunk this time: the same entry, usage where it asked.
    with_usage, chunks = _stream_text(gw, h, "streamed", stream_options={"include_usage": True})
    assert with_usage == text and chunks[-1].usage is not None and not chunks[-1].choices
    # A non-streaming request gets the stream assembled.
    client = sdk_client(gw.url + "/v1")
    whole = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "streamed"}], extra_headers=h
    )
    assert whole.choices[0].message.content == text and whole.choices[0].finish_reason == "stop"
    assert _received(up) == before


def test_cache_stream_request_hits_a_unary_entry_split(gw: Proc, up: Proc) -> None:
    h = _ns()
    client = sdk_client(gw.url + "/v1")
    whole = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "split"}], extra_headers=h
    )
    before = _received(up)
    text, chunks = _stream_text(gw, h, "split", stream_options={"include_usage": True})
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert _received(up) == before


def test_cache_key_ignores_order_spacing_and_user_but_not_temperature(gw: Proc, up: Proc) -> None:
    h = _ns()
    assert (
        _debug(_post(gw, '{"model":"gpt-x","temperature":0.5,"messages":[{"role":"user","content":"k"}]}', h).json())[
            "cache_hit"
        ]
        is False
    )
    reordered = (
        '{ "messages" : [ {"content": "k", "role": "user"} ], "temperature": 0.50, "model": "gpt-x", "user": "u1" }'
    )
    before = _received(up)
    assert _debug(_post(gw, reordered, h).json())["cache_hit"] is True
    assert _received(up) == before
    hotter = _post(gw, '{"model":"gpt-x","temperature":0.9,"messages":[{"role":"user","content":"k"}]}', h).json()
    assert _debug(hotter)["cache_hit"] is False
    assert _received(up) == before + 1
    # Aliases resolve first: "fast" is up/gpt-fast, another model than gpt-x.
    assert _debug(_post(gw, _body("k", model="fast", temperature=0.5), h).json())["cache_hit"] is False


def test_cache_takes_no_part_without_a_namespace(gw: Proc, up: Proc) -> None:
    answer = _post(gw, _body("no header"), {}).json()
    assert "cache_debug" not in answer["extra_fields"]


@pytest.mark.parametrize(
    ("why", "more"),
    [
        ("cut stream", {"stream": True, "mock": {"reset_after": 3}}),
        ("early end", {"stream": True, "mock": {"end_after": 3}}),
        ("error", {"mock": {"fail_status": 500}}),
        ("length", {"max_tokens": 3}),
        ("length stream", {"stream": True, "max_tokens": 3}),
        ("oversize", {"mock": {"tokens": 3000}}),
        ("oversize stream", {"stream": True, "mock": {"tokens": 3000}}),
    ],
)
def test_cache_keeps_no_incomplete_or_failed_answer(gw: Proc, up: Proc, why: str, more: dict[str, Any]) -> None:
    h = _ns()
    body = _body(f"not kept: {why}", **more)
    before = _received(up)
    for _ in range(2):
        _post(gw, body, h).read()
    assert _received(up) == before + 2, why


def test_cache_no_store_reads_but_never_writes(gw: Proc, up: Proc) -> None:
    h = _ns()
    before = _received(up)
    _post(gw, _body("ns"), {**h, "x-bf-cache-no-store": "true"})
    assert _debug(_post(gw, _body("ns"), h).json())["cache_hit"] is False  # nothing was kept
    assert _debug(_post(gw, _body("ns"), {**h, "x-bf-cache-no-store": "true"}).json())["cache_hit"] is True
    assert _received(up) == before + 2


def test_cache_ttl_header_expires_entries(gw: Proc) -> None:
    h = {**_ns(), "x-bf-cache-ttl": "1s"}
    _post(gw, _body("ttl"), h)
    assert _debug(_post(gw, _body("ttl"), h).json())["cache_hit"] is True
    time.sleep(1.1)
    assert _debug(_post(gw, _body("ttl"), h).json())["cache_hit"] is False


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-bf-cache-ttl", "5x"),
        ("x-bf-cache-ttl", "0"),
        ("x-bf-cache-ttl", "31d"),
        ("x-bf-cache-type", "fuzzy"),
        ("x-bf-cache-threshold", "1.5"),
        ("x-bf-cache-threshold", "nan"),
        ("x-bf-cache-no-store", "maybe"),
        ("x-bf-cache-key", "k" * 257),
    ],
)
def test_cache_bad_header_is_a_400_naming_it(gw: Proc, header: str, value: str) -> None:
    r = _post(gw, _body("bad"), {header: value})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == header and header in error["message"] and error["code"] == "invalid_header"


def test_cache_virtual_keys_do_not_see_each_other(gw: Proc, up: Proc) -> None:
    h = _ns()
    _post(gw, _body("mine"), {**h, "x-bf-vk": VK_A})
    assert _debug(_post(gw, _body("mine"), {**h, "x-bf-vk": VK_B}).json())["cache_hit"] is False
    assert _debug(_post(gw, _body("mine"), {**h, "x-bf-vk": VK_A}).json())["cache_hit"] is True
    assert _debug(_post(gw, _body("mine"), h).json())["cache_hit"] is False  # anonymous: its own


def _tokens_used(gw: Proc, key: str) -> int:
    view = httpx.get(f"{gw.url}/api/keys/{key}", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    return int(next(u["used"] for u in view["usage"] if u["kind"] == "tokens"))


def test_cache_hit_charges_nothing(gw: Proc) -> None:
    h = {**_ns(), "x-bf-vk": VK_C}
    start = _tokens_used(gw, "carol")
    miss = _post(gw, _body("charged once"), h).json()
    spent = miss["usage"]["total_tokens"]
    for _ in range(3):
        hit = _post(gw, _body("charged once"), h).json()
        assert _debug(hit)["cache_hit"] is True and hit["usage"]["total_tokens"] == spent
    deadline = time.monotonic() + 2.0
    while _tokens_used(gw, "carol") != start + spent:  # settled off the request's path
        assert time.monotonic() < deadline, (start, spent, _tokens_used(gw, "carol"))
        time.sleep(0.05)


def test_cache_text_completions_hit_in_both_forms(gw: Proc, up: Proc) -> None:
    h = _ns()
    client = sdk_client(gw.url + "/v1")
    first = client.completions.create(model="gpt-x", prompt="say something", extra_headers=h)
    before = _received(up)
    again = client.completions.create(model="gpt-x", prompt="say something", extra_headers=h)
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="gpt-x", prompt="say something", stream=True, extra_headers=h)
        if c.choices
    )
    assert again.choices[0].text == first.choices[0].text == streamed
    assert _received(up) == before


def test_cache_shared_every_request_and_paced(shared_gw: Proc, up: Proc) -> None:
    body = _body("everyone's", stream=True, mock={"itl_ms": 30, "tokens": 8})
    first = _post(shared_gw, body, {"x-bf-vk": VK_A})  # no x-bf-cache-key: every_request
    assert "[DONE]" in first.text
    before = _received(up)
    t0 = time.monotonic()
    replay = _post(shared_gw, body, {"x-bf-vk": VK_B})  # another caller: shared
    took = time.monotonic() - t0
    assert _received(up) == before and '"cache_hit":true' in replay.text
    assert took > 0.15  # paced: ~8 gaps of 30 ms, not at once
    off = _post(shared_gw, _body("off", model="up/gpt-off"), {}).json()
    assert "cache_debug" not in off["extra_fields"]  # the model's override turns it off


def test_cache_invalidation_by_id_and_by_namespace(gw: Proc) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    h = _ns()
    cache_id = _debug(_post(gw, _body("one"), h).json())["cache_id"]
    _post(gw, _body("two"), h)
    assert httpx.delete(f"{gw.url}/api/cache/{cache_id}").status_code == 401
    r = httpx.delete(f"{gw.url}/api/cache/{cache_id}", headers=auth)
    assert r.status_code == 200 and r.json()["deleted"] == 1
    assert httpx.delete(f"{gw.url}/api/cache/{cache_id}", headers=auth).status_code == 404
    assert httpx.delete(f"{gw.url}/api/cache/not-an-id", headers=auth).status_code == 404
    assert _debug(_post(gw, _body("one"), h).json())["cache_hit"] is False
    r = httpx.delete(f"{gw.url}/api/cache", params={"key": h["x-bf-cache-key"]}, headers=auth)
    assert r.status_code == 200 and r.json()["deleted"] == 2
    assert _debug(_post(gw, _body("two"), h).json())["cache_hit"] is False
    assert httpx.delete(f"{gw.url}/api/cache", headers=auth).status_code == 400


def test_cache_metrics_count_hits_and_misses(gw: Proc) -> None:
    hits = metric(gw, "gateway_cache_lookups_total", type="direct", result="hit")
    misses = metric(gw, "gateway_cache_lookups_total", type="direct", result="miss")
    h = _ns()
    _post(gw, _body("metrics"), h)
    _post(gw, _body("metrics"), h)
    assert metric(gw, "gateway_cache_lookups_total", type="direct", result="hit") == hits + 1
    assert metric(gw, "gateway_cache_lookups_total", type="direct", result="miss") == misses + 1
    assert metric(gw, "gateway_cache_entries") > 0 and metric(gw, "gateway_cache_bytes") > 0


def _hit_eventually(proc: Proc, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The other replica's write is in the background: a hit within a second. As the SDK
    client (its credential is part of the namespace)."""
    deadline = time.monotonic() + 1.0
    headers = {**headers, "Authorization": "Bearer x"}
    while True:
        answer: dict[str, Any] = _post(
            proc, {**body, "stream": False}, {**headers, "x-bf-cache-no-store": "true"}
        ).json()
        if _debug(answer)["cache_hit"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


def test_cache_shared_by_two_gateways_through_redis(pair: list[Proc], up: Proc) -> None:
    h = _ns()
    first = sdk_client(pair[0].url + "/v1").chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "shared"}], extra_headers=h
    )
    answer = _hit_eventually(pair[1], _body("shared"), h)
    assert _debug(answer)["cache_hit"] is True
    assert answer["choices"][0]["message"]["content"] == first.choices[0].message.content
    # A stream written by the second, replayed by the first through the SDK.
    text, _ = _stream_text(pair[1], h, "shared stream")
    _hit_eventually(pair[0], _body("shared stream"), h)
    before = _received(up)
    again, _ = _stream_text(pair[0], h, "shared stream")
    assert again == text and _received(up) == before


def test_cache_redis_down_is_a_miss_not_a_failure(pair: list[Proc], redis: RedisServer) -> None:
    h = _ns()
    errors = metric(pair[0], "gateway_cache_errors_total")
    redis.stop()
    try:
        for stream in (False, True):
            r = _post(pair[0], _body("outage", stream=stream), h)
            assert r.status_code == 200
            assert "[DONE]" in r.text if stream else _debug(r.json())["cache_hit"] is False
        assert metric(pair[0], "gateway_cache_errors_total") > errors
    finally:
        redis.start()
    # Tried again within a second of the outage's end: an answer kept, then a hit.
    auth = {**h, "Authorization": "Bearer x"}
    deadline = time.monotonic() + 5.0
    while _debug(_post(pair[0], _body("after"), auth).json())["cache_hit"] is False:
        assert time.monotonic() < deadline, "the cache did not come back after the outage"
        time.sleep(0.1)


def test_cache_hung_redis_costs_one_deadline_not_one_per_request(pair: list[Proc], redis: RedisServer) -> None:
    h = _ns()
    redis.pause()
    try:
        t0 = time.monotonic()
        for _ in range(10):
            assert _post(pair[1], _body("hung"), h).status_code == 200
        # store.timeout_s 0.2 (~0.25 s a lookup): paid by the first request, not by all ten.
        assert time.monotonic() - t0 < 1.2
    finally:
        redis.resume()


def test_cache_type_semantic_without_an_embedding_model_takes_the_direct_lookup(gw: Proc, up: Proc) -> None:
    h = _ns()
    _post(gw, _body("only direct here"), h)
    before = _received(up)
    answer = _post(gw, _body("only direct here"), {**h, "x-bf-cache-type": "semantic"}).json()
    assert _debug(answer)["hit_type"] == "direct" and _received(up) == before
