"""``gateway mock``'s Responses API: ``POST /v1/responses`` (unary and streamed), ``GET``
and ``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items`` and ``POST
/v1/responses/input_tokens``, as OpenAI answers them.

The fake LLM answers in chat form; the gateway's own Responses translator
(``providers.responses``) turns the request into chat and the answer or stream back into
a Response and its events, as the mock's other dialects do. Unlike a chat provider the
mock keeps what it answers (unless ``"store": false``), so a gateway passing the
Responses API through to it natively finds ``previous_response_id`` working upstream:
the gateway's own ``ResponseStates`` over a memory store of its own, bounded in bytes
and forgetting the least recently used first (so ``input_items`` lists a continued
response's whole conversation, as OpenAI does). Every caller is one owner: the mock checks
one API key or none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import msgspec
from aiohttp import web

from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.providers import mock as dialect
from gateway.providers import responses
from gateway.providers.dialect import Inbound
from gateway.server.dispatch import JSON, Routes
from gateway.server.plan import inbound
from gateway.server.responses_state import ResponseDeleted, ResponseStates, not_found, page
from gateway.state.memory import MemoryStore

# What the mock keeps: enough for thousands of test conversations, bounded so a long
# load test against it cannot grow without end (least recently used forgotten first).
MAX_KEPT_BYTES = 64 * 1024 * 1024
MAX_RECORD_BYTES = 4 * 1024 * 1024
# Kept for a day: a load test's conversations outlive any test run.
KEPT_TTL_S = 24 * 3600.0
OWNER = "mock"  # one key or none: every caller sees every response

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_encode = msgspec.json.Encoder().encode
INBOUND: Inbound = inbound(responses.DIALECT)


class Host(Protocol):
    """What the mock server lends: reading (and recording) a body, its key check, its
    fake's planner, its pacing of a stream."""

    async def read(self, request: web.BaseRequest) -> bytes: ...

    def check_auth(self, request: web.BaseRequest) -> None: ...

    def plan(self, body: bytes) -> dialect.Plan: ...

    def stream_response(self, request: web.BaseRequest) -> Awaitable[web.StreamResponse]: ...


def _mock_field(body: bytes, header: str | None) -> bytes | None:
    """The fault overrides: the body's own ``mock`` field, else the ``x-mock`` header."""
    if body.find(b'"mock"') >= 0:
        try:
            raw = _fields(body).get("mock")
        except msgspec.DecodeError:
            raw = None
        if raw is not None:
            return bytes(raw)
    return header.encode() if header else None


class MockResponses:
    __slots__ = ("_host", "_states")

    def __init__(self, host: Host) -> None:
        self._host = host
        self._states = ResponseStates(
            MemoryStore(max_response_bytes=MAX_KEPT_BYTES),
            ttl_s=KEPT_TTL_S,
            max_record_bytes=MAX_RECORD_BYTES,
            max_conversation_bytes=MAX_KEPT_BYTES,
        )

    async def create(self, request: web.BaseRequest) -> web.StreamResponse:
        """``POST /v1/responses``."""
        host = self._host
        body = await host.read(request)
        try:
            host.check_auth(request)
            head = INBOUND.head(body, strict=False)
            prior = await self._states.conversation(OWNER, head.previous) if head.previous is not None else None
            stream = bool(head.stream)
            chat = responses.to_chat(body, model=head.model or "", stream=stream, prior=prior)
            overrides = _mock_field(body, request.headers.get("x-mock"))
            if overrides is not None:
                chat = chat[:-1] + b',"mock":' + overrides + b"}"
            plan = host.plan(chat)
        except GatewayError as e:
            return _error(e.status, e.body())
        if plan.fail_status:
            return _error(plan.fail_status, dialect.error_body(plan.fail_status))
        keep = self._keeper(body, head.previous) if head.keep else None
        if not plan.stream:
            delay = dialect.unary_delay_s(plan)
            if delay:
                await asyncio.sleep(delay)
            answer = responses.from_chat(dialect.completion_body(plan), request=body)
            if keep is not None:
                await keep(answer)
            return web.Response(body=answer, content_type=JSON)
        tr = responses.ResponsesStream(request=body)
        resp = await host.stream_response(request)
        try:
            async for frame in dialect.paced(plan):
                out = tr.feed(frame)
                if out:
                    await resp.write(out)
        except dialect.MockReset:
            if request.transport is not None:
                request.transport.abort()
            return resp
        if keep is not None and tr.final is not None:
            await keep(tr.final)
        await resp.write_eof()
        return resp

    def _keeper(self, body: bytes, previous: str | None) -> Callable[[bytes], Awaitable[None]]:
        return self._states.keeper(OWNER, body=body, previous_id=previous)

    async def stored(self, request: web.BaseRequest, *, id_at: int) -> web.StreamResponse:
        """``GET | DELETE {root}/responses/{id}``, ``GET {root}/responses/{id}/input_items``
        (``after``, ``before``, ``limit``, ``order``), recorded as the requests with a body."""
        await self._host.read(request)
        self._host.check_auth(request)
        response_id, slash, rest = request.path[id_at:].partition("/")
        if slash and rest != "input_items":
            raise NotFound(f"Invalid URL ({request.method} {request.path})")
        allow = ("GET",) if slash else ("GET", "DELETE")
        if request.method not in allow:
            raise MethodNotAllowed(f"Method {request.method} not allowed for {request.path}", allow=allow)
        states = self._states
        if slash:
            after, before, limit, order = page(request.query)
            body = await states.input_items(OWNER, response_id, after=after, before=before, limit=limit, order=order)
        elif request.method == "GET":
            body = await states.get(OWNER, response_id)
        else:
            if not await states.delete(OWNER, response_id):
                raise not_found()
            body = _encode(ResponseDeleted(id=response_id, object="response", deleted=True))
        return web.Response(body=body, content_type=JSON)

    def routes(self, count: Callable[..., Awaitable[web.StreamResponse]]) -> tuple[Routes, Routes]:
        """(exact routes, prefix routes) under ``/v1`` and the root; ``count``: the mock's
        token count, given the Responses inbound."""
        exact: Routes = {}
        prefixes: Routes = {}
        for root in ("/v1", ""):
            exact[f"{root}/responses"] = {"POST": self.create}
            exact[f"{root}/responses/input_tokens"] = {"POST": partial(count, inbound=INBOUND)}
            base = f"{root}/responses/"
            handler = partial(self.stored, id_at=len(base))
            prefixes[base] = {"GET": handler, "DELETE": handler, "POST": handler}
        return exact, prefixes


def _error(status: int, openai_body: bytes) -> web.Response:
    return web.Response(status=status, body=openai_body, content_type=JSON)
