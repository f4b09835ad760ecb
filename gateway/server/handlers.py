"""Handlers for the OpenAI routes, under every drop-in prefix (``server.routes``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from gateway import codec
from gateway.accounting.ledger import Ledger
from gateway.accounting.usage import Usage
from gateway.governance import Governor, Grant, Principal, credential, credentials, digest
from gateway.providers import Endpoint
from gateway.relay.cache import Cache
from gateway.relay.call import PROVIDER_HEADER, Call, answer_headers
from gateway.relay.hit import replay_stream, unary_answer
from gateway.relay.shutdown import LiveStreams, shutting_down
from gateway.relay.stream import stream as relay_stream
from gateway.relay.unary import unary
from gateway.routing.table import ModelTable
from gateway.schemas.chat import ChatCompletionRequest
from gateway.schemas.completions import CompletionRequest
from gateway.schemas.embeddings import EmbeddingsRequest
from gateway.server.access import GatewayRequest, record_abandoned
from gateway.server.answer import Answer, fits
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, Routes
from gateway.server.health import Health
from gateway.server.options import ASYNC_HEADER, ASYNC_ID_HEADER, flag
from gateway.server.plan import Planner
from gateway.upstream.relayed import client_header_lines

log = logging.getLogger("gateway.server")

JobRoute = Callable[[web.BaseRequest, Endpoint], Awaitable[web.StreamResponse]]


class Runner(Protocol):
    """How a planned call is answered: relayed (``Handlers.run``), or from the cache."""

    def __call__(self, request: GatewayRequest, call: Call, *, stream: bool) -> Awaitable[web.StreamResponse]: ...


def _max_out(req: ChatCompletionRequest | CompletionRequest) -> int:
    """The completion tokens a request bounds itself to (0: none given)."""
    max_out = req.max_completion_tokens if isinstance(req, ChatCompletionRequest) else None
    return max_out or req.max_tokens or 0


_PROVIDER_HEADER = PROVIDER_HEADER.encode()


def owner_of(request: web.BaseRequest, principal: Principal | None) -> str:
    """Who may see what a request leaves behind (an async job, a kept response): a known
    caller's principal; else the credential sent (its SHA-256, never the secret), or
    "anonymous" when none came."""
    if principal is not None and principal.kind != "anonymous":
        return principal.id
    secret = credential(request.headers)
    return digest(secret).hex() if secret else "anonymous"


class Handlers:
    __slots__ = ("_governor", "_ledger", "_max_body", "_table", "cache", "jobs", "planner", "streams", "strict")

    def __init__(
        self,
        table: ModelTable,
        *,
        max_body_bytes: int,
        ledger: Ledger,
        governor: Governor | None = None,
        direct_keys: bool = False,
        streams: LiveStreams | None = None,
    ) -> None:
        self._table = table
        self._max_body = max_body_bytes
        self._ledger = ledger
        # None when no credentials are configured or required: nothing to check.
        self._governor = governor
        # Whether a repeated key the gateway reads is refused: with access control, where
        # it could change what is authorized (gateway.screen). An attribute, not a
        # property: read on every request.
        self.strict = governor is not None
        # Submits and polls of async jobs (server.jobs), wired by the app; None: the
        # async headers are ignored.
        self.jobs: JobRoute | None = None
        # Every relayed request's Call, the drop-in routes' and async jobs' too.
        # direct_keys: auth.client_provider_keys, whether x-bf-direct-key is honoured.
        self.planner = Planner(table, ledger=ledger, direct_keys=direct_keys)
        # The process's running streams (the app's, outliving a reload): a shutdown ends them.
        self.streams = streams
        # The response cache (relay.cache), wired by the app; None: off, and the only
        # thing the common request reads of it.
        self.cache: Cache | None = None

    async def identify(self, request: web.BaseRequest) -> Principal | None:
        """The caller; None when no auth is configured (nothing to check). Callers on the
        hot path test ``governed`` first and skip the await."""
        return await self._governor.identify(credentials(request.headers)) if self._governor is not None else None

    async def governed(
        self,
        request: GatewayRequest,
        call: Call,
        principal: Principal | None,
        *,
        stream: bool,
        max_out: int,
        run: Runner | None = None,
    ) -> web.StreamResponse:
        """``run`` (default: ``self.run``), for a caller ``admit`` lets through; what it used
        is charged at the end (a cache hit: nothing)."""
        request.call = call  # a refusal is logged with its key, model and provider too
        if principal is not None:
            call.principal = principal.id
        grant = await self.admit(call, principal, max_out=max_out)
        go = run or self.run
        if grant is None:
            return await go(request, call, stream=stream)
        try:
            return await go(request, call, stream=stream)
        finally:
            self.settle(grant, call)

    async def admit(self, call: Call, principal: Principal | None, *, max_out: int) -> Grant | None:
        """Refuses a caller who may not use the call's targets (403) or is over its limits
        (429, 402), admitting it against an estimate: ~4 bytes per prompt token,
        ``max_out`` completion tokens (0: none given), at the primary's price. None:
        nothing to settle."""
        gov = self._governor
        if gov is None or principal is None or principal.kind == "anonymous":
            return None
        gov.authorize(principal, call.targets)
        if principal.limits is None:
            return None
        target = call.targets[0][0]
        prompt = len(call.body) // 4
        # No max_tokens: the budget assumes auth.completion_estimate_tokens; token rate
        # limits count what the request itself bounds (its prompt, its max_tokens).
        priced_out = max_out or gov.completion_estimate
        cost = self._ledger.cost(
            target.provider.pricing.lookup(target.model),
            Usage(prompt_tokens=prompt, completion_tokens=priced_out, total_tokens=prompt + priced_out),
        )
        return await gov.admit(principal, tokens=prompt + max_out, cost_usd=cost.total_cost if cost else 0.0)

    def authorize(self, call: Call, principal: Principal | None) -> None:
        """Refuses a caller who may not use the call's targets (403); nothing admitted or
        charged (a token count uses nothing)."""
        gov = self._governor
        if principal is not None:
            call.principal = principal.id
        if gov is not None and principal is not None and principal.kind != "anonymous":
            gov.authorize(principal, call.targets)

    def settle(self, grant: Grant, call: Call) -> None:
        """Charges what the call used in place of its admission's estimate."""
        if self._governor is not None:
            self._governor.settle(grant, tokens=call.used_tokens, cost_usd=call.used_cost or 0.0)

    def prepare(
        self,
        request: web.BaseRequest,
        body: bytes,
        req: ChatCompletionRequest | CompletionRequest | EmbeddingsRequest,
        *,
        endpoint: Endpoint,
    ) -> Call:
        """The non-streaming call ``_complete`` (or ``embeddings``) would relay, built now
        (400s included) and relayed later: an async job (server.jobs)."""
        t0 = time.perf_counter()
        if isinstance(req, EmbeddingsRequest):
            return self.planner.embeddings(request, body, model=req.model, fallbacks=req.fallbacks, t0=t0)
        return self.planner.openai(request, body, req, endpoint=endpoint, t0=t0, stream=False)

    def _complete(
        self,
        request: GatewayRequest,
        body: bytes,
        req: ChatCompletionRequest | CompletionRequest,
        *,
        endpoint: Endpoint,
        t0: float,
        principal: Principal | None,
    ) -> Awaitable[web.StreamResponse]:
        """Not a coroutine: the caller awaits ``run``'s (or ``governed``'s) own, one frame less."""
        stream = bool(req.stream)
        call = self.planner.openai(request, body, req, endpoint=endpoint, t0=t0, stream=stream)
        if self.cache is not None:
            return self._cached(request, call, req, principal=principal, stream=stream)
        if principal is None:  # no auth configured: no extra coroutine frame on the hot path
            return self.run(request, call, stream=stream)
        return self.governed(request, call, principal, stream=stream, max_out=_max_out(req))

    async def _cached(
        self,
        request: GatewayRequest,
        call: Call,
        req: ChatCompletionRequest | CompletionRequest,
        *,
        principal: Principal | None,
        stream: bool,
    ) -> web.StreamResponse:
        """The call with the response cache on: answered from it on a hit (governance
        still decides whether the caller may ask, and charges nothing), relayed and kept
        on a miss."""
        cache = self.cache
        assert cache is not None
        ticket = await cache.lookup(call, caller=owner_of(request, principal))
        run: Runner = self.run
        if ticket is not None:
            call.cache = ticket
            run = self._replay if ticket.entry is not None else self._near if ticket.semantic else self._run_kept
        if principal is None:
            return await run(request, call, stream=stream)
        return await self.governed(request, call, principal, stream=stream, max_out=_max_out(req), run=run)

    async def _replay(self, request: GatewayRequest, call: Call, *, stream: bool) -> web.StreamResponse:
        """A cache hit: no upstream call; nothing used, nothing charged."""
        request.call = call
        call.served_index = 0
        ticket = call.cache
        assert ticket is not None and ticket.entry is not None
        if stream:
            paced = self.cache is not None and self.cache.config.stream_replay == "paced"
            try:
                return await replay_stream(call, request, ticket, paced=paced)
            except asyncio.CancelledError:
                self._cancelled(request, call)
                raise
        provider = ticket.entry.provider
        if fits(request):  # one write, as the relay's common answer
            return Answer(
                b"Content-Type: application/json\r\n%s: %s\r\n" % (_PROVIDER_HEADER, provider.encode()),
                unary_answer(call, ticket),
            )
        return web.Response(body=unary_answer(call, ticket), headers={"Content-Type": JSON, PROVIDER_HEADER: provider})

    async def _near(self, request: GatewayRequest, call: Call, *, stream: bool) -> web.StreamResponse:
        """A direct miss with semantic lookup on, the caller admitted: the nearest kept
        answer (a hit), else relayed and kept; the embedding charged either way."""
        request.call = call
        ticket = call.cache
        assert ticket is not None and ticket.owner.semantic is not None
        try:
            await ticket.owner.find_near(ticket, call)
        except asyncio.CancelledError:  # the client went away during the lookup
            ticket.owner.semantic.charge(ticket, call)  # an embedding answered is spent (0 if none)
            self._cancelled(request, call)
            raise
        # Charged now, so a hit, a failed relay and a client gone are charged it too; a
        # relayed answer's Call.charge adds it to the answer's usage.
        ticket.owner.semantic.charge(ticket, call)
        if ticket.entry is not None:
            return await self._replay(request, call, stream=stream)
        return await self._run_kept(request, call, stream=stream)

    async def _run_kept(self, request: GatewayRequest, call: Call, *, stream: bool) -> web.StreamResponse:
        """A cache miss: relayed as ``run`` does, its answer kept (a stream keeps its
        own, relay.stream)."""
        if stream:
            return await self.run(request, call, stream=True)
        request.call = call
        try:
            data, index, relayed = await unary(call)
        except asyncio.CancelledError:
            self._cancelled(request, call)
            raise
        call.served_index = index
        ticket = call.cache
        assert ticket is not None
        data = await ticket.owner.keep_unary(ticket, call, data, target=call.targets[index][0])
        headers = {"Content-Type": JSON}
        headers.update(answer_headers(call.targets[index][0].provider.name, index, relayed))
        return web.Response(body=data, headers=headers)

    def _cancelled(self, request: GatewayRequest, call: Call) -> None:
        live = self.streams
        if live is not None and live.stopping:
            # The shutdown's grace ended with this call still running: a 503, the
            # client is still there (streams under way end in-band, relay.stream).
            raise shutting_down() from None
        # The client went away mid-relay (aiohttp cancels the handler): recorded here,
        # since aiohttp records no access for a cancelled handler.
        record_abandoned(request, call)

    async def run(self, request: GatewayRequest, call: Call, *, stream: bool) -> web.StreamResponse:
        """The call relayed, streamed or whole, with the response headers it earns."""
        # What metrics and the access log record, whatever the answer (server.access).
        request.call = call
        try:
            if stream:
                return await relay_stream(call, request)
            data, index, relayed = await unary(call)
        except asyncio.CancelledError:
            self._cancelled(request, call)
            raise
        call.served_index = index
        provider = call.targets[index][0].provider.name
        if not index and fits(request):  # the common answer: bytes, one write
            head = b"Content-Type: application/json\r\n%s: %s\r\n" % (_PROVIDER_HEADER, provider.encode())
            if relayed:
                head += client_header_lines(relayed)
            return Answer(head, data)
        # Headers as one dict: cheaper than content_type= and a setitem (~0.4 µs).
        headers = {"Content-Type": JSON}
        headers.update(answer_headers(provider, index, relayed))
        return web.Response(body=data, headers=headers)

    async def chat(self, request: GatewayRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        h = request.headers  # two lookups of absent names: ~50 ns on the common request
        if self.jobs is not None and (ASYNC_ID_HEADER in h or (ASYNC_HEADER in h and flag(request, ASYNC_HEADER))):
            return await self.jobs(request, "chat")
        principal = await self.identify(request) if self._governor is not None else None
        body = await read_bounded(request, limit=self._max_body)
        return await self._complete(
            request, body, codec.decode_chat(body, strict=self.strict), endpoint="chat", t0=t0, principal=principal
        )

    async def completions(self, request: GatewayRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        h = request.headers  # two lookups of absent names: ~50 ns on the common request
        if self.jobs is not None and (ASYNC_ID_HEADER in h or (ASYNC_HEADER in h and flag(request, ASYNC_HEADER))):
            return await self.jobs(request, "text")
        principal = await self.identify(request) if self._governor is not None else None
        body = await read_bounded(request, limit=self._max_body)
        return await self._complete(
            request,
            body,
            codec.decode_completion(body, strict=self.strict),
            endpoint="text",
            t0=t0,
            principal=principal,
        )

    async def embeddings(self, request: GatewayRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        h = request.headers
        if self.jobs is not None and (ASYNC_ID_HEADER in h or (ASYNC_HEADER in h and flag(request, ASYNC_HEADER))):
            return await self.jobs(request, "embeddings")
        principal = await self.identify(request) if self._governor is not None else None
        body = await read_bounded(request, limit=self._max_body)
        req = codec.decode_embeddings(body, strict=self.strict)
        call = self.planner.embeddings(request, body, model=req.model, fallbacks=req.fallbacks, t0=t0)
        if principal is None:
            return await self.run(request, call, stream=False)
        # Nothing is generated: admitted on the input alone.
        return await self.governed(request, call, principal, stream=False, max_out=0)

    async def metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        body, content_type = self._ledger.metrics.exposition(request.headers.get("Accept"))
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp


def routes(h: Handlers, *, health: Health | None = None) -> Routes:
    """/health and /metrics; the inference routes come from the dialects
    (``server.routes``). ``health``: the process's own, which a shutdown turns to
    "draining"."""
    health = health or Health()
    return {"/health": {"GET": health, "HEAD": health}, "/metrics": {"GET": h.metrics}}
