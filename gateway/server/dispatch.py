"""Route table lookup and the one place any error becomes an HTTP answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from gateway.codec import splice_field
from gateway.errors import GatewayError, MethodNotAllowed, NotFound, render_unexpected
from gateway.server.access import GatewayRequest

log = logging.getLogger("gateway.server")

# Every request of the gateway's server is a GatewayRequest (its request_factory); a
# handler that reads nothing of it takes a web.BaseRequest.
Handler = Callable[[GatewayRequest], Awaitable[web.StreamResponse]]
Routes = dict[str, dict[str, Handler]]

JSON = "application/json"


_attempts = msgspec.json.Encoder().encode


def note_error(request: GatewayRequest, err: GatewayError) -> None:
    """What the access log and metrics need of an error answer (``server.access``); the
    relay's call, when there was one, is on the request already."""
    request.error_type = err.type
    if err.principal is not None:
        request.principal = err.principal


def error_response(err: GatewayError) -> web.Response:
    """``err`` as an OpenAI error answer (the request is ``note_error``'s)."""
    body = err.body()
    if err.attempts:
        body = splice_field(body, b"extra_fields", b'{"attempts":%s}' % _attempts(err.attempts))
    resp = web.Response(status=err.status, body=body, content_type=JSON)
    if isinstance(err, MethodNotAllowed):
        resp.headers["Allow"] = ", ".join(err.allow)
    for name, value in err.headers:
        resp.headers[name] = value
    return resp


class Dispatcher:
    """``web.Server``'s handler: path, then method, from dicts built at start-up."""

    __slots__ = ("_prefixes", "_routes")

    def __init__(self, routes: Routes, *, prefixes: Routes | None = None) -> None:
        self._routes = routes
        # Paths with a variable part (Gemini's /v1beta/models/{model}:action): looked up
        # by prefix, only when no exact path matched.
        self._prefixes = tuple((prefixes or {}).items())

    def __call__(self, request: GatewayRequest) -> Awaitable[web.StreamResponse]:
        """Not a coroutine: the handler's own coroutine goes to aiohttp, one frame less
        per request. What a handler (or this lookup) raises reaches the protocol's
        ``handle_error`` (``server.protocol``), which answers it with ``answer_error``."""
        methods = self._routes.get(request.path)
        if methods is None:
            path = request.path
            methods = next((m for p, m in self._prefixes if path.startswith(p)), None)
        if methods is None:
            raise NotFound(f"Invalid URL ({request.method} {request.path})")
        handler = methods.get(request.method)
        if handler is None:
            allow = tuple(methods)
            raise MethodNotAllowed(
                f"Method {request.method} not allowed for {request.path}; allowed: {', '.join(allow)}", allow=allow
            )
        return handler(request)

    def swap(self, other: Dispatcher) -> None:
        """Routes new requests to ``other``'s handlers (a config reload). One step for the
        event loop; requests already dispatched finish on the handlers they got, and the
        server keeps calling this object: no indirection per request."""
        self._routes, self._prefixes = other._routes, other._prefixes


def route_of(d: Dispatcher) -> Callable[[str], str]:
    """A request path as a bounded metrics label: the route it matched, else "unmatched"."""

    def route(path: str) -> str:
        if path in d._routes:  # read each time: a reload swaps the tables
            return path
        return next((p for p, _ in d._prefixes if path.startswith(p)), "unmatched")

    return route


def answer_error(request: GatewayRequest, exc: BaseException | None) -> web.Response:
    """The answer to what a handler raised: a GatewayError as its own OpenAI error, anything
    else as an internal error (logged, no detail to the client)."""
    if isinstance(exc, GatewayError):
        note_error(request, exc)
        return error_response(exc)
    log.error("unexpected error serving %s %s", request.method, request.path, exc_info=exc)
    status, body = render_unexpected()
    request.error_type = "server_error"
    return web.Response(status=status, body=body, content_type=JSON)
