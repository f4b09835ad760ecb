"""Non-streaming: read the whole upstream answer, enrich it, one write."""

from __future__ import annotations

import time

from msgspec import UNSET, Raw

from gateway import codec
from gateway.errors import UpstreamError
from gateway.relay.call import Call, may_fall_back, status_error
from gateway.routing.table import Target
from gateway.schemas.response import ExtraFields


async def _attempt(call: Call, target: Target, body: bytes) -> bytes:
    provider = target.provider
    reply = await provider.send(call.endpoint, body, stream=False)
    try:
        data = await reply.read()
    finally:
        reply.close()
    if not 200 <= reply.status < 300:
        raise status_error(provider.name, reply.status, provider.redact(data))
    head = codec.response_head(data)
    extra = ExtraFields(
        request_type=call.request_type,
        provider=provider.name,
        model_requested=call.requested,
        model_deployment=target.model,
        latency=round((time.perf_counter() - call.t0) * 1000, 3),
        raw_request=Raw(body) if call.raw_request else UNSET,
        raw_response=Raw(data) if call.raw_response else UNSET,
    )
    return codec.enrich(data, head, extra)


async def unary(call: Call) -> tuple[bytes, int]:
    """The enriched body and the index of the target that served it (0: primary).
    All failing: the primary's error."""
    first: UpstreamError | None = None
    for index, (target, body) in enumerate(call.targets):
        try:
            return await _attempt(call, target, body), index
        except UpstreamError as e:
            first = first or e
            if not may_fall_back(e):
                break
    assert first is not None
    raise first
