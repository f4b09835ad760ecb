"""``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}``, ``GET
/v1/responses/{id}/input_items`` and ``POST /v1/responses/{id}/cancel`` (the OpenAI SDK's
``responses.retrieve``, ``.delete``, ``.input_items.list``, ``.cancel``), under every root
the OpenAI dialect's SDKs point at.

They read what ``server.responses_state`` keeps, and call no provider: added by the app
beside the route matrix, as the async job polls are, not generated into it with the
inference routes. Their roots are the OpenAI dialect's own (``integrations``), so they
follow that family wherever it goes. Credentials are required as on every route when
auth is required; every answer or error is OpenAI's.
"""

from __future__ import annotations

from functools import partial

import msgspec
from aiohttp import web

from gateway.errors import InvalidRequest, MethodNotAllowed, NotFound
from gateway.providers.openai import DIALECT as OPENAI
from gateway.server.dispatch import JSON, Routes
from gateway.server.handlers import Handlers
from gateway.server.responses_state import (
    DEFAULT_LIMIT,
    Order,
    ResponseDeleted,
    ResponseStates,
    not_found,
    owner,
)

_deleted = msgspec.json.Encoder().encode
# What may follow an id, and its methods.
_SUBPATHS: dict[str, tuple[str, ...]] = {"input_items": ("GET",), "cancel": ("POST",)}


class StoredResponses:
    """The three routes' one handler (a prefix route serves them all); per config."""

    __slots__ = ("_handlers", "_states")

    def __init__(self, handlers: Handlers, states: ResponseStates) -> None:
        self._handlers = handlers
        self._states = states

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
        caller = owner(await self._handlers.identify(request))
        states = self._states
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
            q = request.query
            order: Order = "desc"
            if "order" in q:
                if q["order"] not in ("asc", "desc"):
                    raise InvalidRequest("order must be 'asc' or 'desc'", param="order", code="invalid_value")
                order = "asc" if q["order"] == "asc" else "desc"
            body = await states.input_items(
                caller,
                response_id,
                after=q.get("after") or None,
                before=q.get("before") or None,
                limit=_limit(q.get("limit")),
                order=order,
            )
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


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(
            "limit must be an integer between 1 and 100", param="limit", code="invalid_value"
        ) from None


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
