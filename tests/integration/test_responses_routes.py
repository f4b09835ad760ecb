"""GET / DELETE /v1/responses/{id} and GET .../input_items on real gateway processes,
with the openai SDK and httpx: under every OpenAI root, credentials required when auth
is, the one 404 for any id it does not keep (unknown or malformed), OpenAI error bodies;
over the in-memory store, the supervisor's store of its workers, and Redis.

Nothing is kept until ``POST /v1/responses`` keeps it, so a response read back is tested
with that route; ownership, expiry, paging and sharing are tested on the state layer
(tests/unit/server/test_responses_state.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, free_port

VK = "sk-bf-responses-a-0123456789abcdef"
ROOTS = (
    "/v1",
    "/openai/v1",
    "/openai",
    "/langchain/v1",
    "/langchain",
    "/pydanticai/v1",
    "/pydanticai",
    "/litellm/v1",
    "/litellm",
)
UNKNOWN = "resp_" + "0" * 48
NOT_FOUND = {
    "message": "No such response: unknown, expired, deleted, or stored for another credential.",
    "type": "invalid_request_error",
    "param": None,
    "code": "response_not_found",
}


def serve(d: Path, *, name: str, args: tuple[str, ...] = (), **extra: Any) -> Proc:
    cfg = {"providers": {"mock": {"dialect": "mock"}}, "default_provider": "mock", **extra}
    path = d / f"{name}.json"
    path.write_text(json.dumps(cfg))
    port = free_port()
    return Proc(["serve", "--config", str(path), "--port", str(port), *args], port=port, log=d / f"{name}.log")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    auth = {"required": True, "virtual_keys": [{"name": "a", "value": VK}]}
    proc = serve(tmp_path_factory.mktemp("gw-responses"), name="gateway", auth=auth)
    yield proc
    proc.stop()


def bearer(key: str = VK) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_responses_routes_unknown_id_is_a_404_under_every_root(gw: Proc) -> None:
    for root in ROOTS:
        for method, tail in (("GET", ""), ("DELETE", ""), ("GET", "/input_items")):
            r = httpx.request(method, f"{gw.url}{root}/responses/{UNKNOWN}{tail}", headers=bearer())
            assert r.status_code == 404, (root, method, tail, r.text)
            assert r.json() == {"error": NOT_FOUND}
            assert r.headers["content-type"].startswith("application/json")


def test_responses_routes_malformed_ids_get_the_same_404(gw: Proc) -> None:
    for bad in ("nope", "resp_", "resp_" + "a" * 129, "resp_a-b", "resp_%00", "msg_123", "resp_a%20b", "input_tokens"):
        for method in ("GET", "DELETE"):
            r = httpx.request(method, f"{gw.url}/v1/responses/{bad}", headers=bearer())
            if bad == "input_tokens":  # the token count's own route (POST only)
                assert (r.status_code, r.headers["allow"]) == (405, "POST"), (bad, method)
                continue
            assert (r.status_code, r.json()) == (404, {"error": NOT_FOUND}), (bad, method)
        r = httpx.get(f"{gw.url}/v1/responses/{bad}/input_items", headers=bearer())
        assert (r.status_code, r.json()) == (404, {"error": NOT_FOUND}), bad


def test_responses_routes_through_the_openai_sdk(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=VK, max_retries=0, timeout=10) as client:
        with pytest.raises(openai.NotFoundError) as e:
            client.responses.retrieve(UNKNOWN)
        assert e.value.code == "response_not_found"
        with pytest.raises(openai.NotFoundError):
            client.responses.delete(UNKNOWN)
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list(UNKNOWN, limit=5, order="asc")
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.input_items.list(UNKNOWN, limit=101)
        assert bad.value.body == {
            "message": "limit must be between 1 and 100",
            "type": "invalid_request_error",
            "param": "limit",
            "code": "invalid_value",
        }


def test_responses_routes_need_credentials_when_auth_is_required(gw: Proc) -> None:
    for headers in ({}, bearer("sk-bf-not-a-key-0123456789abcdef")):
        for method, tail in (("GET", ""), ("DELETE", ""), ("GET", "/input_items")):
            r = httpx.request(method, f"{gw.url}/openai/responses/{UNKNOWN}{tail}", headers=headers)
            assert r.status_code == 401, (headers, method, tail)
            assert r.json()["error"]["type"] == "authentication_error"


def test_responses_routes_bad_queries_and_methods(gw: Proc) -> None:
    url = f"{gw.url}/v1/responses/{UNKNOWN}"
    for query, param in (("limit=0", "limit"), ("limit=x", "limit"), ("order=up", "order")):
        r = httpx.get(f"{url}/input_items?{query}", headers=bearer())
        assert (r.status_code, r.json()["error"]["param"]) == (400, param), query
    r = httpx.get(f"{url}?stream=true", headers=bearer())
    assert (r.status_code, r.json()["error"]["code"]) == (400, "unsupported_parameter")
    r = httpx.post(url, headers=bearer(), json={})
    assert (r.status_code, r.headers["allow"]) == (405, "GET, DELETE")
    r = httpx.delete(f"{url}/input_items", headers=bearer())
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
    r = httpx.get(f"{url}/output_items", headers=bearer())
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_url")
    # The root serves /v1/... only, as for every OpenAI route.
    assert httpx.get(f"{gw.url}/responses/{UNKNOWN}", headers=bearer()).status_code == 404
    assert httpx.get(f"{gw.url}/responses/{UNKNOWN}", headers=bearer()).json()["error"]["code"] == "unknown_url"


@pytest.mark.parametrize("store", ["workers", "redis"])
def test_responses_routes_over_shared_stores(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The supervisor's store (two workers, no Redis) and Redis answer the routes too:
    a store that did not know the operations would answer 503."""
    if store == "redis":
        proc = serve(tmp_path, name=store, store={"redis_url": request.getfixturevalue("redis_server")})
    else:
        proc = serve(tmp_path, name=store, args=("--workers", "2"))
    try:
        for _ in range(4):  # new connections: both workers, likely
            for method, tail in (("GET", ""), ("DELETE", ""), ("GET", "/input_items")):
                r = httpx.request(method, f"{proc.url}/v1/responses/{UNKNOWN}{tail}")
                assert (r.status_code, r.json()) == (404, {"error": NOT_FOUND}), (method, tail, r.text)
    finally:
        proc.stop()
