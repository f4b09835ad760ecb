"""The Anthropic SDK's other calls as a client of the gateway: what the gateway reads of
its requests, its token counts (``POST /v1/messages/count_tokens``), its model list
(``GET /v1/models``, ``GET /v1/models/{id}``) and a pending async job, in its shapes."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from gateway import codec, screen
from gateway.errors import InvalidRequest
from gateway.providers.dialect import InboundHead, ListedModel

# Listed models carry no creation time the gateway knows: the epoch, which the SDK parses.
CREATED_AT = "1970-01-01T00:00:00Z"


class _Head(Struct):
    """What the gateway reads of a Messages (or count_tokens) request."""

    model: str | UnsetType = UNSET
    stream: bool | None = None
    max_tokens: int | None = None
    fallbacks: list[str] | UnsetType = UNSET


class ModelInfo(Struct, kw_only=True):
    id: str
    display_name: str
    created_at: str = CREATED_AT
    type: str = "model"


class ModelPage(Struct, kw_only=True):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None


class CountAnswer(Struct):
    input_tokens: int


class _Usage(Struct):
    input_tokens: int = 0
    output_tokens: int = 0


class PendingMessage(Struct, kw_only=True):
    """An unfinished job as a message without content, which the SDK parses."""

    id: str
    model: str
    extra_fields: Raw
    content: list[Raw] = []
    stop_reason: None = None
    stop_sequence: None = None
    usage: _Usage = msgspec.field(default_factory=_Usage)
    type: str = "message"
    role: str = "assistant"


_head = msgspec.json.Decoder(_Head)
# What the head reads must not repeat (codec.decode_request).
_KEYS = screen.Keys(_Head.__struct_fields__)
_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_encode = msgspec.json.Encoder().encode


def head(body: bytes, *, strict: bool) -> InboundHead:
    h = codec.decode_request(_head, body, keys=_KEYS if strict else None)
    if not isinstance(h.model, str) or not h.model:
        raise InvalidRequest("model: Field required", param="model", code="invalid_value")
    return InboundHead(model=h.model, stream=bool(h.stream), max_out=h.max_tokens or 0, fallbacks=h.fallbacks)


def with_max_tokens(body: bytes) -> bytes:
    """A count_tokens body as a Messages request: ``max_tokens`` (which a count does not
    take) set to 1 when absent, so the Messages translation accepts it."""
    fields = _fields(body)
    if "max_tokens" in fields:
        return body
    fields["max_tokens"] = Raw(b"1")
    return _encode(fields)


def count_answer(tokens: int) -> bytes:
    return _encode(CountAnswer(tokens))


def _info(entry: ListedModel) -> ModelInfo:
    return ModelInfo(id=entry.id, display_name=entry.id)


def model_list(models: Sequence[ListedModel]) -> bytes:
    """One page holding every model (``has_more`` false)."""
    data = [_info(m) for m in models]
    return _encode(
        ModelPage(
            data=data,
            has_more=False,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
    )


def model(entry: ListedModel) -> bytes:
    return _encode(_info(entry))


def pending(*, job_id: str, model: str, job: bytes) -> bytes:
    return _encode(PendingMessage(id=job_id, model=model, extra_fields=Raw(b'{"async_job":%s}' % job)))
