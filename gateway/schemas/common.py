"""Field types shared by the chat and text completion requests."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

Temperature = Annotated[float, Meta(ge=0, le=2)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
TopP = Annotated[float, Meta(ge=0, le=1)]
PositiveInt = Annotated[int, Meta(ge=1)]
ModelName = Annotated[str, Meta(min_length=1)]
# "stop": OpenAI accepts a string or up to 4 strings.
Stop = str | Annotated[list[str], Meta(max_length=4)] | None


class StreamOptions(Struct, kw_only=True, omit_defaults=True):
    include_usage: bool | UnsetType | None = UNSET
    include_obfuscation: bool | UnsetType | None = UNSET


class SamplingFields(Struct, kw_only=True, omit_defaults=True):
    """Fields both completion endpoints take. ``None`` is accepted wherever OpenAI
    accepts ``null``."""

    model: ModelName
    stream: bool | None = None
    stream_options: StreamOptions | UnsetType | None = UNSET
    max_tokens: PositiveInt | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    top_p: TopP | UnsetType | None = UNSET
    frequency_penalty: Penalty | UnsetType | None = UNSET
    presence_penalty: Penalty | UnsetType | None = UNSET
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | UnsetType | None = UNSET
    n: Annotated[int, Meta(ge=1, le=128)] | UnsetType | None = UNSET
    stop: Stop | UnsetType = UNSET
    seed: int | UnsetType | None = UNSET
    user: str | UnsetType | None = UNSET
    # Gateway-only: validated here, removed from what goes upstream (codec.upstream_body).
    fallbacks: list[ModelName] | UnsetType | None = UNSET
