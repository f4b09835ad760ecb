"""POST /v1/embeddings: the request as OpenAI documents it, and what the gateway reads
of an answer."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from gateway.schemas.common import ModelName

# OpenAI's own cap on the inputs of one request.
MAX_INPUTS = 2048
# Far above any model's (OpenAI's and Gemini's largest is 3072): a bound, not a policy.
MAX_DIMENSIONS = 65536

Text = Annotated[str, Meta(min_length=1)]
TokenIds = Annotated[list[Annotated[int, Meta(ge=0)]], Meta(min_length=1)]
# A string, a list of strings, a list of token ids, or a list of token id lists. msgspec
# cannot express a union of list types, so the items are a union and
# codec.decode_embeddings enforces that a list is homogeneous.
Input = Text | Annotated[list[Text | Annotated[int, Meta(ge=0)] | TokenIds], Meta(min_length=1, max_length=MAX_INPUTS)]


class EmbeddingsRequest(Struct, kw_only=True, omit_defaults=True):
    model: ModelName
    input: Input
    encoding_format: Literal["float", "base64"] | UnsetType | None = UNSET
    dimensions: Annotated[int, Meta(ge=1, le=MAX_DIMENSIONS)] | UnsetType | None = UNSET
    user: str | UnsetType | None = UNSET
    # Read only to refuse it: embeddings do not stream.
    stream: Raw | UnsetType = UNSET
    # Gateway-only: validated here, removed from what goes upstream (codec.upstream_body).
    fallbacks: list[ModelName] | UnsetType | None = UNSET


class EmbeddingsHead(Struct, kw_only=True):
    """The part of an upstream embeddings answer the gateway reads; ``data`` stays unread."""

    # Required: an object without it (an error object sent with a 200) is not a list of
    # embeddings, and failing here lets retries and fallbacks act.
    data: Raw
    usage: Raw | UnsetType = UNSET
    extra_fields: Raw | UnsetType = UNSET


class EmbeddingsUsage(Struct, kw_only=True, omit_defaults=True):
    """The usage of an answer the gateway counted (the upstream reported none)."""

    prompt_tokens: int
    total_tokens: int
    cost: Raw | UnsetType = UNSET


class EncodingHead(Struct):
    """What the relay reads of a request to shape its answer: a string ``input`` is one
    text (a Gemini SDK's embedContent), ``encoding_format`` the vectors' form."""

    input: Raw | UnsetType = UNSET
    encoding_format: str | None = None
