"""SDK drop-in routes in a provider's own wire format: the Anthropic SDK at
``POST /anthropic/v1/messages``, the Google GenAI SDK at
``POST /genai/{v1beta,v1}/models/{model}:generateContent`` and ``:streamGenerateContent``.

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
"""

from __future__ import annotations

import time

import msgspec
from aiohttp import web
from msgspec import UNSET, Struct, UnsetType

from gateway import codec, screen
from gateway.accounting.ledger import Ledger
from gateway.errors import ErrorBody, GatewayError, InvalidRequest, NotFound
from gateway.governance import Principal
from gateway.providers import anthropic, gemini
from gateway.providers.anthropic.errors import anthropic_type
from gateway.providers.gemini.convert import rpc_status
from gateway.relay.call import Call
from gateway.routing.table import ModelTable, Target
from gateway.server.access import GatewayRequest
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, Routes, note_error
from gateway.server.handlers import Handlers, check_endpoint, target_body
from gateway.server.options import (
    RAW_REQUEST_HEADER,
    RAW_RESPONSE_HEADER,
    direct_key,
    extra_headers,
    flag,
    pinned_key,
    timeouts,
)

ANTHROPIC_PATH = "/anthropic/v1/messages"
GENAI_PREFIXES = ("/genai/v1beta/models/", "/genai/v1/models/")
GENAI_ACTIONS = {"generateContent": False, "streamGenerateContent": True}  # -> stream
# Sent by the Anthropic SDK for beta features; forwarded to every target (harmless to
# the others) unless the client forwards its own through x-bf-eh-anthropic-beta.
ANTHROPIC_BETA = "anthropic-beta"


class _MessagesHead(Struct):
    """What the gateway reads of a Messages request; the rest passes as bytes."""

    model: str | UnsetType = UNSET
    stream: bool | None = None
    max_tokens: int | None = None
    fallbacks: list[str] | UnsetType = UNSET


class _GenerationConfig(Struct):
    maxOutputTokens: int | None = None


class _GenerateHead(Struct):
    generationConfig: _GenerationConfig | None = None
    fallbacks: list[str] | UnsetType = UNSET


_messages_head = msgspec.json.Decoder(_MessagesHead)
_generate_head = msgspec.json.Decoder(_GenerateHead)
# What the heads read must not repeat (codec.decode_request).
_MESSAGES_KEYS = screen.Keys(_MessagesHead.__struct_fields__)
_GENERATE_KEYS = screen.Keys(_GenerateHead.__struct_fields__)
_decode_error = msgspec.json.Decoder(ErrorBody).decode
_encode = msgspec.json.Encoder().encode


def error_response(client: str, err: GatewayError) -> web.Response:
    """``err`` in the client's dialect (see the module docstring)."""
    try:
        detail = _decode_error(err.body()).error
        message, kind, param, code = detail.message, detail.type, detail.param, detail.code
    except (msgspec.ValidationError, msgspec.DecodeError):
        message, kind, param, code = err.message, err.type, err.param, err.code
    status = err.status
    inner: dict[str, object]
    if client == "anthropic":
        inner = {"type": anthropic_type(status), "message": message, "param": param, "code": code}
        out: dict[str, object] = {"type": "error", "error": inner}
    else:
        inner = {"code": status, "message": message, "status": rpc_status(status), "type": kind, "param": param}
        out = {"error": inner}
    if err.attempts:
        out["extra_fields"] = {"attempts": err.attempts}
    resp = web.Response(status=status, body=_encode(out), content_type=JSON)
    for name, value in err.headers:
        resp.headers[name] = value
    return resp


