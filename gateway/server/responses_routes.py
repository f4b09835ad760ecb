"""``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}``, ``GET
/v1/responses/{id}/input_items`` and ``POST /v1/responses/{id}/cancel`` (the OpenAI SDK's
``responses.retrieve``, ``.delete``, ``.input_items.list``, ``.cancel``), under every root
the OpenAI dialect's SDKs point at.

They read what ``server.responses_state`` keeps: a response the gateway keeps itself is
answered here; one an upstream keeps (served natively, ``relay.native``), for which the
gateway keeps only its provider's name, is read (deleted) at that provider's own
``/responses/{id}``, with its key, and its answer relayed. Added by the app beside the
route matrix, as the async job polls are, not generated into it with the inference
routes. Their roots are the OpenAI dialect's own (``integrations``), so they
follow that family wherever it goes. Credentials are required as on every route when
auth is required; every answer or error is OpenAI's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from urllib.parse import quote, urlencode

import msgspec
from aiohttp import web

from gateway.errors import InvalidRequest, MethodNotAllowed, NotFound, UpstreamStatusError
from gateway.governance import Principal
from gateway.providers.openai import DIALECT as OPENAI
from gateway.relay.attempts import exchange, first_success
from gateway.relay.call import answer_headers
from gateway.routing.providers import Provider
from gateway.routing.table import Target
from gateway.server.access import GatewayRequest
from gateway.server.dispatch import JSON, Routes
from gateway.server.handlers import Handlers
from gateway.server.responses_state import (
    ResponseDeleted,
    ResponseStates,
    Upstream,
    not_found,
    owner,
    page,
)

_deleted = msgspec.json.Encoder().encode
# What may follow an id, and its methods.
_SUBPATHS: dict[str, tuple[str, ...]] = {"input_items": ("GET",), "cancel": ("POST",)}
# The query parameters an upstream's retrieval and item listing are given, as sent.
_PASSED = frozenset(("after", "before", "limit", "order", "include", "include[]", "include_obfuscation"))


class StoredResponses:
    """The three routes' one handler (a prefix route serves them all); per config."""

    __slots__ = ("_handlers", "_providers", "_states")

    def __init__(self, handlers: Handlers, states: ResponseStates, *, providers: Mapping[str, Provider]) -> None:
        self._handlers = handlers
        self._states = states
        # By name: where a response served natively is kept.
        self._providers = providers

    async def serve(self, request: web.BaseRequest, *, id_at: int) -> web.StreamResponse:
        """``{root}/responses/{id}[/input_items | /cancel]``; the id starts at ``id_at`` in
        the path."""
        response_id, slash, rest = request.path[id_at:].partition("/")
        if slash and rest not in _SUBPATHS:
            raise NotFound(f"Invalid URL ({request.method} {request.path})")
        allow = _SUBPATHS[rest] if slash else ("GET", "DELETE")
        if request.method not in allow:
            raise MethodNotAllowed(
                f"Method {request.method} not allowed for {request.path}; allowed: {', '.join(allow)}", allow=allow
            )
        principal = await self._handlers.identify(request)
        caller = owner(principal)
        states = self._states
        upstream = await states.upstream(caller, response_id)
        if upstream is not None:
            return await self._relay(request, upstream, response_id=response_id, rest=rest, principal=principal)
        if rest == "cancel":
            await states.get(caller, response_id)  # the same 404 for what it does not keep
            # Only a background response can be cancelled (OpenAI's rule); the gateway runs
            # none: every kept response was answered synchronously.
            raise InvalidRequest(
                "Cannot cancel a synchronous response: only background responses can be cancelled, and this "
                "gateway runs none (x-bf-async jobs run to their end)",
                param=None,
                code="invalid_request",
            )
        if slash:
            after, before, limit, order = page(request.query)
            body = await states.input_items(caller, response_id, after=after, before=before, limit=limit, order=order)
        elif request.method == "GET":
            if request.query.get("stream", "").lower() == "true":
                raise InvalidRequest(
                    "a stored response cannot be streamed again: retrieve it without stream",
                    param="stream",
                    code="unsupported_parameter",
                )
            body = await states.get(caller, response_id)
        else:
            if not await states.delete(caller, response_id):
                raise not_found()
            body = _deleted(ResponseDeleted(id=response_id, object="response", deleted=True))
        return web.Response(body=body, content_type=JSON)

    async def _relay(
        self,
        request: web.BaseRequest,
        upstream: Upstream,
        *,
        response_id: str,
        rest: str,
        principal: Principal | None,
    ) -> web.StreamResponse:
        """The request sent to the upstream that keeps the response; its answer relayed
        (an error as every upstream's is). ``response_id`` was validated by the lookup.

        Made as a chat call to that provider is: its x-bf-* options (headers forwarded,
        timeouts, a pinned or the client's own key), a key chosen, retried and cooled
        down by the same attempt loop (``relay.attempts``), its concurrency slot; the
        access log and ``gateway_requests_total`` name the provider and model."""
        provider = self._providers.get(upstream.provider)
        if provider is None or provider.resource is None:  # a provider since removed from the config
            raise not_found()
        resource = provider.resource
        if request.method == "GET" and not rest and request.query.get("stream", "").lower() == "true":
            raise InvalidRequest(
                "a stored response cannot be streamed again: retrieve it without stream",
                param="stream",
                code="unsupported_parameter",
            )
        path = "/responses/" + quote(response_id, safe="") + ("/" + rest if rest else "")
        query = urlencode([(k, v) for k, v in request.query.items() if k in _PASSED])
        if query:
            path += "?" + query
        method = request.method
        target = Target(provider, upstream.model, False, True)
        t0 = request.t0 if isinstance(request, GatewayRequest) and request.t0 is not None else time.perf_counter()
        call = self._handlers.planner.stored(request, target, request_type=_REQUEST_TYPES[method, rest], t0=t0)
        if principal is not None:
            call.principal = principal.id
        if isinstance(request, GatewayRequest):
            request.call = call  # an error answer is logged with its provider too
        options = call.options
        scrub, secret = provider.scrub.body, options.direct_key

        async def read(target: Target, body: bytes, key: int) -> tuple[int, bytes, list[tuple[str, str]]]:
            status, data, headers = await exchange(
                call,
                target,
                lambda: resource(
                    method, path, key=key, extra=options.extra_headers, timeouts=call.timeouts_left(), secret=secret
                ),
            )
            # exchange scrubs an error's body only; a stored response is relayed scrubbed too.
            return status, scrub(data, secret=secret), headers

        try:
            (status, data, headers), index, limiter = await first_success(call, read)
        except UpstreamStatusError as e:
            if method == "DELETE" and e.status == 404:
                await self._states.forget(response_id)  # gone upstream: so is where it was
            raise
        if limiter is not None:
            limiter.release()
        call.served_index = index
        if method == "DELETE":
            await self._states.forget(response_id)
        headers = answer_headers(provider.name, 0, headers)
        return web.Response(status=status, body=data, content_type=JSON, headers=headers)


# Call.request_type of each read (method, what follows the id).
_REQUEST_TYPES: dict[tuple[str, str], str] = {
    ("GET", ""): "responses_retrieve",
    ("DELETE", ""): "responses_delete",
    ("GET", "input_items"): "responses_input_items",
    ("POST", "cancel"): "responses_cancel",
}


def routes(stored: StoredResponses) -> Routes:
    """Prefix routes: ``{root}/responses/`` for every root of the OpenAI dialect's SDKs
    (``/v1``, ``/openai/v1``, ``/openai``, ...). ``POST {root}/responses`` and
    ``{root}/responses/input_tokens`` are exact routes, found before these."""
    out: Routes = {}
    for integration in OPENAI.integrations:
        for version in integration.versions:
            base = f"{integration.prefix}{version}/responses/"
            handler = partial(stored.serve, id_at=len(base))
            out[base] = {"GET": handler, "DELETE": handler, "POST": handler}
    return out
