"""Reads of a response an upstream keeps (served natively), proxied by the gateway to
that upstream, made as a chat call to it is: the client's ``x-bf-eh-*`` headers reach
the upstream, the key is chosen (or pinned) and cooled down by the same attempt loop, the
request is counted in ``gateway_requests_total`` under the provider and model, and its
access log line names them. A real gateway in front of ``gateway mock`` (which keeps the
responses it answers and records the requests it receives)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, metric, serve_config
from tests.integration.test_bad_input import access_line
from tests.integration.test_responses_native import KEY, client, gw, up  # noqa: F401 (fixtures, named by the tests)
from tests.integration.test_responses_stored import check_inherited_turns

ROUTE = "/v1/responses/"


def _received(upstream: Proc) -> list[dict[str, Any]]:
    return list(httpx.get(upstream.url + "/mock/requests").json())


def _header(seen: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in seen["headers"].items() if k.lower() == name), None)


def _answered(gateway: Proc, status: str) -> float:
    return metric(gateway, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status=status)


def test_responses_native_reads_forward_extra_headers_and_are_counted(
    gw: Proc,  # noqa: F811
    up: Proc,  # noqa: F811
    client: openai.OpenAI,  # noqa: F811
) -> None:
    r = client.responses.create(model="up/gpt-x", input="Read me")
    httpx.delete(up.url + "/mock/requests").raise_for_status()
    before = _answered(gw, "200")
    extra = {"x-bf-eh-x-custom": "1", "x-request-id": "native-read-eh-1"}
    got = client.responses.retrieve(r.id, extra_headers=extra)
    assert got.id == r.id
    items = client.responses.input_items.list(r.id, extra_headers=extra | {"x-request-id": "native-read-eh-2"})
    assert [i.type for i in items.data] == ["message"]
    client.responses.delete(r.id, extra_headers=extra | {"x-request-id": "native-read-eh-3"})
    seen = _received(up)
    assert [(s["method"], s["path"]) for s in seen] == [
        ("GET", f"/v1/responses/{r.id}"),
        ("GET", f"/v1/responses/{r.id}/input_items"),
        ("DELETE", f"/v1/responses/{r.id}"),
    ]
    # Forwarded as chat forwards them: the name without its prefix, the value as sent.
    assert all(_header(s, "x-custom") == "1" for s in seen)
    assert all(_header(s, "x-bf-eh-x-custom") is None for s in seen)
    assert _answered(gw, "200") - before == 3
    for rid in ("native-read-eh-1", "native-read-eh-2", "native-read-eh-3"):
        line = access_line(gw, rid)
        assert (line["provider"], line["model"], line["status"]) == ("up", "gpt-x", 200)
        assert line["upstream_ms"] > 0


WRONG = "sk-wrong-native-key-0123456789"


@pytest.fixture(scope="module")
def two_keys(up: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:  # noqa: F811
    keys = [{"name": "good", "value": "env.NATIVE_KEY"}, {"name": "bad", "value": "env.WRONG_KEY"}]
    config = {"providers": {"up": {"base_url": up.url + "/v1", "keys": keys, "responses": "native"}}}
    proc = serve_config(config, tmp_path_factory.mktemp("native-reads"), env={"NATIVE_KEY": KEY, "WRONG_KEY": WRONG})
    yield proc
    proc.stop()


def _keys(gateway: Proc) -> dict[str, bool]:
    report = httpx.get(gateway.url + "/health?providers=1").json()["providers"]["up"]
    return {k["name"]: k["cooling_down"] for k in report["keys"]}


def test_responses_native_read_refused_key_cools_down(two_keys: Proc, up: Proc) -> None:  # noqa: F811
    with openai.OpenAI(base_url=two_keys.url + "/v1", api_key="unused", max_retries=0, timeout=10) as c:
        r = c.responses.create(model="up/gpt-x", input="Mine", extra_headers={"x-bf-api-key": "good"})
        assert _keys(two_keys) == {"good": False, "bad": False}
        httpx.delete(up.url + "/mock/requests").raise_for_status()
        # The pinned key is the one sent; the upstream refuses it.
        with pytest.raises(openai.AuthenticationError):
            c.responses.retrieve(r.id, extra_headers={"x-bf-api-key": "bad"})
        [seen] = _received(up)
        assert _header(seen, "authorization") == f"Bearer {WRONG}"
        # Cooled down as a chat call's key is: the next read, unpinned, takes the other.
        assert _keys(two_keys) == {"good": False, "bad": True}
        assert c.responses.retrieve(r.id).id == r.id
    assert metric(two_keys, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="401") == 1
    assert metric(two_keys, "gateway_requests_total", route=ROUTE, provider="up", model="gpt-x", status="200") == 1


def test_responses_native_input_items_include_the_inherited_turns(client: openai.OpenAI) -> None:  # noqa: F811
    # gateway mock keeps its responses as OpenAI does: the listing, read through the
    # gateway, is the upstream's.
    check_inherited_turns(client, "up/gpt-x")
