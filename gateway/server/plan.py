"""The plan of one request, made in one place for the OpenAI routes (``server.handlers``),
the SDK drop-in routes (``server.dropin``) and async jobs (``server.jobs``): the targets
it may go to (its model, then each of its ``fallbacks``, resolved and checked to serve
the endpoint), the body each target gets, and the client's ``x-bf-*`` options; together
the ``relay.call.Call`` the relay runs.

A target's body is the client's bytes with the model swapped when the target speaks the
client's dialect, else the request translated into the target's. A target whose dialect
cannot express the request gets the error in place of a body: the request still goes to
the others (``relay.attempts``), and fails with that error only if it was the primary's
turn that decided.
"""

from __future__ import annotations

import time

from aiohttp import web
from msgspec import UNSET, UnsetType

from gateway import codec
from gateway.accounting.ledger import Ledger
from gateway.errors import GatewayError, InvalidRequest
from gateway.providers import Endpoint
from gateway.providers.dialect import Dialect, Inbound
from gateway.providers.responses import DIALECT as RESPONSES
from gateway.relay import translate
from gateway.relay.call import NO_OPTIONS, Call
from gateway.routing.table import ModelTable, Target
from gateway.schemas.chat import ChatCompletionRequest
from gateway.schemas.completions import CompletionRequest
from gateway.server.options import check_targets, request_options
from gateway.server.responses_state import PreviousResponseNotFound

Targets = list[tuple[Target, bytes | GatewayError]]

# Call.request_type per (endpoint, stream), built once.
_REQUEST_TYPES: dict[tuple[str, bool], str] = {
    ("chat", False): "chat_completion",
    ("chat", True): "chat_completion_stream",
    ("text", False): "text_completion",
    ("text", True): "text_completion_stream",
    ("embeddings", False): "embedding",
    ("count_tokens", False): "count_tokens",
}


def unsupported(target: Target, endpoint: Endpoint, param: str) -> InvalidRequest | None:
    """The 400 of a target whose dialect does not serve ``endpoint``; None when it does."""
    if endpoint in target.provider.endpoints:
        return None
    p = target.provider
    return InvalidRequest(
        f"{param}: model '{target.model}' is served by provider '{p.name}' ({p.dialect} dialect), "
        f"which does not serve {endpoint}",
        param=param,
        code="unsupported_endpoint",
    )


def named(model: str, fallbacks: list[str] | UnsetType | None) -> list[tuple[str, str]]:
    """The request's models with the param naming each: its model, then its fallbacks."""
    models = [("model", model)]
    if fallbacks:
        models += [(f"fallbacks[{i}]", m) for i, m in enumerate(fallbacks)]
    return models


def check_endpoint(target: Target, endpoint: Endpoint, param: str) -> None:
    """Chat and text completions refuse the whole request at once when one of its
    targets cannot serve it (a completion request naming an Anthropic fallback is the
    client's mistake, whichever target would answer). Embeddings do not: such a target
    holds the 400 in place of its body (``Planner.embeddings``), so a fallback may serve."""
    if endpoint not in target.provider.endpoints:  # tested here: no call on the common request
        refused = unsupported(target, endpoint, param)
        assert refused is not None
        raise refused


def embeddings_body(target: Target, body: bytes, *, body_model: str, param: str, strip: bool) -> bytes | GatewayError:
    """The OpenAI embeddings request as ``target`` takes it (see ``target_body``)."""
    embedder = target.provider.wire.embedder
    if embedder is None:
        return codec.upstream_body(
            body, model=target.model, rewrite_model=target.model != body_model, has_gateway_fields=strip
        )
    try:
        return embedder.request(body, model=target.model)
    except InvalidRequest as e:
        if param != "model":
            e.message = f"{param} ({target.provider.name}): {e.message}"
        return e


