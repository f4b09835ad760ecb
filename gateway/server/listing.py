"""Model lists and single models in the shape of the SDK that asked: ``GET /v1/models``
(and ``/{version}/models/{model}``) of OpenAI, Anthropic and Gemini, under every prefix
that serves them (``server.routes``).

Where one path belongs to several dialects (``GET /langchain/v1/models``: OpenAI's,
Anthropic's and Gemini's v1), the SDK is told by the headers only it sends
(``Dialect.client_headers``: the Anthropic SDK's ``anthropic-version``, google-genai's
``x-goog-api-key`` / ``x-goog-api-client``); without any, the answer is OpenAI's.

Every configured provider's models are listed as ``provider/model``, as ``GET
/v1/models`` always has; a provider whose list cannot be fetched is left out (logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiohttp import web

from gateway import codec
from gateway.errors import GatewayError, MethodNotAllowed, ModelNotFound, UpstreamError
from gateway.providers.dialect import Dialect, ListedModel
from gateway.routing.table import ModelTable, check_model
from gateway.schemas.response import Model, ModelList
from gateway.server.access import GatewayRequest
from gateway.server.dispatch import JSON, Handler, note_error
from gateway.server.dropin import error_response
from gateway.server.handlers import Handlers

log = logging.getLogger("gateway.server")


class ModelLists:
    """The ``models`` and ``model`` handlers of every dialect's routes; ``families``:
    the dialects serving each list path, and each single-model path's prefix."""

    __slots__ = ("_handlers", "_lists", "_singles", "_table", "model", "models")

    def __init__(self, handlers: Handlers, table: ModelTable, *, families: dict[str, tuple[Dialect, ...]]) -> None:
        self._handlers = handlers
        self._table = table
        self._lists = {p: f for p, f in families.items() if "{" not in p}
        self._singles = tuple((p.partition("{")[0], f) for p, f in families.items() if "{" in p)
        # Bound once: the route table tells handlers apart by identity.
        self.models: Handler = self._models
        self.model: Handler = self._model

    async def _models(self, request: GatewayRequest) -> web.StreamResponse:
        shape = pick(request, self._lists.get(request.path, ()))
        try:
            entries = await self._entries(request)
        except GatewayError as e:
            return self._error(request, shape, e)
        if shape is None or shape.inbound is None:
            data = ModelList(data=[Model(id=m.id, owned_by=m.provider) for m in entries])
            return web.Response(body=codec.encode(data), content_type=JSON)
        return web.Response(body=shape.inbound.model_list(entries), content_type=JSON)

    async def _model(self, request: GatewayRequest) -> web.StreamResponse:
        path = request.path
        head, families = next(((p, f) for p, f in self._singles if path.startswith(p)), ("", ()))
        shape = pick(request, families)
        model = path[len(head) :]
        try:
            _, _, action = model.rpartition(":")
            if any(d.inbound is not None and action in d.inbound.actions for d in families):
                # A call named in the URL (Gemini's :generateContent) asked with GET.
                raise MethodNotAllowed(
                    f"Method {request.method} not allowed for {path}; allowed: POST", allow=("POST",)
                )
            check_model(model, param="model")  # bounded before it is quoted back
            entries = await self._entries(request)
            entry = next((m for m in entries if m.id == model), None)
            if entry is None:
                raise ModelNotFound(f"model '{model}' is not in any configured provider's model list", param="model")
        except GatewayError as e:
            return self._error(request, shape, e)
        if shape is None or shape.inbound is None:
            return web.Response(body=codec.encode(Model(id=entry.id, owned_by=entry.provider)), content_type=JSON)
        return web.Response(body=shape.inbound.model(entry), content_type=JSON)

    async def _entries(self, request: web.BaseRequest) -> list[ListedModel]:
        await self._handlers.identify(request)  # with auth required, listing models needs credentials too
        providers = self._table.providers
        results = await asyncio.gather(*(p.list_models() for p in providers.values()), return_exceptions=True)
        entries: list[ListedModel] = []
        for (name, provider), result in zip(providers.items(), results, strict=True):
            if isinstance(result, UpstreamError):
                log.warning("model list of provider '%s' unavailable: %s", name, result.message)
                continue
            if isinstance(result, BaseException):
                raise result
            entries.extend(ListedModel(f"{name}/{m}", name, provider.endpoints) for m in result)
        return entries

    @staticmethod
    def _error(request: GatewayRequest, shape: Dialect | None, err: GatewayError) -> web.StreamResponse:
        if shape is None or shape.inbound is None:
            raise err  # an OpenAI error body (server.dispatch)
        note_error(request, err)
        return error_response(shape, err)


def pick(request: web.BaseRequest, families: Iterable[Dialect]) -> Dialect | None:
    """The dialect whose shape answers: the only one serving the path, else the one whose
    SDK's own headers came, else OpenAI's (None when OpenAI's serves the path)."""
    candidates = tuple(families)
    if len(candidates) == 1:
        return candidates[0]
    headers = request.headers
    for d in candidates:
        if any(h in headers for h in d.client_headers):
            return d
    return next((d for d in candidates if d.inbound is None), None)
