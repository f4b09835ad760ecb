"""The shapes the Responses translators read and write: the client's request (its
input items, tools, formats), the pipeline's chat completion and chunk, and the
``Response`` object with its output items, as the OpenAI SDK's ``Response`` types."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Raw, Struct, UnsetType

# Bounds on what one request may carry, beyond the body's byte bound: every item and
# part becomes an object here, so their number is bounded too. OpenAI's own tool limit
# is 128; 4096 items is a conversation far past any model's context.
MAX_ITEMS = 4096
MAX_PARTS = 512
MAX_TOOLS = 128
# OpenAI has eight include values; a longer list only repeats them.
MAX_INCLUDE = 64

# --- the request --------------------------------------------------------------------


class Part(Struct, kw_only=True):
    """A content part of an input message, or of a function_call_output's output."""

    type: str
    text: str | UnsetType = UNSET
    refusal: str | UnsetType = UNSET
    image_url: str | UnsetType | None = UNSET
    file_id: str | UnsetType | None = UNSET
    file_data: str | UnsetType | None = UNSET
    file_url: str | UnsetType | None = UNSET
    filename: str | UnsetType | None = UNSET
    detail: str | UnsetType | None = UNSET


class Item(Struct, kw_only=True):
    """An input item: a message (``type`` "message" or absent), a function_call, a
    function_call_output, a reasoning item (its text in ``content`` or ``summary``), or
    one this gateway refuses."""

    type: str | UnsetType = UNSET
    role: str | UnsetType = UNSET
    content: str | Annotated[list[Part], Meta(max_length=MAX_PARTS)] | UnsetType = UNSET
    call_id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET
    output: str | Annotated[list[Part], Meta(max_length=MAX_PARTS)] | UnsetType = UNSET
    summary: Annotated[list[Part], Meta(max_length=MAX_PARTS)] | UnsetType = UNSET
    encrypted_content: str | UnsetType | None = UNSET


Items = Annotated[list[Item], Meta(max_length=MAX_ITEMS)]


class ToolDef(Struct, kw_only=True):
    type: str
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    parameters: Raw | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class AllowedTool(Struct, kw_only=True):
    type: str
    name: str | UnsetType = UNSET


class NamedChoice(Struct, kw_only=True):
    """A function by ``name``, or ``allowed_tools`` (``mode`` and ``tools``)."""

    type: str
    name: str | UnsetType = UNSET
    mode: str | UnsetType = UNSET
    tools: Annotated[list[AllowedTool], Meta(max_length=MAX_TOOLS)] | UnsetType = UNSET


class Format(Struct, kw_only=True):
    type: str
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    schema: Raw | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class TextConfig(Struct, kw_only=True):
    format: Format | UnsetType | None = UNSET
    verbosity: str | UnsetType | None = UNSET


class Reasoning(Struct, kw_only=True):
    effort: str | UnsetType | None = UNSET


class ResponsesRequest(Struct, kw_only=True):
    """What the translation reads of ``POST /v1/responses``; other fields are ignored."""

    model: Annotated[str, Meta(min_length=1)]
    input: str | Items | UnsetType = UNSET
    instructions: str | UnsetType | None = UNSET
    tools: Annotated[list[ToolDef], Meta(max_length=MAX_TOOLS)] | UnsetType | None = UNSET
    tool_choice: str | NamedChoice | UnsetType | None = UNSET
    text: TextConfig | UnsetType | None = UNSET
    reasoning: Reasoning | UnsetType | None = UNSET
    max_output_tokens: Annotated[int, Meta(ge=1)] | UnsetType | None = UNSET
    temperature: Annotated[float, Meta(ge=0, le=2)] | UnsetType | None = UNSET
    top_p: Annotated[float, Meta(ge=0, le=1)] | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType | None = UNSET
    user: str | UnsetType | None = UNSET
    safety_identifier: str | UnsetType | None = UNSET
    prompt_cache_key: str | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET
    include: Annotated[list[str], Meta(max_length=MAX_INCLUDE)] | UnsetType | None = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType | None = UNSET
    truncation: str | UnsetType | None = UNSET
    stream: bool | None = None
    previous_response_id: str | UnsetType | None = UNSET
    conversation: Raw | UnsetType = UNSET
    background: bool | UnsetType | None = UNSET
    prompt: Raw | UnsetType = UNSET


class Head(Struct):
    """What the gateway routes on."""

    model: str | UnsetType = UNSET
    stream: bool | None = None
    max_output_tokens: int | None = None
    fallbacks: list[str] | UnsetType = UNSET
    previous_response_id: str | None = None
    store: bool | None = None