def target_body(
    target: Target, body: bytes, *, body_model: str, param: str, strip: bool, force_usage: bool
) -> bytes | GatewayError:
    """The OpenAI request as ``target`` takes it: in its dialect, or the client's
    bytes with the model swapped; an InvalidRequest when its dialect cannot express
    the request (another target may take it, see ``relay.attempts``)."""
    if target.provider.translated:
        try:
            return translate.request(target, body)
        except InvalidRequest as e:
            if param != "model":
                e.message = f"{param} ({target.provider.name}): {e.message}"
            return e
    if body.find(codec.SIGNATURE_MARK) >= 0:  # begun on a Gemini model (find: see request_options)
        body = codec.strip_signatures(body)
    return codec.upstream_body(
        body,
        model=target.model,
        # A fallback's model differs from the body's even when the table keeps it as named.
        rewrite_model=target.model != body_model,
        has_gateway_fields=strip,
        force_usage=force_usage,
    )


def native_body(client: Dialect, body: bytes, target: Target, *, model: str, strip: bool) -> bytes:
    """The client's own bytes for a target of its dialect: the model swapped (unless the
    dialect names it in the URL, not the body) and the gateway's fields removed."""
    rewrite = not client.url_names_model and target.model != model
    return codec.upstream_body(body, model=target.model, rewrite_model=rewrite, has_gateway_fields=strip)


def inbound(client: Dialect) -> Inbound:
    """The SDK side of ``client``: only dialects with drop-in routes have one."""
    side = client.inbound
    assert side is not None, f"dialect {client.name} has no SDK routes"
    return side


def to_openai(client: Dialect, body: bytes, *, model: str, stream: bool, prior: bytes | None = None) -> bytes:
    """A drop-in request in OpenAI's form."""
    return inbound(client).to_openai(body, model=model, stream=stream, prior=prior)


def _forward(request: web.BaseRequest, client: Dialect, call: Call) -> None:
    """The SDK's own headers the dialect forwards to every target (anthropic-beta:
    harmless to the others), unless the client forwards its own through x-bf-eh-*."""
    for header in inbound(client).forwarded_headers:
        value = request.headers.get(header)
        if value and not any(name == header for name, _ in call.options.extra_headers):
            call.options = call.options.forwarding(((header, value),))


