"""The OpenAI chat shapes the Gemini translators read and write: the request with its
part payloads (``gateway.schemas.chat`` leaves them unread), the completion, the
stream chunk and the usage object."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType


class ImageURL(Struct, kw_only=True):
    url: str
    detail: str | UnsetType | None = UNSET


class InputAudio(Struct, kw_only=True):
    data: str
    format: str


class FileRef(Struct, kw_only=True):
    file_data: str | UnsetType | None = UNSET
    file_id: str | UnsetType | None = UNSET
    filename: str | UnsetType | None = UNSET


class ContentPart(Struct, kw_only=True):
    type: str
    text: str | UnsetType = UNSET
    image_url: ImageURL | UnsetType = UNSET
    input_audio: InputAudio | UnsetType = UNSET
    file: FileRef | UnsetType = UNSET


class FunctionCall(Struct, kw_only=True):
    name: str
    arguments: str


class ToolCall(Struct, kw_only=True):
    id: str | UnsetType = UNSET
    type: str = "function"
    function: FunctionCall


class Message(Struct, kw_only=True):
    role: str
    content: str | list[ContentPart] | UnsetType | None = UNSET
    name: str | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET
    tool_call_id: str | UnsetType | None = UNSET


class FunctionDefinition(Struct, kw_only=True):
    name: str
    description: str | UnsetType | None = UNSET
    parameters: Any = UNSET


class Tool(Struct, kw_only=True):
    type: str = "function"
    function: FunctionDefinition | UnsetType = UNSET


class NamedFunction(Struct, kw_only=True):
    name: str


class AllowedTools(Struct, kw_only=True):
    mode: str
    tools: list[Tool]


class ToolChoice(Struct, kw_only=True):
    type: str
    function: NamedFunction | UnsetType = UNSET
    allowed_tools: AllowedTools | UnsetType = UNSET


class JSONSchema(Struct, kw_only=True):
    name: str = "response"
    schema: Any = UNSET
    description: str | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class ResponseFormat(Struct, kw_only=True):
    type: str
    json_schema: JSONSchema | UnsetType = UNSET


class StreamOptions(Struct, kw_only=True):
    include_usage: bool = True


class ChatRequest(Struct, kw_only=True):
    """Every field this dialect maps or refuses; the rest is ignored (see __init__)."""

    model: str | UnsetType = UNSET
    messages: list[Message] = []
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType = UNSET
    temperature: float | UnsetType | None = UNSET
    top_p: float | UnsetType | None = UNSET
    top_k: float | UnsetType | None = UNSET  # vLLM-style extension some clients send
    n: int | UnsetType | None = UNSET
    stop: str | list[str] | UnsetType | None = UNSET
    max_tokens: int | UnsetType | None = UNSET
    max_completion_tokens: int | UnsetType | None = UNSET
    seed: int | UnsetType | None = UNSET
    presence_penalty: float | UnsetType | None = UNSET
    frequency_penalty: float | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: int | UnsetType | None = UNSET
    logit_bias: Any = UNSET
    tools: list[Tool] | UnsetType | None = UNSET
    tool_choice: str | ToolChoice | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType | None = UNSET
    reasoning_effort: str | UnsetType | None = UNSET


class PromptDetails(Struct, kw_only=True):
    cached_tokens: int | UnsetType | None = UNSET
    cached_read_tokens: int | UnsetType | None = UNSET
    cached_write_tokens: int | UnsetType | None = UNSET


class CompletionDetails(Struct, kw_only=True):
    reasoning_tokens: int | UnsetType | None = UNSET


class Usage(Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | UnsetType | None = UNSET
    prompt_tokens_details: PromptDetails | UnsetType | None = UNSET
    completion_tokens_details: CompletionDetails | UnsetType | None = UNSET


class TopLogprob(Struct, kw_only=True):
    token: str
    logprob: float


class TokenLogprob(Struct, kw_only=True):
    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = []


class Logprobs(Struct, kw_only=True):
    content: list[TokenLogprob] | None = None


class ResponseMessage(Struct, kw_only=True):
    role: str = "assistant"
    # UNSET fields are left out of what is encoded; None is written as null.
    content: str | UnsetType | None = UNSET
    reasoning: str | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET  # read from vLLM/DeepSeek-style answers
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET


class Choice(Struct, kw_only=True):
    index: int = 0
    message: ResponseMessage
    logprobs: Logprobs | UnsetType | None = UNSET
    finish_reason: str | UnsetType | None = UNSET


class ChatCompletion(Struct, kw_only=True):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = []
    usage: Usage | UnsetType | None = UNSET


# Stream chunks. ``ChunkChoice.finish_reason`` has no default, so it is always
# encoded (``null`` included) and last: the relay's fast path needs that tail.
class DeltaFunction(Struct, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str


class DeltaToolCall(Struct, kw_only=True):
    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: DeltaFunction


class Delta(Struct, kw_only=True):
    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET
    reasoning: str | UnsetType = UNSET
    tool_calls: list[DeltaToolCall] | UnsetType = UNSET


class ChunkChoice(Struct, kw_only=True):
    index: int
    delta: Delta
    logprobs: Logprobs | UnsetType = UNSET
    finish_reason: str | None


# What a stream translator reads of an OpenAI chunk (as the gateway relays it: the
# usage may carry "cost", the last chunk "extra_fields"; both are ignored).
class InFunction(Struct, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class InToolCall(Struct, kw_only=True):
    index: int = 0
    id: str | None = None
    function: InFunction | None = None


class InDelta(Struct, kw_only=True):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[InToolCall] | None = None


class InChoice(Struct, kw_only=True):
    index: int = 0
    delta: InDelta | None = None
    logprobs: Logprobs | None = None
    finish_reason: str | None = None


class InError(Struct, kw_only=True):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class InChunk(Struct, kw_only=True):
    id: str = ""
    model: str = ""
    choices: list[InChoice] = []
    usage: Usage | None = None
    error: InError | None = None


class ErrorDetail(Struct, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(Struct, kw_only=True):
    error: ErrorDetail


class InErrorBody(Struct, kw_only=True):
    error: InError


encode = msgspec.json.Encoder().encode
decode_request = msgspec.json.Decoder(ChatRequest).decode
decode_completion = msgspec.json.Decoder(ChatCompletion).decode
decode_chunk = msgspec.json.Decoder(InChunk).decode
decode_error = msgspec.json.Decoder(InErrorBody).decode