class Echo(Struct, kw_only=True):
    """The request's fields a Response repeats."""

    model: str = ""
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: Raw | UnsetType = UNSET
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    reasoning: Raw | UnsetType = UNSET
    store: bool | None = None
    temperature: float | None = None
    text: Raw | UnsetType = UNSET
    tool_choice: Raw | UnsetType = UNSET
    tools: Raw | UnsetType = UNSET
    top_p: float | None = None
    user: str | None = None


# --- the pipeline's chat completion and chunks --------------------------------------


class ChatFunction(Struct, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str | None = None


class ChatToolCall(Struct, kw_only=True):
    index: int | UnsetType = UNSET
    id: str | None = None
    function: ChatFunction | None = None


class ChatPart(Struct, kw_only=True):
    type: str = "text"
    text: str | UnsetType = UNSET
    refusal: str | UnsetType = UNSET


class ChatMessage(Struct, kw_only=True):
    content: str | list[ChatPart] | None = None
    refusal: str | None = None
    tool_calls: list[ChatToolCall] | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None  # vLLM, DeepSeek
    reasoning_signature: str | None = None  # Anthropic's thinking signature


class TopLogprob(Struct, kw_only=True):
    token: str
    bytes: list[int] | None = None
    logprob: float


class TokenLogprob(Struct, kw_only=True):
    """A chat answer's token log probability; with ``bytes`` filled (``answer.logprobs``)
    it is the Responses API's ``Logprob``, fields in OpenAI's order."""

    token: str
    bytes: list[int] | None = None
    logprob: float
    top_logprobs: list[TopLogprob] = []


class ChatLogprobs(Struct, kw_only=True):
    content: list[TokenLogprob] | None = None


class ChatChoice(Struct, kw_only=True):
    message: ChatMessage | UnsetType = UNSET
    delta: ChatMessage | UnsetType = UNSET
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None


class PromptDetails(Struct, kw_only=True):
    cached_tokens: int | None = None
    cached_write_tokens: int | None = None


class CompletionDetails(Struct, kw_only=True):
    reasoning_tokens: int | None = None


class ChatUsage(Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None
    cost: Raw | UnsetType = UNSET


class ChatError(Struct, kw_only=True):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class Completion(Struct, kw_only=True):
    """A chat.completion, a chat.completion.chunk, or an in-band error frame."""

    created: int = 0
    choices: list[ChatChoice] = []
    usage: ChatUsage | None = None
    extra_fields: Raw | UnsetType = UNSET
    error: ChatError | UnsetType | None = UNSET


# --- the Response -------------------------------------------------------------------


class OutputText(Struct, kw_only=True, tag_field="type", tag="output_text"):
    text: str
    annotations: list[Raw] = []
    logprobs: list[TokenLogprob] = []


class Refusal(Struct, kw_only=True, tag_field="type", tag="refusal"):
    refusal: str


class MessageItem(Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: str
    role: str = "assistant"
    content: list[OutputText | Refusal] = []


class SummaryText(Struct, kw_only=True, tag_field="type", tag="summary_text"):
    text: str


class ReasoningItem(Struct, kw_only=True, tag_field="type", tag="reasoning"):
    """A chat answer's reasoning, as summary text (the part every Responses client
    reads); ``encrypted_content`` carries its signature back on a later request."""

    id: str
    summary: list[SummaryText]
    encrypted_content: str | UnsetType = UNSET
    status: str


class FunctionCallItem(Struct, kw_only=True, tag_field="type", tag="function_call"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str


OutputItem = ReasoningItem | MessageItem | FunctionCallItem


class InputDetails(Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputDetails(Struct, kw_only=True):
    reasoning_tokens: int = 0


class Usage(Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputDetails
    output_tokens: int
    output_tokens_details: OutputDetails
    total_tokens: int
    cost: Raw | UnsetType = UNSET  # the gateway's, as on chat answers


class Incomplete(Struct, kw_only=True):
    reason: str


class ResponseError(Struct, kw_only=True):
    code: str
    message: str


class Response(Struct, kw_only=True):
    id: str
    object: str = "response"
    created_at: int
    status: str
    model: str
    output: list[OutputItem]
    instructions: str | None
    max_output_tokens: int | None
    metadata: Raw
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: Raw
    store: bool
    temperature: float | None
    text: Raw
    tool_choice: Raw
    tools: Raw
    top_p: float | None
    user: str | None
    error: ResponseError | None = None
    incomplete_details: Incomplete | None = None
    usage: Usage | None = None
    extra_fields: Raw | UnsetType = UNSET


class OutputOnly(Struct):
    output: Raw


class InputCount(Struct, kw_only=True):
    object: str
    input_tokens: int