class Planner:
    """Builds every relayed request's ``Call``; one per handler set, built by the app."""

    __slots__ = ("_ledger", "_table", "direct_keys")

    def __init__(self, table: ModelTable, *, ledger: Ledger, direct_keys: bool) -> None:
        self._table = table
        self._ledger = ledger
        # auth.client_provider_keys: whether x-bf-direct-key is honoured (else a 403).
        self.direct_keys = direct_keys

    def openai(
        self,
        request: web.BaseRequest,
        body: bytes,
        req: ChatCompletionRequest | CompletionRequest,
        *,
        endpoint: Endpoint,
        t0: float,
        stream: bool,
    ) -> Call:
        """A request on an OpenAI route (400s included)."""
        so = req.stream_options
        client_usage = bool(stream and so and so.include_usage)
        # Streams always ask the upstream for usage, and the client gets it once either way:
        # in OpenAI's usage-only chunk if it asked, else on the finish chunk (relay.watch).
        force_usage = stream and not client_usage
        strip = req.fallbacks is not UNSET
        requested = req.model
        models = [("model", requested)]
        if req.fallbacks:
            models += [(f"fallbacks[{i}]", m) for i, m in enumerate(req.fallbacks)]
        targets: Targets = []
        for param, model in models:
            target = self._table.resolve(model, param=param)
            check_endpoint(target, endpoint, param)
            targets.append(
                (
                    target,
                    target_body(target, body, body_model=requested, param=param, strip=strip, force_usage=force_usage),
                )
            )
        return self._call(
            request,
            targets,
            endpoint=endpoint,
            requested=requested,
            body=body,
            t0=t0,
            stream=stream,
            client_usage=client_usage,
        )

    def dropin(
        self,
        request: web.BaseRequest,
        client: Dialect,
        body: bytes,
        *,
        model: str,
        fallbacks: list[str] | UnsetType,
        stream: bool,
        t0: float,
        prior: bytes | None = None,
        previous: str | None = None,
    ) -> Call:
        """A chat request at the drop-in route of dialect ``client`` (400s included):
        passed through to a target of that dialect, translated for any other. ``prior``:
        the stored conversation it continues (``Inbound.to_openai``), which only a
        translated request can carry; ``previous``: the id it continues, when the
        gateway does not keep it (a native target's upstream may)."""
        strip = fallbacks is not UNSET
        openai: bytes | GatewayError | None = None  # the request in OpenAI's form, when needed
        plain: bytes | None = None  # that form without reasoning fields, for an OpenAI-dialect target
        models = named(model, fallbacks)
        targets: Targets = []
        for param, m in models:
            target = self._table.resolve_native(m, client.name, param=param)
            check_endpoint(target, "chat", param)
            if target.provider.wire is client:
                targets.append((target, native_body(client, body, target, model=model, strip=strip)))
                continue
            native: Target | None = None
            if client is RESPONSES and prior is None and target.provider.responses.create:
                # A Responses request as the client sent it, to the provider's /responses.
                native = target._replace(native=True)
                if not target.provider.responses.probing:
                    targets.append((native, native_body(client, body, native, model=model, strip=strip)))
                    continue
            if openai is None:
                try:
                    openai = to_openai(client, body, model=model, stream=stream, prior=prior)
                except InvalidRequest as e:
                    openai = e
            translated: bytes | GatewayError = openai
            if native is not None and previous is not None:
                # The twin of a native target: a server without /responses keeps nothing.
                translated = PreviousResponseNotFound(
                    f"Previous response with id '{previous}' not found.", param="previous_response_id"
                )
            elif isinstance(openai, bytes):
                body_of = openai
                if not target.provider.translated:
                    # The translation carries earlier reasoning for Anthropic and Gemini only.
                    plain = body_of = codec.without_reasoning(openai) if plain is None else plain
                translated = target_body(target, body_of, body_model=model, param=param, strip=False, force_usage=False)
            if native is not None:
                native = native._replace(twin=(target, translated))
                targets.append((native, native_body(client, body, native, model=model, strip=strip)))
                continue
            targets.append((target, translated))
        return self._sdk_call(
            request, client, targets, endpoint="chat", model=model, openai=openai, body=body, t0=t0, stream=stream
        )

    def native_first(self, client: Dialect, model: str) -> bool:
        """Whether a request at ``client``'s drop-in route goes first to a provider that
        takes it natively (a Responses request to ``responses: native``): its
        ``previous_response_id`` is that upstream's, and nothing is loaded for it."""
        if client is not RESPONSES:
            return False
        try:
            target = self._table.resolve_native(model, client.name, param="model")
        except GatewayError:
            return False  # planning reports it
        return target.provider.responses.create

    def count(
        self,
        request: web.BaseRequest,
        client: Dialect,
        body: bytes,
        *,
        model: str,
        fallbacks: list[str] | UnsetType,
        t0: float,
    ) -> Call:
        """A token count at the drop-in route of dialect ``client``: the client's bytes
        for a target of that dialect, or a Responses count for a provider with
        ``responses: native`` (its upstream counts), the request in OpenAI's form
        for any other (counted offline, ``relay.count``). Every target counts: no
        endpoint check."""
        strip = fallbacks is not UNSET
        openai: bytes | GatewayError | None = None
        models = named(model, fallbacks)
        targets: Targets = []
        for param, m in models:
            target = self._table.resolve_native(m, client.name, param=param)
            if target.provider.wire is client:
                targets.append((target, native_body(client, body, target, model=model, strip=strip)))
                continue
            native: Target | None = None
            if client is RESPONSES and target.provider.responses.count:  # its upstream counts
                native = target._replace(native=True)
                if not target.provider.responses.probing:
                    targets.append((native, native_body(client, body, native, model=model, strip=strip)))
                    continue
            if openai is None:
                try:
                    openai = inbound(client).count_request(body, model=model)
                except InvalidRequest as e:
                    openai = e
            if native is not None:  # counted offline where the server cannot
                native = native._replace(twin=(target, openai))
                targets.append((native, native_body(client, body, native, model=model, strip=strip)))
                continue
            targets.append((target, openai))
        return self._sdk_call(
            request,
            client,
            targets,
            endpoint="count_tokens",
            model=model,
            openai=openai,
            body=body,
            t0=t0,
            stream=False,
        )

    def _sdk_call(
        self,
        request: web.BaseRequest,
        client: Dialect,
        targets: Targets,
        *,
        endpoint: Endpoint,
        model: str,
        openai: bytes | GatewayError | None,
        body: bytes,
        t0: float,
        stream: bool,
    ) -> Call:
        """A drop-in route's call: its request in OpenAI's form where one was made (what
        prompt tokens are counted from), else the client's; the SDK's forwarded headers.
        A chat call's usage is always asked for (the client's dialect carries it in its
        last events)."""
        call = self._call(
            request,
            targets,
            endpoint=endpoint,
            requested=model,
            body=openai if isinstance(openai, bytes) else body,
            t0=t0,
            stream=stream,
            client_usage=endpoint == "chat",
            client=client,
            client_body=body,
        )
        _forward(request, client, call)
        return call

    def embeddings(
        self,
        request: web.BaseRequest,
        body: bytes,
        *,
        model: str,
        fallbacks: list[str] | UnsetType | None,
        t0: float,
        client: Dialect | None = None,
        native: bytes | None = None,
        single: bool = False,
    ) -> Call:
        """An embeddings request (``body``: in OpenAI's form). At a drop-in route of
        dialect ``client``, a target of that dialect gets the client's own request
        (``native``, one content when ``single``) instead."""
        strip = fallbacks is not UNSET
        models = named(model, fallbacks)
        targets: Targets = []
        for param, m in models:
            if client is None:
                target = self._table.resolve(m, param=param)
            else:
                target = self._table.resolve_native(m, client.name, param=param)
            refused = unsupported(target, "embeddings", param)
            if refused is not None:
                targets.append((target, refused))
            elif native is not None and client is not None and client.embedder and target.provider.wire is client:
                targets.append((target, client.embedder.native_request(native, model=target.model, single=single)))
            else:
                targets.append((target, embeddings_body(target, body, body_model=model, param=param, strip=strip)))
        return self._call(
            request,
            targets,
            endpoint="embeddings",
            requested=model,
            body=body,
            t0=t0,
            stream=False,
            client_usage=False,
            client=client,
        )

    def internal_embeddings(self, body: bytes, *, model: str) -> Call:
        """An embeddings request the gateway makes itself (the response cache's semantic
        lookup, ``cache.embedding_model``): routed as a client's, without its options.
        Raises GatewayError when that model cannot take it."""
        param = "cache.embedding_model"
        target = self._table.resolve(model, param=param)
        refused = unsupported(target, "embeddings", param)
        upstream = refused or embeddings_body(target, body, body_model=model, param=param, strip=False)
        if isinstance(upstream, GatewayError):
            raise upstream
        return Call(
            endpoint="embeddings",
            request_type="embedding",
            requested=model,
            targets=[(target, upstream)],
            body=body,
            t0=time.perf_counter(),
            client_usage=False,
            ledger=self._ledger,
        )

    def stored(self, request: web.BaseRequest, target: Target, *, request_type: str, t0: float) -> Call:
        """A read (a retrieval, a listing, a deletion, a cancel) of what ``target``'s
        upstream keeps (``server.responses_routes``): no body, nothing to account; the
        request's x-bf-* options as any call's."""
        targets: Targets = [(target, b"")]
        options = request_options(request, direct_keys=self.direct_keys)
        if options is not NO_OPTIONS:
            check_targets(options, targets)
        return Call(
            endpoint="responses",
            request_type=request_type,
            requested=target.model,
            targets=targets,
            body=b"",
            t0=t0,
            client_usage=False,
            ledger=self._ledger,
            options=options,
        )

    def _call(
        self,
        request: web.BaseRequest,
        targets: Targets,
        *,
        endpoint: Endpoint,
        requested: str,
        body: bytes,
        t0: float,
        stream: bool,
        client_usage: bool,
        client: Dialect | None = None,
        client_body: bytes = b"",
    ) -> Call:
        """The call to ``targets``, with the request's x-bf-* options (read after the
        targets: a bad model is reported before a bad header)."""
        options = request_options(request, direct_keys=self.direct_keys)
        if options is not NO_OPTIONS:
            check_targets(options, targets)
        named = client.request_types.get((endpoint, stream)) if client is not None else None
        return Call(
            endpoint=endpoint,
            request_type=named or _REQUEST_TYPES[endpoint, stream],
            requested=requested,
            targets=targets,
            body=body,
            t0=t0,
            client_usage=client_usage,
            ledger=self._ledger,
            options=options,
            client=client,
            client_body=client_body,
        )
