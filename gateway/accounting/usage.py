"""The OpenAI usage object as the gateway reads it, and the cost it adds."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, Struct, UnsetType


class PromptDetails(Struct, kw_only=True):
    cached_tokens: int | None = None


class CompletionDetails(Struct, kw_only=True):
    reasoning_tokens: int | None = None


class Usage(Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None

    @property
    def cached_tokens(self) -> int:
        d = self.prompt_tokens_details
        return (d.cached_tokens or 0) if d else 0

    @property
    def reasoning_tokens(self) -> int:
        d = self.completion_tokens_details
        return (d.reasoning_tokens or 0) if d else 0


class Cost(Struct, kw_only=True, omit_defaults=True):
    """USD. A partition: ``total_cost`` is the sum of the other fields."""

    input_tokens_cost: float
    output_tokens_cost: float
    reasoning_tokens_cost: float | UnsetType = UNSET
    cached_read_tokens_cost: float | UnsetType = UNSET
    request_cost: float = 0.0
    total_cost: float


class CountedUsage(Struct, kw_only=True, omit_defaults=True):
    """Usage the gateway counted itself (the upstream reported none)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: msgspec.Raw | UnsetType = UNSET


decode_usage = msgspec.json.Decoder(Usage).decode
encode = msgspec.json.Encoder().encode


def encode_counted(usage: Usage, cost: bytes | None) -> bytes:
    """The usage object of an answer the gateway counted, with its encoded cost."""
    return encode(
        CountedUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
            cost=msgspec.Raw(cost) if cost is not None else UNSET,
        )
    )
