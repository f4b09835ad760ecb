"""``HTTPTransport.send``'s inlined common call (unary, pooled, no per-request timeouts)
equals the general pooled path (``_send_pooled``) it specialises: the same request
head and timeouts handed to the pool, the same request on the wire, the same reply or
the same error, message prefix included. Both run against a scripted upstream on
127.0.0.1 through a real ``Pool``; a recording subclass only notes what it is asked."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError
from gateway.upstream.client import Timeouts, bounds, new_session
from gateway.upstream.http import HTTPTransport
from gateway.upstream.pool import Pool
from gateway.upstream.poolreply import PoolReply
from tests.conftest import free_port
from tests.faulty import COMPLETION, STREAM, FaultyUpstream, Request, reset, respond

KEYS = [{"value": "sk-first-0123456789", "name": "a"}, {"value": "sk-second-0123456789", "name": "b"}]
REQUEST_S = 0.3  # the silent scenario waits this long, twice per case
BODY = b'{"model":"gpt-x","messages":[{"role":"user","content":"h\xc3\xa9"}]}'


class RecordingPool(Pool):
    """The real pool; each request's arguments are noted before it is made."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[Any, ...]] = []

    async def request(self, origin: Any, head: bytes, body: bytes, **bounds: Any) -> PoolReply:
        self.asked.append((origin, head, body, bounds))
        return await super().request(origin, head, body, **bounds)


def scenarios(up: FaultyUpstream) -> None:
    @up.on("tw-ok")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(
            w, 200, COMPLETION, extra="x-ratelimit-remaining-requests: 9\r\nx-request-id: up-1\r\nSet-Cookie: s=1\r\n"
        )

    @up.on("tw-500")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 500, b'{"error":{"message":"boom"}}')

    @up.on("tw-429")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 429, b'{"error":{"message":"slow down"}}', extra="retry-after: 2\r\n")

    @up.on("tw-reset")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        reset(w)

    @up.on("tw-silent")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(REQUEST_S * 3)


def outcome(result: Any) -> Any:
    if isinstance(result, UpstreamError):
        return (type(result).__name__, result.message)
    return result


async def once(transport: HTTPTransport, *, key: int, extra: tuple[tuple[str, str], ...], inlined: bool) -> Any:
    try:
        reply = await transport.send(
            "chat", BODY, stream=False, timeouts=None if inlined else Timeouts(None, None), key=key, extra=extra
        )
    except UpstreamError as e:
        return outcome(e)
    try:
        return (reply.status, reply.content_type, reply.headers, await reply.read())
    finally:
        reply.close()


def config(base_url: str, *, request_s: float = REQUEST_S) -> ProviderConfig:
    return msgspec.convert(
        {
            "base_url": base_url,
            "keys": KEYS,
            "headers": {"x-org": "o1"},
            "client": "pool",
            "proxy": "none",
            "timeouts": {"request_s": request_s, "connect_s": 0.25, "stream_idle_s": 7.0, "first_byte_s": 5.0},
            "max_response_bytes": 4096,
        },
        ProviderConfig,
    )


async def both(
    base_url: str, *, key: int, extra: tuple[tuple[str, str], ...], request_s: float = REQUEST_S
) -> tuple[Any, Any]:
    cfg = config(base_url, request_s=request_s)
    pool = RecordingPool()
    session = new_session()
    try:
        transport = HTTPTransport("up", cfg, session=session, pool=pool)
        seen = []
        for inlined in (True, False):
            got = await once(transport, key=key, extra=extra, inlined=inlined)
            seen.append((got, pool.asked.pop()))
        return seen[0], seen[1]
    finally:
        pool.close()
        await session.close()


@pytest.fixture(scope="module")
def up(faulty: FaultyUpstream) -> FaultyUpstream:
    scenarios(faulty)
    return faulty


