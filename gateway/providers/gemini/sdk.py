"""The Google GenAI SDK's other calls as a client of the gateway: what the gateway reads
of its requests, its token counts (``:countTokens``), its model list (``GET
/{version}/models``, ``GET /{version}/models/{model}``) and a pending async job, in its
shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from gateway import codec, screen
from gateway.providers import Endpoint
from gateway.providers.dialect import Action, InboundHead, ListedModel

# The URL's action after the model -> the drop-in's kind of call and whether it streams.
ACTIONS: Mapping[str, Action] = {
    "generateContent": Action("chat", stream=False),
    "streamGenerateContent": Action("chat", stream=True),
    "countTokens": Action("count_tokens", stream=False),
    "embedContent": Action("embed_one", stream=False),
    "batchEmbedContents": Action("embed_batch", stream=False),
}
# What a listed model's supportedGenerationMethods names, by what its provider serves
# (every target counts tokens: a provider of another dialect is counted offline).
METHODS: Mapping[Endpoint, tuple[str, ...]] = {
    "chat": ("generateContent", "streamGenerateContent", "countTokens"),
    "embeddings": ("embedContent", "batchEmbedContents"),
}


class _GenerationConfig(Struct):
    maxOutputTokens: int | None = None


class _Head(Struct):
    """What the gateway reads of a generateContent (or countTokens) request."""

    generationConfig: _GenerationConfig | None = None
    fallbacks: list[str] | UnsetType = UNSET


class ModelInfo(Struct, kw_only=True):
    name: str
    displayName: str
    supportedGenerationMethods: list[str]


class ModelPage(Struct, kw_only=True):
    models: list[ModelInfo]


class CountAnswer(Struct):
    totalTokens: int


class PendingResponse(Struct, kw_only=True):
    """An unfinished job as a response without candidates, which the SDK parses."""

    responseId: str
    modelVersion: str
    extra_fields: Raw
    candidates: list[Raw] = []


_head = msgspec.json.Decoder(_Head)
# What the head reads must not repeat (codec.decode_request).
_KEYS = screen.Keys(_Head.__struct_fields__)
_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_encode = msgspec.json.Encoder().encode


def head(body: bytes, *, strict: bool) -> InboundHead:
    h = codec.decode_request(_head, body, keys=_KEYS if strict else None)
    config = h.generationConfig
    max_out = (config.maxOutputTokens or 0) if config else 0
    return InboundHead(model=None, stream=None, max_out=max_out, fallbacks=h.fallbacks)


def count_body(body: bytes) -> bytes:
    """A countTokens body as the generateContent request it counts: its
    ``generateContentRequest``, else the body itself (``{"contents": [...]}``)."""
    inner = _fields(body).get("generateContentRequest")
    return bytes(inner) if inner is not None else body


def count_answer(tokens: int) -> bytes:
    return _encode(CountAnswer(tokens))


def _info(entry: ListedModel) -> ModelInfo:
    methods = [m for e, named in METHODS.items() if e in entry.endpoints for m in named]
    return ModelInfo(name=f"models/{entry.id}", displayName=entry.id, supportedGenerationMethods=methods)


def model_list(models: Sequence[ListedModel]) -> bytes:
    return _encode(ModelPage(models=[_info(m) for m in models]))


def model(entry: ListedModel) -> bytes:
    return _encode(_info(entry))


def pending(*, job_id: str, model: str, job: bytes) -> bytes:
    return _encode(PendingResponse(responseId=job_id, modelVersion=model, extra_fields=Raw(b'{"async_job":%s}' % job)))
