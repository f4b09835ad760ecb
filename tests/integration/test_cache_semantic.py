"""The response cache's semantic lookup over real sockets: gateways whose cache embeds
requests through the recording ``gateway mock``'s own embeddings (feature hashing: close
texts score close, docs/cache-vectors.md lists pairs), one with the in-process index and
two sharing one real redis-server; the official openai SDK as the client. A hit is
proven by the upstream's record: no new chat request, one new embeddings request."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Proc, RedisServer, free_port, metric, sdk_client, serve_config, start_mock

ADMIN = "admin-token-semantic-0123456789"
VK = "sk-bf-semantic-dora-0123456789"
# 0.871 with the mock's embeddings; each pair's other texts score under 0.1 against them.
ASKED = "How do I reverse a list in Python?"
REWORDED = "How can I reverse a list in Python?"
OTHER = "Explain how photosynthesis works"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_mock(tmp_path_factory.mktemp("semantic-up"), "--record", "1000")
    yield proc
    proc.stop()


def _config(up: Proc, **cache: Any) -> dict[str, Any]:
    return {
        "providers": {"up": {"base_url": up.url + "/v1", "client": "pool", "pricing_provider": "openai"}},
        "default_provider": "up",
        "cache": {"enabled": True, "embedding_model": "up/text-embedding-3-small", **cache},
        "auth": {
            "admin_token": ADMIN,
            "virtual_keys": [{"name": "dora", "value": VK, "rate_limits": [{"tokens": 100000, "window": "1h"}]}],
        },
    }


@pytest.fixture(scope="module")
def gw(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_config(_config(up), tmp_path_factory.mktemp("semantic-gw"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("semantic-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(up: Proc, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    d = tmp_path_factory.mktemp("semantic-pair")
    config = _config(up)
    config["store"] = {"prefix": f"gw-semantic-{free_port()}:", "timeout_s": 0.2}
    procs = [serve_config(config, d, name=f"gw{i}", env={"GATEWAY_REDIS_URL": redis.url}) for i in range(2)]
    yield procs
    for p in procs:
        p.stop()


def _counts(up: Proc) -> tuple[int, int]:
    """(chat completions, embeddings) the upstream has received."""
    paths = [r["path"] for r in httpx.get(up.url + "/mock/requests").json()]
    return sum(p.endswith("/chat/completions") for p in paths), sum(p.endswith("/embeddings") for p in paths)


def _ns() -> dict[str, str]:
    """A namespace of the test's own, asked with the SDK clients' credential (the caller
    is part of a namespace, ``cache.shared`` being off)."""
    return {"x-bf-cache-key": uuid.uuid4().hex, "Authorization": "Bearer x"}


def _ask(proc: Proc, text: str, headers: dict[str, str], **more: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **more}
    r = httpx.post(proc.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _debug(answer: dict[str, Any]) -> dict[str, Any]:
    debug: dict[str, Any] = answer["extra_fields"]["cache_debug"]
    return debug


def test_semantic_paraphrase_hits_above_the_threshold_and_misses_below(gw: Proc, up: Proc) -> None:
    h = _ns()
    client = sdk_client(gw.url + "/v1")
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASKED}], extra_headers=h
    )
    kept = (first.model_extra or {})["extra_fields"]["cache_debug"]
    assert kept["cache_hit"] is False and kept["input_tokens"] > 0 and kept["threshold"] == 0.8
    chats, embeds = _counts(up)
    again = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": REWORDED}], extra_headers=h
    )
    assert _counts(up) == (chats, embeds + 1)  # embedded, not asked upstream
    debug = (again.model_extra or {})["extra_fields"]["cache_debug"]
    assert debug["cache_hit"] is True and debug["hit_type"] == "semantic"
    assert 0.8 <= debug["similarity"] < 0.95 and debug["threshold"] == 0.8
    assert debug["cache_id"] == kept["cache_id"]  # the entry that answered
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.usage is not None and first.usage is not None
    assert (again.usage.prompt_tokens, again.usage.completion_tokens) == (
        first.usage.prompt_tokens,
        first.usage.completion_tokens,
    )
    # What was spent: the embedding, priced, far below the answer's own cost.
    spent = (again.usage.model_extra or {})["cost"]["total_cost"]
    assert 0 < spent < (first.usage.model_extra or {})["cost"]["total_cost"]
    # Asked for more similarity than the pair has: a miss, relayed.
    strict = _ask(gw, REWORDED, {**h, "x-bf-cache-threshold": "0.95"})
    assert _debug(strict)["cache_hit"] is False and _debug(strict)["threshold"] == 0.95
    assert _counts(up)[0] == chats + 1
    # Another question: a miss.
    assert _debug(_ask(gw, OTHER, h))["cache_hit"] is False


def test_semantic_compares_only_requests_alike_in_all_else(gw: Proc, up: Proc) -> None:
    h = _ns()
    _ask(gw, ASKED, h)
    assert _debug(_ask(gw, REWORDED, h, temperature=0.3))["cache_hit"] is False
    system = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": REWORDED}]
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": system}, headers=h)
    assert _debug(r.json())["cache_hit"] is False  # another conversation
    assert _debug(_ask(gw, REWORDED, _ns()))["cache_hit"] is False  # another namespace
    assert _debug(_ask(gw, REWORDED, h))["hit_type"] == "semantic"


def test_semantic_hit_streams_a_kept_unary_answer(gw: Proc, up: Proc) -> None:
    h = _ns()
    first = _ask(gw, ASKED, h)
    chats, _ = _counts(up)
    client = sdk_client(gw.url + "/v1")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": REWORDED}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=h,
        )
    )
    assert _counts(up)[0] == chats
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first["choices"][0]["message"]["content"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == first["usage"]["completion_tokens"]
    assert (usage.model_extra or {})["cost"]["total_cost"] > 0  # the embedding


def test_semantic_type_header_picks_the_lookup(gw: Proc, up: Proc) -> None:
    h = _ns()
    _ask(gw, ASKED, h)
    _, embeds = _counts(up)
    direct = _ask(gw, REWORDED, {**h, "x-bf-cache-type": "direct"})
    assert _debug(direct)["cache_hit"] is False and _counts(up)[1] == embeds  # nothing embedded
    # Semantic only: the same text again is found by its vector, not its key.
    same = _ask(gw, ASKED, {**h, "x-bf-cache-type": "semantic"})
    assert _debug(same)["hit_type"] == "semantic" and _debug(same)["similarity"] == pytest.approx(1.0)
    assert _debug(_ask(gw, ASKED, h))["hit_type"] == "direct"  # both: direct first, no embedding


def test_semantic_hit_charges_the_embedding_only(gw: Proc, up: Proc) -> None:
    h = {**_ns(), "x-bf-vk": VK}

    def used() -> int:
        view = httpx.get(f"{gw.url}/api/keys/dora", headers={"Authorization": f"Bearer {ADMIN}"}).json()
        return int(next(u["used"] for u in view["usage"] if u["kind"] == "tokens"))

    start = used()
    miss = _ask(gw, ASKED, h)
    embedded = _debug(miss)["input_tokens"]
    hit = _ask(gw, REWORDED, h)
    assert _debug(hit)["hit_type"] == "semantic"
    want = start + miss["usage"]["total_tokens"] + embedded + _debug(hit)["input_tokens"]
    deadline = time.monotonic() + 2.0
    while used() != want:  # settled off the request's path
        assert time.monotonic() < deadline, (start, want, used())
        time.sleep(0.05)


def test_semantic_embedding_failure_is_a_miss(up: Proc, tmp_path: Any) -> None:
    config = _config(up, embedding_model="down/text-embedding-3-small")
    config["providers"]["down"] = {"base_url": f"http://127.0.0.1:{free_port()}/v1"}
    proc = serve_config(config, tmp_path)
    try:
        h = _ns()
        for text in (ASKED, REWORDED):
            answer = _ask(proc, text, h)
            assert _debug(answer)["cache_hit"] is False
        assert metric(proc, "gateway_cache_lookups_total", type="semantic", result="error") == 2
        assert _debug(_ask(proc, ASKED, h))["hit_type"] == "direct"  # the direct half still works
    finally:
        proc.stop()


def test_semantic_entry_found_by_another_gateway_through_redis(pair: list[Proc], up: Proc) -> None:
    h = _ns()
    first = _ask(pair[0], ASKED, h)
    deadline = time.monotonic() + 5.0
    while True:
        answer = _ask(pair[1], REWORDED, {**h, "x-bf-cache-no-store": "true"})
        if _debug(answer)["cache_hit"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert _debug(answer)["hit_type"] == "semantic"
    assert answer["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    # Invalidated on one, gone on both.
    r = httpx.delete(f"{pair[1].url}/api/cache?key={h['x-bf-cache-key']}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200
    assert _debug(_ask(pair[0], REWORDED, {**h, "x-bf-cache-no-store": "true"}))["cache_hit"] is False


def test_semantic_text_completion_hits_by_its_prompt(gw: Proc, up: Proc) -> None:
    h = _ns()
    client = sdk_client(gw.url + "/v1")
    first = client.completions.create(model="gpt-4o-mini", prompt=ASKED, extra_headers=h)
    chats = len([r for r in httpx.get(up.url + "/mock/requests").json() if r["path"].endswith("/completions")])
    again = client.completions.create(model="gpt-4o-mini", prompt=REWORDED, extra_headers=h)
    after = len([r for r in httpx.get(up.url + "/mock/requests").json() if r["path"].endswith("/completions")])
    assert after == chats and again.choices[0].text == first.choices[0].text
    assert (again.model_extra or {})["extra_fields"]["cache_debug"]["hit_type"] == "semantic"


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A mock whose embeddings answer after 3 s."""
    proc = start_mock(tmp_path_factory.mktemp("semantic-slow"), "--ttft-ms", "3000")
    yield proc
    proc.stop()


