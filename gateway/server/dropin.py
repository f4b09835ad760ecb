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
from gateway.errors import ErrorBody, GatewayError, InvalidRequest, NotFound
from gateway.governance import Principal
from gateway.providers import anthropic, gemini
from gateway.providers.dialect import Dialect
from gateway.server.access import GatewayRequest
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, note_error
from gateway.server.embeddings import genai_embed
from gateway.server.handlers import Handlers
from gateway.server.plan import inbound

ANTHROPIC, GEMINI = anthropic.DIALECT, gemini.DIALECT
# The GenAI SDK's paths up to the model: /genai/v1beta/models/, /genai/v1/models/.
GENAI_PREFIXES = tuple(dict.fromkeys(r.path.partition("{")[0] for r in GEMINI.served()))
GENAI_ACTIONS = gemini.ACTIONS  # -> stream


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
    for name, value in err.headers:
        resp.headers[name] = value
    return resp


class DropIns:
    __slots__ = ("_handlers", "_max_body")

    def __init__(self, handlers: Handlers, *, max_body_bytes: int) -> None:
        # The handlers' planner builds the call (server.plan), their governance admits it.
        self._handlers = handlers
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
                ANTHROPIC,
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
            return error_response(ANTHROPIC, e)

    async def generate(self, request: GatewayRequest) -> web.StreamResponse:
        """The Google GenAI SDK's ``POST /{version}/models/{model}:{action}``."""
        t0 = time.perf_counter()
        try:
            path = request.path
            rest = next((path[len(p) :] for p in GENAI_PREFIXES if path.startswith(p)), "")
            model, _, action = rest.rpartition(":")
            single = gemini.EMBED_ACTIONS.get(action)  # embedContent, batchEmbedContents
            if single is not None and model:
                return await genai_embed(
                    self._handlers, request, model=model, single=single, t0=t0, max_body_bytes=self._max_body
                )
            stream = GENAI_ACTIONS.get(action)
            if stream is None or not model:
                raise NotFound(
                    f"Invalid URL ({request.method} {path}): expected "
                    "/genai/v1beta/models/{model}:generateContent, :streamGenerateContent, :embedContent "
                    "or :batchEmbedContents"
                )
            principal = await self._handlers.identify(request)
            body = await read_bounded(request, limit=self._max_body)
            head = codec.decode_request(_generate_head, body, keys=_GENERATE_KEYS if self._handlers.strict else None)
            config = head.generationConfig
            return await self._relay(
                request,
                GEMINI,
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
            return error_response(GEMINI, e)

    async def _relay(
        self,
        request: GatewayRequest,
        client: Dialect,
        body: bytes,
        *,
        model: str,
        stream: bool,
        fallbacks: list[str] | UnsetType,
        t0: float,
        principal: Principal | None,
        max_out: int,
    ) -> web.StreamResponse:
        planner = self._handlers.planner
        call = planner.dropin(request, client, body, model=model, fallbacks=fallbacks, stream=stream, t0=t0)
        return await self._handlers.governed(request, call, principal, stream=stream, max_out=max_out)
