"""SDK drop-in routes in a provider's own wire format: the Anthropic SDK at
``POST /anthropic/v1/messages`` (and ``/messages/count_tokens``), the Google GenAI SDK at
``POST /genai/{v1beta,v1}/models/{model}:generateContent``, ``:streamGenerateContent``
(and ``:countTokens``), and under the frameworks' prefixes (``server.routes``). One
``DropIn`` per SDK-side dialect serves them all from the dialect's data.

A request reaches any provider. A target of the route's own dialect gets the client's
bytes (the model swapped, the gateway's ``fallbacks`` removed) and its answer, stream or
error goes back untouched: nothing the gateway cannot translate is lost on the way. Any
other target gets the request translated into OpenAI's form (and on into its own
dialect, ``relay.translate``), and its answer translated back. The model: ``provider/model``
and aliases route as on the OpenAI routes; a bare model goes to the route's own provider
(``ModelTable.resolve_native``). ``fallbacks`` may be given in the body, as on the OpenAI
routes, and each fallback is passed through or translated on its own.

Errors answer in the route's dialect, with the OpenAI fields a gateway client looks for:
Anthropic's ``{"type": "error", "error": {"type", "message", "param", "code"}}``, Gemini's
``{"error": {"code": <HTTP status>, "message", "status", "type", "param"}}``; when several
targets were tried, ``extra_fields.attempts`` lists them, as on the OpenAI routes.

Token counts (``relay.count``) are routed like the chat calls, passed through to a
target of the route's dialect and counted offline for any other; governed (credentials,
model allow lists) but never charged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import msgspec
from aiohttp import web

from gateway.errors import ErrorBody, GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from gateway.governance import Principal
from gateway.providers.dialect import Dialect, InboundHead
from gateway.relay.call import Call, Keep, answer_headers
from gateway.relay.count import count
from gateway.server.access import GatewayRequest
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, Handler, note_error
from gateway.server.embeddings import embed
from gateway.server.handlers import Handlers
from gateway.server.options import is_async
from gateway.server.plan import inbound
from gateway.server.responses_state import ResponseStates, owner

_decode_error = msgspec.json.Decoder(ErrorBody).decode
_encode = msgspec.json.Encoder().encode


class DropInJobs(Protocol):
    """Submits and polls async jobs at a drop-in's chat route (``server.jobs``)."""

    async def __call__(
        self, request: web.BaseRequest, dropin: DropIn, *, model: str | None, stream: bool
    ) -> web.StreamResponse: ...


class _Request(NamedTuple):
    """A drop-in request read and routed: what each kind of call starts from."""

    request: GatewayRequest
    body: bytes
    head: InboundHead
    model: str
    stream: bool | None  # the URL's, for a dialect naming it there
    principal: Principal | None
    t0: float


def error_response(client: Dialect, err: GatewayError) -> web.Response:
    """``err`` in the client's dialect (see the module docstring)."""
    try:
        detail = _decode_error(err.body()).error
        message, kind, param, code = detail.message, detail.type, detail.param, detail.code
    except (msgspec.ValidationError, msgspec.DecodeError):
        message, kind, param, code = err.message, err.type, err.param, err.code
    status = err.status
    out = inbound(client).error_fields(status, message=message, kind=kind, param=param, code=code)
    if err.attempts:
        out["extra_fields"] = {"attempts": err.attempts}
    resp = web.Response(status=status, body=_encode(out), content_type=JSON)
    if isinstance(err, MethodNotAllowed):
        resp.headers["Allow"] = ", ".join(err.allow)
    for name, value in err.headers:
        resp.headers[name] = value
    return resp