def _slow_gateway(up: Proc, slow: Proc, tmp_path: Any, **cache: Any) -> Proc:
    config = _config(up, embedding_model="slow/text-embedding-3-small", **cache)
    config["providers"]["slow"] = {"base_url": slow.url + "/v1"}
    return serve_config(config, tmp_path)


def test_semantic_embedding_past_its_deadline_is_a_miss(up: Proc, slow: Proc, tmp_path: Any) -> None:
    proc = _slow_gateway(up, slow, tmp_path, embedding_timeout_s=0.3)
    try:
        t0 = time.monotonic()
        answer = _ask(proc, ASKED, _ns())
        assert time.monotonic() - t0 < 2.0  # not the embedding's 3 s
        assert _debug(answer)["cache_hit"] is False
        assert metric(proc, "gateway_cache_lookups_total", type="semantic", result="error") == 1
    finally:
        proc.stop()


def _given_up(proc: Proc, rid: str, model: str, *, read_s: float) -> dict[str, Any]:
    """The access log record of request ``rid`` to ``model``, whose client gave up
    waiting for its answer after ``read_s``."""
    body = {"model": model, "messages": [{"role": "user", "content": ASKED}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            proc.url + "/v1/chat/completions",
            json=body,
            headers={**_ns(), "x-request-id": rid},
            timeout=httpx.Timeout(10, read=read_s),
        )
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(x) for x in proc.log.read_text().splitlines() if x.startswith('{"ts"')]
        mine = [x for x in lines if x.get("request_id") == rid]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1, mine
    return mine[0]


