"""The built-in fake LLM as an in-process transport: the same generator ``gateway mock``
serves over HTTP, answered without a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import Endpoint, mock_embed
from gateway.providers import mock as mock_dialect
from gateway.upstream.client import Reply, Timeouts


class MockReply:
    __slots__ = ("_body", "_plan", "content_type", "headers", "status")

    def __init__(self, plan: mock_dialect.Plan, *, stream: bool) -> None:
        self._plan = plan
        self.headers: list[tuple[str, str]] = []
        self.status = plan.fail_status or 200
        # As an HTTP upstream would declare it: events for a stream, JSON otherwise.
        self.content_type: str | None = "text/event-stream" if stream and not plan.fail_status else "application/json"
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


class EmbeddingsReply(MockReply):
    """An embeddings answer (``providers.mock_embed``); a request the mock cannot answer
    is its 400, as over HTTP."""

    __slots__ = ()

    def __init__(self, plan: mock_dialect.Plan, body: bytes) -> None:
        super().__init__(plan, stream=False)
        if not plan.fail_status:
            try:
                self._body = mock_embed.answer(body)
            except InvalidRequest as e:
                self.status, self._body = e.status, e.body()

    async def read(self) -> bytes:
        if self.status == 200 and self._plan.ttft_s:
            await asyncio.sleep(self._plan.ttft_s)
        return self._body


class MockTransport:
    """The built-in fake LLM, answering in-process."""

    __slots__ = ("_models", "_plan")

    def __init__(self, cfg: ProviderConfig) -> None:
        self._plan = mock_dialect.Planner(cfg.mock)
        self._models = list(cfg.mock.models)

    async def send(
        self,
        endpoint: Endpoint,
        body: bytes,
        *,
        stream: bool,
        timeouts: Timeouts | None,
        key: int = 0,
        model: str = "",
        extra: tuple[tuple[str, str], ...] = (),
        secret: str | None = None,
    ) -> Reply:
        plan = self._plan(body, endpoint=endpoint)
        if endpoint == "embeddings":
            return EmbeddingsReply(plan, body)
        return MockReply(plan, stream=stream)

    async def list_models(self) -> list[str]:
        return self._models