@pytest.mark.parametrize("scenario", ["tw-ok", "tw-500", "tw-429", "tw-reset", "tw-silent", "down"])
@pytest.mark.parametrize("key", [0, 1])
@pytest.mark.parametrize("extra", [(), (("x-trace", "a b\tc"), ("openai-beta", "assistants=v2"))])
def test_inlined_send_equals_send_pooled(up: FaultyUpstream, scenario: str, key: int, extra: Any) -> None:
    base = f"http://127.0.0.1:{free_port()}/v1" if scenario == "down" else up.url(scenario) + "/v1"
    before = len(up.requests)
    # Only the silent upstream needs the short deadline; the others get room for a
    # loaded machine (a 0.3 s deadline once timed out the inlined send of "tw-ok").
    request_s = REQUEST_S if scenario == "tw-silent" else 10 * REQUEST_S
    (inlined, asked_inlined), (general, asked_general) = asyncio.run(
        both(base, key=key, extra=extra, request_s=request_s)
    )
    assert inlined == general
    assert asked_inlined == asked_general
    _, head, body, asked = asked_inlined
    # What both asked, spelled out: the path, the key's own header, the extras last.
    assert head.startswith(b"POST /") and b"/v1/chat/completions HTTP/1.1\r\n" in head
    assert f"Authorization: Bearer {KEYS[key]['value']}".encode() in head
    assert head.endswith(
        b"".join(b"\r\n%s: %s" % (k.encode(), v.encode()) for k, v in extra) or KEYS[key]["value"].encode()
    )
    assert body == BODY
    assert asked == {"connect_s": 0.25, "first_byte_s": None, "total_s": request_s, "max_body_bytes": 4096}
    if scenario == "tw-ok":
        assert inlined[0] == 200 and inlined[3] == COMPLETION
        assert inlined[2] == [("x-ratelimit-remaining-requests", "9"), ("x-request-id", "up-1")]
    elif scenario in ("tw-500", "tw-429"):
        assert inlined[0] == int(scenario[3:])
    else:
        kind, message = inlined
        assert message.startswith("provider 'up': ")
        assert (
            kind
            == {"tw-reset": "UpstreamConnectError", "tw-silent": "UpstreamTimeout", "down": "UpstreamConnectError"}[
                scenario
            ]
        )
    if scenario != "down":
        # Both requests reached the upstream alike.
        (_, first), (_, second) = up.requests[before:]
        assert first == second and first.body == BODY
        assert first.headers["authorization"] == f"Bearer {KEYS[key]['value']}"
        assert all(first.headers[k] == v for k, v in extra)


# (stream, per-request overrides) -> (total_s, first_byte_s, idle_s) with the provider's
# request_s 0.3, stream_idle_s 7, first_byte_s 5.
BOUNDS = [
    (False, None, (REQUEST_S, None, None)),
    (False, Timeouts(None, None), (REQUEST_S, None, None)),
    (False, Timeouts(2.0, None), (2.0, None, None)),
    (False, Timeouts(None, 3.0), (REQUEST_S, None, None)),  # an idle bound is a stream's only
    (True, None, (None, 5.0, 7.0)),
    (True, Timeouts(2.0, None), (2.0, 5.0, 7.0)),
    (True, Timeouts(None, 3.0), (None, 3.0, 3.0)),
    (True, Timeouts(2.0, 3.0), (2.0, 3.0, 3.0)),
]


@pytest.mark.parametrize(("stream", "overrides", "expected"), BOUNDS)
def test_both_clients_get_one_set_of_bounds(
    up: FaultyUpstream, stream: bool, overrides: Timeouts | None, expected: tuple[Any, ...]
) -> None:
    @up.on("tw-stream")
    async def _(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 200, STREAM, content_type="text/event-stream")

    async def run() -> tuple[Any, Any, Any]:
        cfg = config(up.url("tw-stream") + "/v1")
        pool, session = RecordingPool(), new_session()
        try:
            transport = HTTPTransport("up", cfg, session=session, pool=pool)
            reply = await transport.send("chat", BODY, stream=stream, timeouts=overrides)
            idle = reply._idle_s  # type: ignore[attr-defined]
            reply.close()
            return pool.asked[0][3], idle, transport._timeout(stream, overrides)
        finally:
            pool.close()
            await session.close()

    asked, idle, aiohttp_timeout = asyncio.run(run())
    total_s, first_s, idle_s = expected
    assert bounds(config("http://x/v1").timeouts, overrides, stream=stream) == (total_s, first_s, idle_s)
    assert (asked["total_s"], asked["first_byte_s"], asked["connect_s"]) == (total_s, first_s, 0.25)
    assert idle == idle_s
    # aiohttp's session has no first-byte bound (relay.stream waits for the first chunk).
    assert (aiohttp_timeout.total, aiohttp_timeout.sock_read, aiohttp_timeout.sock_connect) == (total_s, idle_s, 0.25)