def test_semantic_client_gone_during_the_embedding_is_recorded(up: Proc, slow: Proc, tmp_path: Any) -> None:
    proc = _slow_gateway(up, slow, tmp_path, embedding_timeout_s=10)
    try:
        # The client gives up while the embedding runs.
        record = _given_up(proc, f"semantic-gone-{proc.port}", "gpt-4o-mini", read_s=0.3)
        assert (record["status"], record["error"]) == (499, "client_closed")
    finally:
        proc.stop()


def test_semantic_client_gone_during_the_relay_is_charged_the_embedding(up: Proc, slow: Proc, tmp_path: Any) -> None:
    """The embedding was spent before the client went away: its 499 record says so."""
    config = _config(up)  # embeddings from the fast mock
    config["providers"]["slow"] = {"base_url": slow.url + "/v1"}  # its chat answers after 3 s
    proc = serve_config(config, tmp_path)
    try:
        record = _given_up(proc, f"semantic-relay-gone-{proc.port}", "slow/gpt-4o-mini", read_s=0.5)
        assert (record["status"], record["error"]) == (499, "client_closed")
        assert record["tokens_in"] > 0 and record["cost_usd"] > 0  # the embedding
    finally:
        proc.stop()


def test_semantic_no_embedding_while_the_store_is_down(pair: list[Proc], up: Proc, redis: RedisServer) -> None:
    h = _ns()
    redis.stop()
    try:
        assert _debug(_ask(pair[0], ASKED, h))["cache_hit"] is False  # the outage found
        _, embeds = _counts(up)
        for text in (REWORDED, OTHER):
            assert _debug(_ask(pair[0], text, h))["cache_hit"] is False
        assert _counts(up)[1] == embeds  # nothing it could keep was paid for
    finally:
        redis.start()


def test_semantic_equal_requests_at_once_are_all_answered(gw: Proc) -> None:
    """Equal requests missing together are all relayed and kept under one id (its
    vector added again and again): every one answered, then a hit."""
    from concurrent.futures import ThreadPoolExecutor

    h = {**_ns(), "x-bf-cache-type": "semantic"}  # no direct hit to end the race early
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: _ask(gw, OTHER, h), range(64)))
    assert len({a["choices"][0]["message"]["content"] for a in answers}) == 1
    assert _debug(_ask(gw, OTHER, {**h, "x-bf-cache-type": "semantic"}))["hit_type"] == "semantic"


def test_semantic_embeds_through_a_gemini_dialect_provider(up: Proc, tmp_path: Any) -> None:
    """The embedding model may be any provider's: a Gemini-dialect one (its answer
    translated, base64 as asked for) finds a paraphrase as the OpenAI dialect does."""
    config = _config(up, embedding_model="gem/text-embedding-004")
    config["providers"]["gem"] = {"dialect": "gemini", "base_url": up.url, "keys": [{"value": "k"}]}
    proc = serve_config(config, tmp_path)
    try:
        h = _ns()
        _ask(proc, ASKED, h)
        paths = [r["path"] for r in httpx.get(up.url + "/mock/requests").json()]
        assert paths[-2].endswith(":batchEmbedContents"), paths[-3:]  # embedded in Gemini's dialect
        debug = _debug(_ask(proc, REWORDED, h))
        assert debug["hit_type"] == "semantic" and debug["similarity"] >= 0.8
    finally:
        proc.stop()
