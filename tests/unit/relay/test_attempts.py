"""The attempt loop with a client's own provider key (``Call.direct_key``): no configured
key is chosen, rotated or cooled down, the provider's retries still apply, and the call
never takes the lone-attempt shortcut (which chooses a configured key)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.config import KeyConfig, RetryConfig
from gateway.errors import UpstreamStatusError
from gateway.relay.attempts import NoKeyForModel, first_success, lacks_route, lone_attempt
from gateway.relay.call import Call
from gateway.routing.keys import KeyRing
from tests.unit.relay.calls import one_target_call


def call_with(direct_key: str | None, *, max_retries: int) -> tuple[Call, KeyRing]:
    # The configured keys serve another model only: choosing one for gpt-x fails.
    keys = [KeyConfig(value=f"k{i}-0123456789", name=f"k{i}", models=("other",)) for i in range(2)]
    ring = KeyRing(keys, cooldown_s=30.0)
    retries = RetryConfig(max_retries=max_retries, backoff_initial_s=0, backoff_max_s=0)
    provider = SimpleNamespace(name="up", keys=ring, retries=retries, limiter=None, request_s=300.0)
    target = SimpleNamespace(provider=provider, model="gpt-x", rewrite=False, native=False, twin=None)
    call = one_target_call(target, direct_key=direct_key)
    return call, ring


def op_failing(statuses: list[int], seen: list[int]) -> Any:
    async def op(target: Any, body: bytes, key: int) -> str:
        seen.append(key)
        if statuses:
            raise UpstreamStatusError("upstream said no", status=statuses.pop(0), body=None)
        return "answer"

    return op


def untouched(ring: KeyRing) -> bool:
    return ring._cool_until == [0.0, 0.0] and ring._failures == [0, 0]


def test_direct_key_call_is_not_a_lone_attempt() -> None:
    assert lone_attempt(call_with("sk-client", max_retries=0)[0]) is None


def test_direct_key_needs_no_configured_key_and_is_retried() -> None:
    call, ring = call_with("sk-client", max_retries=2)
    seen: list[int] = []
    result, index, limiter = asyncio.run(first_success(call, op_failing([500, 503], seen)))
    assert (result, index, limiter) == ("answer", 0, None)
    assert len(seen) == 3 and untouched(ring)


@pytest.mark.parametrize("status", [401, 403, 429])
def test_refused_direct_key_is_neither_rotated_nor_cooled(status: int) -> None:
    call, ring = call_with("sk-client", max_retries=0)
    seen: list[int] = []
    with pytest.raises(UpstreamStatusError):
        asyncio.run(first_success(call, op_failing([status], seen)))
    assert len(seen) == 1 and untouched(ring)


def test_without_direct_key_a_configured_key_is_needed() -> None:
    call, _ = call_with(None, max_retries=0)
    with pytest.raises(NoKeyForModel):
        asyncio.run(first_success(call, op_failing([], [])))


@pytest.mark.parametrize(
    ("status", "body", "message", "lacks"),
    [
        (404, b'{"error":{"message":"Invalid URL (POST /v1/responses)","code":"unknown_url"}}', "", True),
        (404, None, "provider 'models-r-us' answered HTTP 404: Not Found", True),  # FastAPI's, wrapped
        (404, None, "provider 'p' answered HTTP 404: 404 page not found", True),  # Ollama's
        (405, None, "provider 'p' answered HTTP 405: Method Not Allowed", True),
        (501, None, "provider 'p' answered HTTP 501", True),
        (404, b'{"error":{"message":"The model `x` does not exist.","code":"model_not_found"}}', "", False),
        (404, None, "provider 'p' answered HTTP 404: model 'x' not found", False),
        (400, b'{"error":{"message":"Invalid URL"}}', "", False),
        (500, None, "provider 'p' answered HTTP 500", False),
    ],
)
def test_lacks_route_tells_a_missing_route_from_a_refused_request(
    status: int, body: bytes | None, message: str, lacks: bool
) -> None:
    assert lacks_route(UpstreamStatusError(message, status=status, body=body)) is lacks


def test_lacks_route_is_false_for_errors_that_are_not_an_upstream_status() -> None:
    assert lacks_route(NoKeyForModel("no key")) is False
