"""Runtime providers: a configured provider's routing facts (keys and their health,
pricing, retries, limits, what its streams report) bound to its transport.

The transport (``upstream.http.HTTPTransport`` over the pool or the aiohttp session,
``upstream.mock.MockTransport`` in-process) is chosen once, at start-up; its ``send``
and ``list_models`` are the provider's own, bound without an extra call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices, Pricing
from gateway.config import ProviderConfig, RetryConfig
from gateway.providers import Endpoint
from gateway.providers.dialect import Dialect
from gateway.providers.registry import DIALECTS
from gateway.routing.keys import KeyRing
from gateway.routing.limits import Limiter
from gateway.scrub import Scrubber
from gateway.upstream.client import Reply, Timeouts, first_byte_s
from gateway.upstream.http import HTTPTransport
from gateway.upstream.mock import MockTransport
from gateway.upstream.pool import Pool

log = logging.getLogger("gateway.routing")


def responses_mode(cfg: ProviderConfig) -> str:
    """How Responses API requests reach the provider: as its config's ``responses``
    says; unset, ``auto`` for the openai dialect and ``translate`` for the others."""
    if cfg.responses is not None:
        return cfg.responses
    return "auto" if cfg.dialect == "openai" else "translate"


class NativeResponses:
    """Whether a provider takes the Responses API at its own ``/responses`` (``create``)
    and ``/responses/input_tokens`` (``count``). ``auto`` tries natively, with the
    translated request as the native target's twin (``Target.twin``), until the server
    answers that it has no such route (``relay.attempts``): from then on, for this
    process's life (a reload asks again), the requests are translated."""

    __slots__ = ("count", "create", "probing", "provider")

    def __init__(self, provider: str, mode: str) -> None:
        self.provider = provider
        self.create = self.count = mode != "translate"
        self.probing = mode == "auto"  # a native target carries its translated twin

    def lacks(self, endpoint: str) -> None:
        """The server answered that it has no route for ``endpoint``'s native request
        (a ``count_tokens`` lacking input_tokens only; a ``chat`` lacking both)."""
        if not (self.count if endpoint == "count_tokens" else self.create):
            return
        route = "/responses/input_tokens" if endpoint == "count_tokens" else "/responses"
        log.warning(
            "provider '%s' has no %s route: Responses API requests to it are translated from now on "
            "(set responses: translate to skip the first try)",
            self.provider,
            route,
        )
        self.count = False
        if endpoint != "count_tokens":
            self.create = False


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


class Send(Protocol):
    def __call__(
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
    ) -> Awaitable[Reply]: ...


class Resource(Protocol):
    def __call__(
        self,
        method: str,
        path: str,
        *,
        key: int,
        extra: tuple[tuple[str, str], ...] = (),
        timeouts: Timeouts | None = None,
        secret: str | None = None,
    ) -> Awaitable[Reply]: ...


class Provider:
    """One configured provider: what routing and the relay read, and its transport."""

    __slots__ = (
        "dialect",
        "endpoints",
        "first_byte_s",
        "keys",
        "limiter",
        "list_models",
        "name",
        "pricing",
        "request_s",
        "resource",
        "responses",
        "retries",
        "scrub",
        "send",
        "stream_usage",
        "translated",
        "transport",
        "wire",
    )

    def __init__(
        self, name: str, cfg: ProviderConfig, *, pricing: Pricing, transport: HTTPTransport | MockTransport
    ) -> None:
        self.name = name
        self.dialect: str = cfg.dialect
        wire = DIALECTS[cfg.dialect]
        self.wire: Dialect = wire
        self.endpoints: frozenset[Endpoint] = wire.endpoints
        # Whether bodies are translated (``relay.translate``): read on every request, so
        # a plain attribute, not a lookup.
        self.translated: bool = wire.translated
        # responses: native / auto (load.py allows them for the openai dialect only).
        self.responses = NativeResponses(name, responses_mode(cfg))
        self.pricing = pricing
        self.stream_usage = StreamUsage(cfg.stream_usage)
        keys = cfg.keys or ()
        self.keys = KeyRing(keys, cooldown_s=cfg.key_cooldown_s)
        # Provider keys are scrubbed from anything relayed back (upstream error texts).
        self.scrub = Scrubber(k.value for k in keys)
        self.retries: RetryConfig = cfg.retries
        self.limiter = Limiter(name, cfg.limits) if cfg.limits.max_concurrency is not None else None
        t = cfg.timeouts
        self.request_s = t.request_s
        self.first_byte_s = first_byte_s(t)
        self.transport = transport
        self.send: Send = transport.send
        self.list_models: Callable[[], Awaitable[list[str]]] = transport.list_models
        # What the upstream keeps (a natively served response), read and deleted at its
        # own URL; None for a provider served in-process (the mock dialect).
        self.resource: Resource | None = transport.resource if isinstance(transport, HTTPTransport) else None


def build(
    name: str,
    cfg: ProviderConfig,
    *,
    session: aiohttp.ClientSession,
    genai: GenaiPrices,
    ledger: Ledger,
    pool: Pool | None = None,
) -> Provider:
    # A dialect without an HTTP upstream (the mock) is served in-process.
    mock = DIALECTS[cfg.dialect].upstream is None
    pricing = Pricing(
        provider=name,
        overrides=cfg.prices,
        provider_id=cfg.pricing_provider,
        # The mock prices by model name alone, so "mock/gpt-4o" costs what gpt-4o does.
        provider_url=None if mock or cfg.pricing_provider else cfg.base_url,
        genai=genai,
        on_unpriced=ledger.unpriced,
        unpriced_log=ledger.unpriced_log,
    )
    transport = MockTransport(cfg) if mock else HTTPTransport(name, cfg, session=session, pool=pool)
    return Provider(name, cfg, pricing=pricing, transport=transport)