class DropIn:
    """The drop-in routes of one SDK-side dialect (one with an ``inbound``), served from
    its data: its routes' kinds of call, the actions its URL names after the model, and
    its ``Inbound`` (what the gateway reads of a request, how it is translated, counted
    and answered). A new SDK-side dialect needs no code here."""

    __slots__ = (
        "_by_kind",
        "_calls",
        "_handlers",
        "_heads",
        "_inbound",
        "_max_body",
        "by_url",
        "client",
        "jobs",
        "states",
    )

    def __init__(self, handlers: Handlers, client: Dialect, *, max_body_bytes: int) -> None:
        # The handlers' planner builds the call (server.plan), their governance admits it.
        self._handlers = handlers
        self.client = client
        self._inbound = inbound(client)
        self._max_body = max_body_bytes
        # The paths up to the model of the calls the URL names (/genai/v1beta/models/).
        self._heads = tuple(dict.fromkeys(r.path.partition("{")[0] for r in client.served() if "{model}:" in r.path))
        # The kinds of call (``providers.dialect.Route.handler``, ``Action.kind``) served
        # here; the model lists are the shared ``server.listing``'s.
        self._calls: dict[str, Callable[[_Request], Awaitable[web.StreamResponse]]] = {
            "chat": self._chat,
            "count_tokens": self._count,
            "embed_one": self._embed_one,
            "embed_batch": self._embed_batch,
        }
        # Bound once: the route table tells handlers apart by identity.
        self._by_kind: dict[str, Handler] = {"chat": self.chat, "count_tokens": self.count_tokens}
        self.by_url: Handler = self._by_url
        # Submits and polls of async jobs on the chat routes (server.jobs), wired by the
        # app; None: x-bf-async is ignored.
        self.jobs: DropInJobs | None = None
        # Kept answers (a dialect whose requests continue stored conversations: the
        # Responses API), wired by the app; None: nothing kept or continued.
        self.states: ResponseStates | None = None

    def handler(self, *, kind: str, path: str) -> Handler:
        """The handler of a route of this dialect (a KeyError, at start-up, for a kind
        not served)."""
        if kind not in self._calls:
            raise KeyError(f"dialect {self.client.name}: no drop-in handler for {kind!r} ({path})")
        return self.by_url if "{model}:" in path else self._by_kind[kind]

    async def chat(self, request: GatewayRequest) -> web.StreamResponse:
        """A chat call whose body names the model (Anthropic's ``POST /v1/messages``)."""
        return await self._serve(request, "chat", model=None, stream=None)

    async def count_tokens(self, request: GatewayRequest) -> web.StreamResponse:
        """A token count whose body names the model (``POST /v1/messages/count_tokens``)."""
        return await self._serve(request, "count_tokens", model=None, stream=None)

    async def _by_url(self, request: GatewayRequest) -> web.StreamResponse:
        """A call the URL names after the model (Gemini's ``POST
        /{version}/models/{model}:{action}``)."""
        path = request.path
        rest = next((path[len(p) :] for p in self._heads if path.startswith(p)), "")
        model, _, name = rest.rpartition(":")
        action = self._inbound.actions.get(name)
        if action is None or not model:
            note = NotFound(
                f"Invalid URL ({request.method} {path}): expected .../models/{{model}}:{{action}}, the action one of "
                + ", ".join(self._inbound.actions)
            )
            note_error(request, note)
            return error_response(self.client, note)
        return await self._serve(request, action.kind, model=model, stream=action.stream)

    async def _serve(
        self, request: GatewayRequest, kind: str, *, model: str | None, stream: bool | None
    ) -> web.StreamResponse:
        t0 = time.perf_counter()
        client = self.client
        try:
            if kind == "chat" and self.jobs is not None and is_async(request):
                return await self.jobs(request, self, model=model, stream=bool(stream))
            principal = await self._handlers.identify(request)
            body = await read_bounded(request, limit=self._max_body)
            head = self._inbound.head(body, strict=self._handlers.strict)
            model = model or head.model
            assert model, "a dialect names the model in its URL or its body (Inbound.head)"
            return await self._calls[kind](_Request(request, body, head, model, stream, principal, t0))
        except GatewayError as e:
            note_error(request, e)
            return error_response(client, e)

    def prepare(
        self, request: web.BaseRequest, body: bytes, *, model: str | None, stream: bool
    ) -> tuple[Call, str, int]:
        """The non-streaming chat call ``_serve`` would relay, built now (400s included)
        and relayed later: an async job (server.jobs). ``model``, ``stream``: the URL's.
        (call, model, max_out)."""
        head = self._inbound.head(body, strict=self._handlers.strict)
        model = model or head.model
        assert model, "a dialect names the model in its URL or its body (Inbound.head)"
        if stream or head.stream:
            raise InvalidRequest(
                'an async job cannot stream: send it without "stream": true, or without x-bf-async',
                param="stream",
                code="unsupported_parameter",
            )
        if head.previous is not None:
            raise InvalidRequest(
                "previous_response_id cannot be used with x-bf-async; send the earlier input and output items "
                "in 'input' instead, or send it without x-bf-async",
                param="previous_response_id",
                code="unsupported_parameter",
            )
        call = self._handlers.planner.dropin(
            request, self.client, body, model=model, fallbacks=head.fallbacks, stream=False, t0=time.perf_counter()
        )
        return call, model, head.max_out

    async def _chat(self, r: _Request) -> web.StreamResponse:
        head = r.head
        stream = r.stream if r.stream is not None else bool(head.stream)
        states = self.states
        keep: Keep | None = None
        prior: bytes | None = None
        previous = head.previous
        if states is not None and (previous is not None or head.keep):
            caller = owner(r.principal)
            if previous is not None:
                if not self._handlers.planner.native_first(self.client, r.model):
                    prior = await states.conversation(caller, previous)
                else:
                    # A primary served natively continues its upstream's own stored
                    # responses, unless the gateway keeps this one (a translated answer):
                    # then it is continued translated (server.plan), on every target.
                    prior = await states.kept_conversation(caller, previous)
            if head.keep:
                keep = states.keeper(caller, body=r.body, previous_id=previous)
        call = self._handlers.planner.dropin(
            r.request,
            self.client,
            r.body,
            model=r.model,
            fallbacks=head.fallbacks,
            stream=stream,
            t0=r.t0,
            prior=prior,
            previous=previous if prior is None else None,
        )
        call.keep = keep
        resp = await self._handlers.governed(r.request, call, r.principal, stream=stream, max_out=head.max_out)
        served = call.served_by()
        if keep is not None and not stream and resp.status == 200 and served is not None:
            # Kept before the client has it, so a request continuing it finds it (one
            # served natively is kept by its upstream: only where is recorded).
            body = getattr(resp, "body", None)
            # One made with the client's own provider key (x-bf-direct-key) is kept where
            # the gateway's keys cannot read it: not recorded.
            if isinstance(body, bytes) and not (served.native and call.options.direct_key is not None):
                await keep(body, native=served if served.native else None)
        return resp

    async def _embed_one(self, r: _Request) -> web.StreamResponse:
        return await self._embed(r, single=True)

    async def _embed_batch(self, r: _Request) -> web.StreamResponse:
        return await self._embed(r, single=False)

    def _embed(self, r: _Request, *, single: bool) -> Awaitable[web.StreamResponse]:
        """``single``: one content (embedContent), else a batch (batchEmbedContents)."""
        return embed(
            self._handlers,
            r.request,
            self.client,
            r.body,
            model=r.model,
            single=single,
            t0=r.t0,
            fallbacks=r.head.fallbacks,
            principal=r.principal,
        )

    async def _count(self, r: _Request) -> web.StreamResponse:
        """Governed (credentials, model allow lists), not charged: a count uses nothing."""
        request = r.request
        call = self._handlers.planner.count(
            request, self.client, r.body, model=r.model, fallbacks=r.head.fallbacks, t0=r.t0
        )
        request.call = call
        self._handlers.authorize(call, r.principal)
        data, index, relayed = await count(call)
        call.served_index = index
        headers = {"Content-Type": JSON}
        headers.update(answer_headers(call.targets[index][0].provider.name, index, relayed))
        return web.Response(body=data, headers=headers)