class DropIns:
    __slots__ = ("_handlers", "_ledger", "_max_body", "_table")

    def __init__(self, handlers: Handlers, table: ModelTable, *, ledger: Ledger, max_body_bytes: int) -> None:
        self._handlers = handlers
        self._table = table
        self._ledger = ledger
        self._max_body = max_body_bytes

    async def messages(self, request: GatewayRequest) -> web.StreamResponse:
        """The Anthropic SDK's ``POST /v1/messages``."""
        t0 = time.perf_counter()
        try:
            principal = await self._handlers.identify(request)
            body = await read_bounded(request, limit=self._max_body)
            head = codec.decode_request(_messages_head, body, keys=_MESSAGES_KEYS if self._handlers.strict else None)
            if not isinstance(head.model, str) or not head.model:
                raise InvalidRequest("model: Field required", param="model", code="invalid_value")
            return await self._relay(
                request,
                "anthropic",
                body,
                model=head.model,
                stream=bool(head.stream),
                fallbacks=head.fallbacks,
                t0=t0,
                principal=principal,
                max_out=head.max_tokens or 0,
            )
        except GatewayError as e:
            note_error(request, e)
            return error_response("anthropic", e)

    async def generate(self, request: GatewayRequest) -> web.StreamResponse:
        """The Google GenAI SDK's ``POST /{version}/models/{model}:{action}``."""
        t0 = time.perf_counter()
        try:
            path = request.path
            rest = next((path[len(p) :] for p in GENAI_PREFIXES if path.startswith(p)), "")
            model, _, action = rest.rpartition(":")
            stream = GENAI_ACTIONS.get(action)
            if stream is None or not model:
                raise NotFound(
                    f"Invalid URL ({request.method} {path}): expected "
                    "/genai/v1beta/models/{model}:generateContent or :streamGenerateContent"
                )
            principal = await self._handlers.identify(request)
            body = await read_bounded(request, limit=self._max_body)
            head = codec.decode_request(_generate_head, body, keys=_GENERATE_KEYS if self._handlers.strict else None)
            config = head.generationConfig
            return await self._relay(
                request,
                "gemini",
                body,
                model=model,
                stream=stream,
                fallbacks=head.fallbacks,
                t0=t0,
                principal=principal,
                max_out=(config.maxOutputTokens or 0) if config else 0,
            )
        except GatewayError as e:
            note_error(request, e)
            return error_response("gemini", e)

    def _native_body(self, client: str, body: bytes, target: Target, *, model: str, strip: bool) -> bytes:
        """The client's own bytes for a target of its dialect: the model swapped (Gemini
        names it in the URL, not the body) and the gateway's fields removed."""
        rewrite = client == "anthropic" and target.model != model
        return codec.upstream_body(body, model=target.model, rewrite_model=rewrite, has_gateway_fields=strip)

    async def _relay(
        self,
        request: GatewayRequest,
        client: str,
        body: bytes,
        *,
        model: str,
        stream: bool,
        fallbacks: list[str] | UnsetType,
        t0: float,
        principal: Principal | None,
        max_out: int,
    ) -> web.StreamResponse:
        models = [("model", model)]
        if fallbacks:
            models += [(f"fallbacks[{i}]", m) for i, m in enumerate(fallbacks)]
        strip = fallbacks is not UNSET
        openai: bytes | GatewayError | None = None  # the request in OpenAI's form, when needed
        targets: list[tuple[Target, bytes | GatewayError]] = []
        for param, m in models:
            target = self._table.resolve_native(m, client, param=param)
            check_endpoint(target, "chat", param)
            if target.provider.dialect == client:
                targets.append((target, self._native_body(client, body, target, model=model, strip=strip)))
                continue
            if openai is None:
                try:
                    openai = _to_openai(client, body, model=model, stream=stream)
                except InvalidRequest as e:
                    openai = e
            if isinstance(openai, GatewayError):
                targets.append((target, openai))
                continue
            targets.append(
                (target, target_body(target, openai, body_model=model, param=param, strip=False, force_usage=False))
            )
        forwarded = extra_headers(request)
        beta = request.headers.get(ANTHROPIC_BETA) if client == "anthropic" else None
        if beta and not any(name == ANTHROPIC_BETA for name, _ in forwarded):
            forwarded += ((ANTHROPIC_BETA, beta),)
        direct = direct_key(request, targets, enabled=self._handlers.direct_keys)  # before pinned_key's 400
        call = Call(
            endpoint="chat",
            request_type="chat_completion_stream" if stream else "chat_completion",
            requested=model,
            targets=targets,
            body=openai if isinstance(openai, bytes) else body,
            t0=t0,
            raw_request=flag(request, RAW_REQUEST_HEADER),
            raw_response=flag(request, RAW_RESPONSE_HEADER),
            # The client's dialect carries usage in its last events: always asked for.
            client_usage=True,
            ledger=self._ledger,
            timeouts=timeouts(request),
            pinned_key=pinned_key(request, targets),
            extra_headers=forwarded,
            client=client,
            direct_key=direct,
        )
        return await self._handlers.governed(request, call, principal, stream=stream, max_out=max_out)


def _to_openai(client: str, body: bytes, *, model: str, stream: bool) -> bytes:
    if client == "anthropic":
        return anthropic.messages_request(body)[0]
    return gemini.generate_request(body, model=model, stream=stream)


def routes(d: DropIns) -> tuple[Routes, Routes]:
    """(exact routes, prefix routes) of the drop-ins."""
    return {ANTHROPIC_PATH: {"POST": d.messages}}, {p: {"POST": d.generate} for p in GENAI_PREFIXES}
