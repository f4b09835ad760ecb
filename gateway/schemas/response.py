"""What the gateway reads of, and adds to, responses."""

from __future__ import annotations

from msgspec import UNSET, Raw, Struct, UnsetType


class ResponseHead(Struct, kw_only=True):
    """The part of an upstream completion the gateway reads; choices stay unread."""

    # Required: an object without it (``{}``, an error object sent with a 200) is not a
    # completion, and failing here lets retries and fallbacks act. Raw: its presence is
    # checked, its contents skipped (cheaper than skipping an unknown field).
    choices: Raw
    id: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    usage: Raw | UnsetType = UNSET  # Raw cannot sit in a union with None; null stays Raw
    extra_fields: Raw | UnsetType = UNSET


class CacheDebug(Struct, kw_only=True, omit_defaults=True):
    """What the response cache did for a request, as the reference API names it: on a hit
    the entry that answered and the target that first made it; on a miss the id the
    answer is kept under (when it is kept)."""

    cache_hit: bool
    cache_id: str | UnsetType = UNSET
    hit_type: str | UnsetType = UNSET  # "direct" (the same request), "semantic" (a near one)
    requested_provider: str | UnsetType = UNSET
    requested_model: str | UnsetType = UNSET
    provider_used: str | UnsetType = UNSET
    model_used: str | UnsetType = UNSET
    input_tokens: int | UnsetType = UNSET  # semantic: the embedding's input tokens
    threshold: float | UnsetType = UNSET  # semantic: the similarity asked for
    similarity: float | UnsetType = UNSET  # semantic: the similarity found


class ExtraFields(Struct, kw_only=True, omit_defaults=True):
    request_type: str
    provider: str
    model_requested: str
    model_deployment: str
    latency: float  # milliseconds, as the reference API reports it
    chunk_index: int | UnsetType = UNSET
    usage_estimated: bool | UnsetType = UNSET  # usage counted by the gateway, not reported
    raw_request: Raw | UnsetType = UNSET
    raw_response: Raw | UnsetType = UNSET
    cache_debug: CacheDebug | UnsetType = UNSET


class Model(Struct, kw_only=True):
    id: str
    owned_by: str
    object: str = "model"
    created: int = 0


class ModelList(Struct, kw_only=True):
    data: list[Model]
    object: str = "list"


class UpstreamModel(Struct, kw_only=True):
    id: str


class UpstreamModelList(Struct, kw_only=True):
    data: list[UpstreamModel]
