"""The wire objects of both dialects as this translator reads and writes them.

Read side: every field optional, so a missing one is reported by the translator with
the param a client can act on, not as msgspec's generic message. Write side: tagged
Structs whose field order is the wire order. JSON values the translators never look
into (schemas, tool inputs, cache_control) stay ``Raw`` and are copied verbatim.
"""

from __future__ import annotations

from msgspec import UNSET, Raw, Struct, UnsetType

# --- Anthropic, read side (requests from Anthropic clients, responses and events) -----


class Source(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    media_type: str | UnsetType = UNSET
    data: str | UnsetType = UNSET
    url: str | UnsetType = UNSET


class Citations(Struct, kw_only=True):
    """A document block's ``citations`` request (decoded apart: an answer's text blocks
    carry a list of citations under the same name)."""

    enabled: bool | UnsetType | None = UNSET


class Block(Struct, kw_only=True):
    """Any content block; which fields matter depends on ``type``."""

    type: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    source: Source | UnsetType = UNSET
    title: str | UnsetType | None = UNSET  # document
    context: str | UnsetType | None = UNSET  # document
    citations: Raw | UnsetType = UNSET  # Citations on a document, a list on answer text
    id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    input: Raw | UnsetType = UNSET
    tool_use_id: str | UnsetType = UNSET
    content: str | list[Block] | UnsetType = UNSET
    is_error: bool | UnsetType | None = UNSET
    thinking: str | UnsetType = UNSET
    signature: str | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class OutputTokensDetails(Struct, kw_only=True):
    thinking_tokens: int | None = None


class Usage(Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class Message(Struct, kw_only=True):
    """A Messages API ``message`` object (a unary answer, or message_start's)."""

    id: str
    model: str
    content: list[Block] = []
    stop_reason: str | None = None
    usage: Usage | None = None


class EventDelta(Struct, kw_only=True):
    """content_block_delta's and message_delta's ``delta``, in one shape."""

    type: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    partial_json: str | UnsetType = UNSET
    thinking: str | UnsetType = UNSET
    signature: str | UnsetType = UNSET
    stop_reason: str | None = None


class ErrorObject(Struct, kw_only=True):
    type: str = "api_error"
    message: str = ""


class Event(Struct, kw_only=True):
    """Any stream event: one decode per frame, whatever its type."""

    type: str
    message: Message | UnsetType = UNSET
    index: int = 0
    content_block: Block | UnsetType = UNSET
    delta: EventDelta | UnsetType = UNSET
    usage: Usage | UnsetType = UNSET
    error: ErrorObject | UnsetType = UNSET


class ErrorResponse(Struct, kw_only=True):
    error: ErrorObject


class NamedTool(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolDef(Struct, kw_only=True):
    type: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    input_schema: Raw | UnsetType = UNSET


class ThinkingConfig(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    budget_tokens: int | UnsetType = UNSET


class OutputFormat(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    schema: Raw | UnsetType = UNSET


class OutputConfig(Struct, kw_only=True):
    effort: str | UnsetType | None = UNSET
    format: OutputFormat | UnsetType | None = UNSET


class Metadata(Struct, kw_only=True):
    user_id: str | UnsetType | None = UNSET


class MessageParam(Struct, kw_only=True):
    role: str | UnsetType = UNSET
    content: str | list[Block] | UnsetType = UNSET


class MessagesRequest(Struct, kw_only=True):
    model: str | UnsetType = UNSET
    max_tokens: int | UnsetType = UNSET
    messages: list[MessageParam] | UnsetType = UNSET
    system: str | list[Block] | UnsetType = UNSET
    stream: bool | UnsetType | None = UNSET
    stop_sequences: list[str] | UnsetType | None = UNSET
    temperature: float | UnsetType | None = UNSET
    top_p: float | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET
    tools: list[ToolDef] | UnsetType | None = UNSET
    tool_choice: NamedTool | UnsetType | None = UNSET
    thinking: ThinkingConfig | UnsetType | None = UNSET
    output_config: OutputConfig | UnsetType | None = UNSET


# --- Anthropic, write side (requests to an Anthropic upstream, answers to clients) -----


class Base64Source(Struct, kw_only=True, tag_field="type", tag="base64"):
    media_type: str
    data: str


class URLSource(Struct, kw_only=True, tag_field="type", tag="url"):
    url: str


class TextSource(Struct, kw_only=True, tag_field="type", tag="text"):
    media_type: str
    data: str


class TextOut(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="text"):
    text: str
    cache_control: Raw | UnsetType = UNSET


class ImageOut(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="image"):
    source: Base64Source | URLSource
    cache_control: Raw | UnsetType = UNSET


class DocumentOut(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="document"):
    source: Base64Source | TextSource
    title: str | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class ThinkingOut(Struct, kw_only=True, tag_field="type", tag="thinking"):
    thinking: str
    signature: str


class ToolUseOut(Struct, kw_only=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: Raw


class ToolResultOut(Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | list[TextOut | ImageOut | DocumentOut]
    cache_control: Raw | UnsetType = UNSET


BlockOut = TextOut | ImageOut | DocumentOut | ThinkingOut | ToolUseOut | ToolResultOut


class MessageOut(Struct, kw_only=True):
    role: str
    content: str | list[BlockOut]


class ToolOut(Struct, kw_only=True, omit_defaults=True):
    name: str
    description: str | UnsetType = UNSET
    input_schema: Raw
    cache_control: Raw | UnsetType = UNSET


class ToolChoiceOut(Struct, kw_only=True, omit_defaults=True):
    type: str
    name: str | UnsetType = UNSET
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ThinkingEnabled(Struct, kw_only=True, tag_field="type", tag="enabled"):
    budget_tokens: int


class MetadataOut(Struct, kw_only=True):
    user_id: str


class JSONSchemaFormat(Struct, kw_only=True, tag_field="type", tag="json_schema"):
    schema: Raw


class OutputConfigOut(Struct, kw_only=True):
    format: JSONSchemaFormat


class UsageOut(Struct, kw_only=True, omit_defaults=True):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens_details: Raw | UnsetType = UNSET


class MessageAnswer(Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    role: str
    model: str
    content: list[BlockOut]
    stop_reason: str | None
    stop_sequence: None
    usage: UsageOut


class ErrorOut(Struct, kw_only=True):
    type: str
    message: str


class ErrorAnswer(Struct, kw_only=True, tag_field="type", tag="error"):
    error: ErrorOut


# --- OpenAI, read side (requests from OpenAI clients, answers from the pipeline) -------


class ImageURL(Struct, kw_only=True):
    url: str | UnsetType = UNSET


class FileRef(Struct, kw_only=True):
    file_data: str | UnsetType | None = UNSET
    file_id: str | UnsetType | None = UNSET
    filename: str | UnsetType | None = UNSET


class ChatPart(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    refusal: str | UnsetType = UNSET
    image_url: ImageURL | UnsetType = UNSET
    file: FileRef | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class FunctionCall(Struct, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType | None = UNSET


class ToolCall(Struct, kw_only=True):
    index: int | UnsetType = UNSET
    id: str | UnsetType | None = UNSET
    type: str | UnsetType | None = UNSET
    function: FunctionCall | UnsetType | None = UNSET


class ChatMessage(Struct, kw_only=True):
    role: str = "assistant"
    content: str | list[ChatPart] | UnsetType | None = UNSET
    tool_call_id: str | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    reasoning: str | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET  # vLLM, DeepSeek
    reasoning_signature: str | UnsetType | None = UNSET


class FunctionDef(Struct, kw_only=True):
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    parameters: Raw | UnsetType = UNSET


class ChatTool(Struct, kw_only=True):
    type: str = "function"
    function: FunctionDef | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class ChatToolChoice(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    function: FunctionDef | UnsetType = UNSET


class JSONSchema(Struct, kw_only=True):
    name: str | UnsetType = UNSET
    schema: Raw | UnsetType = UNSET


class ResponseFormat(Struct, kw_only=True):
    type: str | UnsetType = UNSET
    json_schema: JSONSchema | UnsetType = UNSET


class ChatRequest(Struct, kw_only=True):
    """The OpenAI fields this translator maps or refuses; ``codec.decode_chat`` has
    already checked their types and ranges."""

    messages: list[ChatMessage] = []
    stream: bool | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    tools: list[ChatTool] | None = None
    tool_choice: str | ChatToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    functions: Raw | UnsetType = UNSET
    function_call: Raw | UnsetType = UNSET
    audio: Raw | UnsetType = UNSET
    modalities: list[str] | None = None
    prediction: Raw | UnsetType = UNSET
    web_search_options: Raw | UnsetType = UNSET


class PromptDetails(Struct, kw_only=True):
    cached_tokens: int | None = None
    cached_read_tokens: int | None = None
    cached_write_tokens: int | None = None


class CompletionDetails(Struct, kw_only=True):
    reasoning_tokens: int | None = None


class ChatUsage(Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None


class Choice(Struct, kw_only=True):
    index: int = 0
    message: ChatMessage | UnsetType = UNSET
    delta: ChatMessage | UnsetType = UNSET
    finish_reason: str | None = None


class ChatError(Struct, kw_only=True):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class Completion(Struct, kw_only=True):
    """A chat.completion, a chat.completion.chunk, or an in-band error frame."""

    id: str = ""
    model: str = ""
    choices: list[Choice] = []
    usage: ChatUsage | None = None
    error: ChatError | UnsetType | None = UNSET


# --- OpenAI, write side -----------------------------------------------------------------


class FunctionOut(Struct, kw_only=True, omit_defaults=True):
    name: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    parameters: Raw | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallOut(Struct, kw_only=True):
    id: str
    type: str
    function: FunctionOut


class ChatMessageOut(Struct, kw_only=True, omit_defaults=True):
    role: str
    content: str | list[Raw] | None
    tool_calls: list[ToolCallOut] | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET
    reasoning: str | UnsetType = UNSET
    reasoning_signature: str | UnsetType = UNSET


class PromptDetailsOut(Struct, kw_only=True):
    cached_tokens: int
    cached_read_tokens: int
    cached_write_tokens: int


class CompletionDetailsOut(Struct, kw_only=True):
    reasoning_tokens: int


class ChatUsageOut(Struct, kw_only=True, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptDetailsOut | UnsetType = UNSET
    completion_tokens_details: CompletionDetailsOut | UnsetType = UNSET


class ChoiceOut(Struct, kw_only=True):
    index: int
    message: ChatMessageOut
    finish_reason: str


class CompletionOut(Struct, kw_only=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: ChatUsageOut


class ChatErrorOut(Struct, kw_only=True, omit_defaults=False):
    message: str
    type: str
    param: None
    code: str | None


class ChatErrorBody(Struct, kw_only=True):
    error: ChatErrorOut
