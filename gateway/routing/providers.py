"""Runtime providers: a configured provider bound to its transport and keys.

``HTTPProvider`` sends over the process's one upstream session; ``MockProvider``
answers in-process with the same generator ``gateway mock`` serves over HTTP.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from typing import Protocol

import aiohttp
import msgspec

from gateway.config import MockConfig, ProviderConfig
from gateway.errors import UpstreamProtocolError
from gateway.providers import Endpoint
from gateway.providers import mock as mock_dialect
from gateway.providers import openai as openai_dialect
from gateway.upstream import USER_AGENT, Reply, send


class Provider(Protocol):
    name: str
    endpoints: frozenset[Endpoint]

    async def send(self, endpoint: Endpoint, body: bytes, *, stream: bool) -> Reply: ...

    async def list_models(self) -> list[str]: ...

    def redact(self, data: bytes) -> bytes: ...


class HTTPProvider:
    """An OpenAI-compatible server reached over HTTP."""

    __slots__ = (
        "_keys",
        "_models",
        "_models_url",
        "_secrets",
        "_session",
        "_stream",
        "_unary",
        "_urls",
        "_weights",
        "endpoints",
        "name",
    )

    def __init__(self, name: str, cfg: ProviderConfig, *, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.endpoints = openai_dialect.ENDPOINTS
        self._urls = openai_dialect.urls(cfg.base_url)
        self._models_url = cfg.base_url + openai_dialect.MODELS_PATH
        keys = cfg.keys or ()
        self._keys = [
            openai_dialect.request_headers(api_key=k.value, extra=cfg.headers, user_agent=USER_AGENT) for k in keys
        ] or [openai_dialect.request_headers(api_key=None, extra=cfg.headers, user_agent=USER_AGENT)]
        self._weights = [k.weight for k in keys] or [1.0]
        # Provider keys are scrubbed from anything relayed back (upstream error texts).
        self._secrets = tuple(k.value.encode() for k in keys if len(k.value) >= 8)
        t = cfg.timeouts
        self._unary = aiohttp.ClientTimeout(total=t.request_s, connect=t.connect_s)
        self._stream = aiohttp.ClientTimeout(total=None, connect=t.connect_s, sock_read=t.stream_idle_s)
        self._session = session
        self._models = list(cfg.models)

    def _headers(self) -> dict[str, str]:
        keys = self._keys
        if len(keys) == 1:
            return keys[0]
        return random.choices(keys, weights=self._weights)[0]

    async def send(self, endpoint: Endpoint, body: bytes, *, stream: bool) -> Reply:
        return await send(
            self._session,
            "POST",
            self._urls[endpoint],
            body=body,
            headers=self._headers(),
            timeout=self._stream if stream else self._unary,
            provider=self.name,
        )

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
            listing = msgspec.json.decode(data, type=_UpstreamModels)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise UpstreamProtocolError(f"provider '{self.name}' sent an unreadable model list: {e}") from None
        return [m.id for m in listing.data]

    def redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, b"[redacted]")
        return data


class _UpstreamModel(msgspec.Struct):
    id: str


class _UpstreamModels(msgspec.Struct):
    data: list[_UpstreamModel]


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

    __slots__ = ("_models", "_plan", "endpoints", "name")

    def __init__(self, name: str, cfg: MockConfig) -> None:
        self.name = name
        self.endpoints = mock_dialect.ENDPOINTS
        self._plan = mock_dialect.Planner(cfg)
        self._models = list(cfg.models)

    async def send(self, endpoint: Endpoint, body: bytes, *, stream: bool) -> Reply:
        return MockReply(self._plan(body, endpoint=endpoint))

    async def list_models(self) -> list[str]:
        return self._models

    def redact(self, data: bytes) -> bytes:
        return data


def build(name: str, cfg: ProviderConfig, *, session: aiohttp.ClientSession) -> Provider:
    if cfg.dialect == "mock":
        return MockProvider(name, cfg.mock)
    return HTTPProvider(name, cfg, session=session)
