"""The Google GenAI SDK's embedding calls at its drop-in route:
``POST /genai/{v1beta,v1}/models/{model}:embedContent`` and ``:batchEmbedContents``,
dispatched here by ``server.dropin`` (which answers errors in Gemini's shape).

The request is validated and put into OpenAI's form (``providers.gemini.embed``), which
every non-Gemini target gets (translated on into its dialect) and the gateway counts
usage from; a Gemini target gets the client's own requests. Routing, fallbacks,
governance and options are the OpenAI route's (``server.plan``, ``Handlers.governed``).
"""

from __future__ import annotations

import msgspec
from aiohttp import web
from msgspec import UNSET, Struct, UnsetType

from gateway import codec, screen
from gateway.providers import gemini
from gateway.server.access import GatewayRequest
from gateway.server.body import read_bounded
from gateway.server.handlers import Handlers

GEMINI = gemini.DIALECT


class _EmbedHead(Struct):
    """What the route reads itself; the contents are read by the dialect's translator."""

    fallbacks: list[str] | UnsetType = UNSET


_embed_head = msgspec.json.Decoder(_EmbedHead)
_KEYS = screen.Keys(_EmbedHead.__struct_fields__)


async def genai_embed(
    handlers: Handlers, request: GatewayRequest, *, model: str, single: bool, t0: float, max_body_bytes: int
) -> web.StreamResponse:
    """``single``: embedContent (one content), else batchEmbedContents."""
    embedder = GEMINI.embedder
    assert embedder is not None
    principal = await handlers.identify(request)
    body = await read_bounded(request, limit=max_body_bytes)
    head = codec.decode_request(_embed_head, body, keys=_KEYS if handlers.strict else None)
    openai = embedder.client_request(body, model=model, single=single)
    call = handlers.planner.embeddings(
        request, openai, model=model, fallbacks=head.fallbacks, t0=t0, client=GEMINI, native=body, single=single
    )
    return await handlers.governed(request, call, principal, stream=False, max_out=0)
