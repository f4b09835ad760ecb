"""Runtime providers: a configured provider bound to its transport and keys.

``HTTPProvider`` sends over the process's one upstream session; ``MockProvider``
answers in-process with the same generator ``gateway mock`` serves over HTTP.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import ssl
from collections.abc import AsyncGenerator
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import msgspec

from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices, Pricing
from gateway.config import MockConfig, ProviderConfig
from gateway.errors import UpstreamError, UpstreamProtocolError
from gateway.pool import Pool, request_head
from gateway.providers import Endpoint
from gateway.providers import mock as mock_dialect
from gateway.providers import openai as openai_dialect
from gateway.schemas.response import UpstreamModelList
from gateway.upstream import Reply, Timeouts, send


class StreamUsage:
    """Whether streams from a provider need counting: config mode plus what was learned."""

    __slots__ = ("mode", "reported")

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.reported: bool | None = None  # learned in "auto" mode

    def must_count(self) -> bool:
        # "auto" trusts the upstream (the gateway asks every stream for usage) until a
        # stream from it ends without usage: counting loads OpenAI's BPE tables (~66 MB
        # for o200k_base), which a provider that reports usage never needs.
        return self.mode == "count" or (self.mode == "auto" and self.reported is False)

    def learn(self, *, reported: bool) -> None:
        self.reported = reported


class Provider(Protocol):
    name: str
    endpoints: frozenset[Endpoint]
    pricing: Pricing
    stream_usage: StreamUsage

    first_byte_s: float

    async def send(self, endpoint: Endpoint, body: bytes, *, stream: bool, timeouts: Timeouts | None) -> Reply: ...

    async def list_models(self) -> list[str]: ...

    def redact(self, data: bytes) -> bytes: ...


class HTTPProvider:
    """An OpenAI-compatible server reached over HTTP."""

    __slots__ = (
        "first_byte_s",
        "pricing",
        "stream_usage",
        "_heads",
        "_keys",
        "_models",
        "_origin",
        "_pool",
        "_ssl",
        "_models_url",
        "_secrets",
        "_session",
        "_stream",
        "_timeouts",
        "_unary",
        "_urls",
        "_weights",
        "endpoints",
        "name",
    )

    def __init__(
        self, name: str, cfg: ProviderConfig, *, session: aiohttp.ClientSession, pricing: Pricing, pool: Pool | None
    ) -> None:
        self.name = name
        self.pricing = pricing
        self.stream_usage = StreamUsage(cfg.stream_usage)
        self.endpoints = openai_dialect.ENDPOINTS
        self._urls = openai_dialect.urls(cfg.base_url)
        self._models_url = cfg.base_url + openai_dialect.MODELS_PATH
        keys = cfg.keys or ()
        self._keys = [openai_dialect.request_headers(api_key=k.value, extra=cfg.headers) for k in keys] or [
            openai_dialect.request_headers(api_key=None, extra=cfg.headers)
        ]
        self._weights = list(itertools.accumulate(k.weight for k in keys)) or [1.0]
        # Provider keys are scrubbed from anything relayed back (upstream error texts).
        self._secrets = tuple(k.value.encode() for k in keys if len(k.value) >= 8)
        t = cfg.timeouts
        self._timeouts = t
        self._unary = aiohttp.ClientTimeout(total=t.request_s, sock_connect=t.connect_s)
        self._stream = aiohttp.ClientTimeout(total=None, sock_connect=t.connect_s, sock_read=t.stream_idle_s)
        self.first_byte_s = t.first_byte_s or t.stream_idle_s
        self._session = session
        self._models = list(cfg.models)
        self._ssl = ssl.create_default_context(cafile=cfg.ca_file) if cfg.ca_file else None
        # The gateway's own pool when configured: request heads built once per key.
        self._pool = pool if cfg.client == "pool" else None
        self._origin = self._pool.origin(cfg.base_url, ssl_context=self._ssl) if self._pool else None
        self._heads = (
            {e: [request_head("POST", urlsplit(url).path, h) for h in self._keys] for e, url in self._urls.items()}
            if self._pool
            else {}
        )

    def _key(self) -> int:
        if len(self._keys) == 1:
            return 0
        cum = self._weights  # cumulative: one draw and a bisect, ~4x cheaper than random.choices
        return bisect.bisect(cum, random.random() * cum[-1])

    def _headers(self) -> dict[str, str]:
        return self._keys[self._key()]

    def _timeout(self, stream: bool, o: Timeouts | None) -> aiohttp.ClientTimeout:
        if o is None:
            return self._stream if stream else self._unary
        t = self._timeouts
        if stream:
            return aiohttp.ClientTimeout(
                total=o.request_s, sock_connect=t.connect_s, sock_read=o.stream_idle_s or t.stream_idle_s
            )
        return aiohttp.ClientTimeout(total=o.request_s or t.request_s, sock_connect=t.connect_s)

    async def send(self, endpoint: Endpoint, body: bytes, *, stream: bool, timeouts: Timeouts | None) -> Reply:
        if self._pool is not None:
            return await self._send_pooled(endpoint, body, stream=stream, timeouts=timeouts)
        return await send(
            self._session,
            "POST",
            self._urls[endpoint],
            body=body,
            headers=self._headers(),
            timeout=self._timeout(stream, timeouts),
            provider=self.name,
            ssl=self._ssl,
        )

    async def _send_pooled(self, endpoint: Endpoint, body: bytes, *, stream: bool, timeouts: Timeouts | None) -> Reply:
        t, o = self._timeouts, timeouts
        total = (o.request_s if o else None) or (None if stream else t.request_s)
        idle = (o.stream_idle_s if o else None) or t.stream_idle_s
        assert self._pool is not None and self._origin is not None
        try:
            reply = await self._pool.request(
                self._origin,
                self._heads[endpoint][self._key()],
                body,
                connect_s=t.connect_s,
                # Headers must arrive within the idle bound for a stream, the total for a unary call.
                first_byte_s=total if total is not None and not stream else idle,
            )
        except UpstreamError as e:
            e.message = f"provider '{self.name}': {e.message}"
            raise
        # Unary: the body must follow within the total; streams: between chunks.
        reply.watch_idle(idle if stream else total)
        return reply

    async def list_models(self) -> list[str]:
        if self._models:
            return self._models
        reply = await send(
            self._session, "GET", self._models_url, headers=self._headers(), timeout=self._unary, provider=self.name
        )
        try:
            data = await reply.read()
        finally:
            reply.close()
        if reply.status != 200:
            raise UpstreamProtocolError(f"provider '{self.name}' answered GET /models with HTTP {reply.status}")
        try:
            listing = msgspec.json.decode(data, type=UpstreamModelList)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise UpstreamProtocolError(f"provider '{self.name}' sent an unreadable model list: {e}") from None
        return [m.id for m in listing.data]

    def redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, b"[redacted]")
        return data


class MockReply:
    __slots__ = ("_body", "_plan", "status")

    def __init__(self, plan: mock_dialect.Plan) -> None:
        self._plan = plan
        self.status = plan.fail_status or 200
        self._body = mock_dialect.error_body(plan.fail_status) if plan.fail_status else b""

    async def read(self) -> bytes:
        if self._body:
            return self._body
        delay = mock_dialect.unary_delay_s(self._plan)
        if delay:
            await asyncio.sleep(delay)
        return mock_dialect.completion_body(self._plan)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            async for frame in mock_dialect.paced(self._plan):
                yield frame
        except mock_dialect.MockReset as e:
            raise UpstreamProtocolError(str(e)) from None

    def close(self) -> None:
        pass


class MockProvider:
    """The built-in fake LLM, answering in-process."""

    __slots__ = ("_models", "_plan", "endpoints", "first_byte_s", "name", "pricing", "stream_usage")

    def __init__(self, name: str, cfg: MockConfig, *, pricing: Pricing, stream_usage: str, first_byte_s: float) -> None:
        self.name = name
        self.first_byte_s = first_byte_s
        self.pricing = pricing
        self.stream_usage = StreamUsage(stream_usage)
        self.endpoints = mock_dialect.ENDPOINTS
        self._plan = mock_dialect.Planner(cfg)
        self._models = list(cfg.models)

    async def send(self, endpoint: Endpoint, body: bytes, *, stream: bool, timeouts: Timeouts | None) -> Reply:
        return MockReply(self._plan(body, endpoint=endpoint))

    async def list_models(self) -> list[str]:
        return self._models

    def redact(self, data: bytes) -> bytes:
        return data


def build(
    name: str,
    cfg: ProviderConfig,
    *,
    session: aiohttp.ClientSession,
    genai: GenaiPrices,
    ledger: Ledger,
    pool: Pool | None = None,
) -> Provider:
    mock = cfg.dialect == "mock"
    pricing = Pricing(
        provider=name,
        overrides=cfg.prices,
        provider_id=cfg.pricing_provider,
        # The mock prices by model name alone, so "mock/gpt-4o" costs what gpt-4o does.
        provider_url=None if mock or cfg.pricing_provider else cfg.base_url,
        genai=genai,
        on_unpriced=ledger.unpriced,
    )
    if mock:
        t = cfg.timeouts
        return MockProvider(
            name,
            cfg.mock,
            pricing=pricing,
            stream_usage=cfg.stream_usage,
            first_byte_s=t.first_byte_s or t.stream_idle_s,
        )
    return HTTPProvider(name, cfg, session=session, pricing=pricing, pool=pool)
