"""The lone attempt (``attempts.lone_attempt``: one target, no cap, no retries, no pinned
or client key, made by ``unary`` itself) equals the attempt loop (``first_success``) it
skips: the same answer or error, the same upstream request, the same key chosen and the
same strikes and cool-downs on the key ring, the same metrics.

Both run the whole unary relay against a scripted upstream on 127.0.0.1 through real
providers and a real pool; the general loop is reached by giving its provider a
concurrency cap too large to matter (a cap is one of the things the lone path refuses)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import msgspec
import pytest

from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices
from gateway.accounting.tokens import Tokenizers
from gateway.config import ProviderConfig
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.relay.attempts import lone_attempt
from gateway.relay.call import Call
from gateway.relay.unary import unary
from gateway.routing.providers import Provider, build
from gateway.routing.table import Target
from gateway.upstream.client import Timeouts, new_session
from gateway.upstream.pool import Pool
from tests.faulty import COMPLETION, FaultyUpstream, Request, reset, respond
from tests.unit.relay.calls import make_call

REQUEST_S = 0.3
BODY = b'{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}'
PRICES = {"gpt-x": {"input_mtok": 2.0, "output_mtok": 8.0}, "モデル-ü": {"input_mtok": 1.0}}
NO_USAGE = (
    b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}'
)

ANSWERS: dict[str, tuple[int, bytes, str]] = {
    "lone-ok": (200, COMPLETION, "x-ratelimit-remaining-tokens: 90\r\nrequest-id: r-1\r\n"),
    "lone-no-usage": (200, NO_USAGE, ""),
    "lone-500": (500, b'{"error":{"message":"boom","type":"server_error"}}', ""),
    "lone-502-text": (502, b"<html>bad gateway</html>", ""),
    "lone-429": (429, b'{"error":{"message":"slow down"}}', "retry-after: 2\r\nx-ratelimit-remaining-requests: 0\r\n"),
    "lone-401": (401, b'{"error":{"message":"bad key"}}', ""),
    "lone-400": (400, b'{"message":"bad request"}', ""),
}


def scenarios(up: FaultyUpstream) -> None:
    for name, (status, body, extra) in ANSWERS.items():

        async def answer(
            req: Request, w: asyncio.StreamWriter, status: int = status, body: bytes = body, extra: str = extra
        ) -> None:
            await respond(w, status, body, extra=extra)

        up.scripts[name] = answer

    @up.on("lone-reset")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        reset(w)

    @up.on("lone-silent")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(REQUEST_S * 3)


@pytest.fixture(scope="module")
def up(faulty: FaultyUpstream) -> FaultyUpstream:
    scenarios(faulty)
    return faulty


def provider(base_url: str, *, keys: int, capped: bool, pool: Pool, session: Any) -> Provider:
    cfg = msgspec.convert(
        {
            "base_url": base_url,
            "keys": [{"value": f"sk-key{i}-0123456789", "name": f"k{i}", "weight": 1 + i} for i in range(keys)],
            "client": "pool",
            "proxy": "none",
            "prices": PRICES,
            "timeouts": {"request_s": REQUEST_S, "connect_s": 0.25},
            "limits": {"max_concurrency": 1000} if capped else {},
        },
        ProviderConfig,
    )
    ledger = Ledger(metrics=Metrics(), tokenizers=Tokenizers())
    return build("up", cfg, session=session, genai=GenaiPrices(), ledger=ledger, pool=pool)


def ring_state(p: Provider) -> Any:
    ring, now = p.keys, time.monotonic()
    return (
        list(ring._failures),
        [round(until - now) if until else None for until in ring._cool_until],
        ring.last_failure_status,
        ring.last_success > 0,
        ring.last_failure > 0,
    )


def answer_of(data: bytes) -> Any:
    out = json.loads(data)
    if "extra_fields" in out:
        assert isinstance(out["extra_fields"].pop("latency"), float)
    return out


async def relay(call: Call, p: Provider) -> Any:
    try:
        data, index, headers = await unary(call)
    except GatewayError as e:
        return (type(e).__name__, e.status, e.type, e.code, e.message, e.body(), e.headers, e.attempts)
    finally:
        if p.limiter is not None:
            assert p.limiter.in_flight == 0
    return (answer_of(data), index, headers)


def gateway_samples(call: Call) -> list[bytes]:
    return [line for line in call.ledger.metrics.exposition()[0].splitlines() if line.startswith(b"gateway_")]


async def both(base_url: str, *, keys: int, model: str, requested: str, options: dict[str, Any]) -> list[Any]:
    pool, session = Pool(), new_session()
    seen = []
    try:
        for capped in (False, True):
            p = provider(base_url, keys=keys, capped=capped, pool=pool, session=session)
            call = make_call([(Target(p, model, False), BODY)], body=BODY, requested=requested, **options)
            assert (lone_attempt(call) is None) is capped
            random.seed(7)  # the same weighted key choice both times
            result = await relay(call, p)
            seen.append((result, ring_state(p), gateway_samples(call), call.used_tokens, call.used_cost))
    finally:
        pool.close()
        await session.close()
    return seen


SCENARIOS = [*ANSWERS, "lone-reset", "lone-silent"]
OPTIONS = {
    "plain": {},
    "raw": {"raw_request": True, "raw_response": True},
    "extra-headers": {"extra_headers": (("x-trace", "t-1"),)},
    "request-timeout": {"timeouts": Timeouts(0.2, None)},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("options", list(OPTIONS))
def test_lone_attempt_equals_attempt_loop(up: FaultyUpstream, scenario: str, options: str) -> None:
    before = len(up.requests)
    lone, loop = asyncio.run(
        both(up.url(scenario) + "/v1", keys=1, model="gpt-x", requested="up/gpt-x", options=OPTIONS[options])
    )
    assert lone == loop
    result, ring = lone[0], lone[1]
    sent = [r for _, r in up.requests[before:]]
    assert len(sent) == 2 and sent[0] == sent[1]  # one attempt each, the same request
    if options == "extra-headers":
        assert sent[0].headers["x-trace"] == "t-1"
    if scenario in ("lone-ok", "lone-no-usage"):
        assert result[1] == 0 and ring[3]
        assert result[0]["extra_fields"]["provider"] == "up"
        assert ("raw_response" in result[0]["extra_fields"]) is (options == "raw")
    else:
        assert isinstance(result[0], str) and result[1] in (400, 401, 429, 500, 502, 504)
        # A strike for a provider fault, a cool-down for a refused or rate-limited key.
        expected = {"lone-429": ([0], [2]), "lone-401": ([0], [30]), "lone-400": ([0], [None])}
        assert ring[:2] == expected.get(scenario, ([1], [None]))


@pytest.mark.parametrize("scenario", ["lone-ok", "lone-500", "lone-429"])
def test_lone_attempt_equals_loop_weighted_keys_unicode_model(up: FaultyUpstream, scenario: str) -> None:
    before = len(up.requests)
    lone, loop = asyncio.run(
        both(up.url(scenario) + "/v1", keys=3, model="モデル-ü", requested="up/モデル-ü", options={})
    )
    assert lone == loop
    sent = [r for _, r in up.requests[before:]]
    assert sent[0].headers["authorization"] == sent[1].headers["authorization"]


def test_lone_attempt_refuses_what_needs_the_loop() -> None:
    async def check() -> None:
        pool, session = Pool(), new_session()
        try:
            p = provider("http://127.0.0.1:9/v1", keys=2, capped=False, pool=pool, session=session)
            target = Target(p, "gpt-x", False)
            assert lone_attempt(make_call([(target, BODY)])) is not None
            assert lone_attempt(make_call([(target, BODY)], pinned_key="k1")) is None
            assert lone_attempt(make_call([(target, BODY)], direct_key="sk-client")) is None
            assert lone_attempt(make_call([(target, BODY), (target, BODY)])) is None
            assert lone_attempt(make_call([(target, GatewayError("refused"))])) is None
        finally:
            pool.close()
            await session.close()

    asyncio.run(check())
