"""The Google GenAI SDK's embedding calls at its drop-in route:
``POST /{prefix}/{v1beta,v1}/models/{model}:embedContent`` and ``:batchEmbedContents``,
dispatched here by ``server.dropin`` (which reads the body and the routing head, and
answers errors in the SDK's shape).

The request is validated and put into OpenAI's form (the dialect's ``embedder``;
``providers.gemini.embed``), which every target of another dialect gets (translated on
into its own) and the gateway counts usage from; a target of the client's dialect gets
the client's own request. Routing, fallbacks, governance and options are the OpenAI
route's (``server.plan``, ``Handlers.governed``).
"""

from __future__ import annotations

from aiohttp import web
from msgspec import UnsetType

from gateway.governance import Principal
from gateway.providers.dialect import Dialect
from gateway.server.access import GatewayRequest
from gateway.server.handlers import Handlers


async def embed(
    handlers: Handlers,
    request: GatewayRequest,
    client: Dialect,
    body: bytes,
    *,
    model: str,
    single: bool,
    t0: float,
    fallbacks: list[str] | UnsetType,
    principal: Principal | None,
) -> web.StreamResponse:
    """``single``: one content (embedContent), else a batch (batchEmbedContents)."""
    embedder = client.embedder
    assert embedder is not None, "only a dialect with an embedder names embedding actions"
    openai = embedder.client_request(body, model=model, single=single)
    call = handlers.planner.embeddings(
        request, openai, model=model, fallbacks=fallbacks, t0=t0, client=client, native=body, single=single
    )
    # Nothing is generated: admitted on the input alone.
    return await handlers.governed(request, call, principal, stream=False, max_out=0)
