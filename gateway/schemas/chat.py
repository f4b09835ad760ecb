"""POST /v1/chat/completions: the request as the seed API documents it."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from gateway.schemas.common import SamplingFields

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(Struct, kw_only=True):
    """One part of a multi-part message; its payload stays unread."""

    type: Annotated[str, Meta(min_length=1)]


class FunctionCall(Struct, kw_only=True):
    name: str
    arguments: str


class ToolCall(Struct, kw_only=True):
    function: FunctionCall
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    index: int | UnsetType = UNSET


class ChatMessage(Struct, kw_only=True):
    role: Role
    content: str | list[ContentPart] | UnsetType | None = UNSET
    name: str | UnsetType | None = UNSET
    tool_call_id: str | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    reasoning: str | UnsetType | None = UNSET
    annotations: list[Raw] | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET


class FunctionDefinition(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1)]
    description: str | UnsetType | None = UNSET
    parameters: dict[str, Raw] | UnsetType | None = UNSET
    strict: bool | UnsetType | None = UNSET


class CacheControl(Struct, kw_only=True):
    type: Literal["ephemeral"]
    ttl: str | UnsetType = UNSET


class Tool(Struct, kw_only=True):
    type: Annotated[str, Meta(min_length=1)] = "function"
    function: FunctionDefinition | UnsetType = UNSET
    custom: dict[str, Raw] | UnsetType = UNSET
    cache_control: CacheControl | UnsetType = UNSET


class NamedFunction(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1)]


class NamedToolChoice(Struct, kw_only=True):
    """``{"type": "function", "function": {"name": ...}}``: OpenAI's object form."""

    type: str
    function: NamedFunction | UnsetType = UNSET


class ResponseFormat(Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Raw] | UnsetType = UNSET


class ChatCompletionRequest(SamplingFields, kw_only=True, omit_defaults=True):
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_completion_tokens: Annotated[int, Meta(ge=1)] | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType | None = UNSET
    tools: list[Tool] | UnsetType | None = UNSET
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType | None = UNSET
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET
