"""POST /v1/completions: the legacy text completion request."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from gateway.schemas.common import SamplingFields

# A string, a list of strings, a list of tokens, or a list of token lists. msgspec
# cannot express a union of list types, so the items are a union and
# codec.check_prompt enforces that a list is homogeneous.
Prompt = str | Annotated[list[str | int | list[int]], Meta(min_length=1)]


class CompletionRequest(SamplingFields, kw_only=True, omit_defaults=True):
    prompt: Prompt
    suffix: str | UnsetType | None = UNSET
    echo: bool | UnsetType | None = UNSET
    best_of: Annotated[int, Meta(ge=1, le=20)] | UnsetType | None = UNSET
    logprobs: Annotated[int, Meta(ge=0, le=5)] | UnsetType | None = UNSET
