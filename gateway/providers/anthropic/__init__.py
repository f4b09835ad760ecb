"""The Anthropic Messages API dialect, both ways, as pure translators.

Outbound (an OpenAI client, an Anthropic upstream at ``POST {base}/v1/messages``):
``chat_request``, ``chat_response``, ``ChatStream``, ``error_body``.
Inbound (an Anthropic client at ``POST /anthropic/v1/messages``, any upstream through
the OpenAI pipeline): ``messages_request``, ``messages_response``, ``MessagesStream``,
``messages_error``.

OpenAI request field    -> Messages API (outbound; inbound is the reverse)
----------------------     ----------------------------------------------------------
model                      model (the routed deployment's name)
messages: system,          system (one plain string stays a string; several, or any
  developer                  with cache_control, become text blocks), from anywhere
messages: user             user turn; text part -> text block, image_url -> image block
                             (data: URL -> base64 source, http(s) -> url source), file
                             -> document block (PDF -> base64 source, text/* and JSON ->
                             text source, filename -> title; file_id -> 400)
messages: assistant        assistant turn: thinking block (reasoning + reasoning_signature,
                             only when signed), text block, tool_use per tool_call
                             (input = the parsed arguments; unparseable -> 400)
messages: tool             user turn of tool_result blocks (consecutive ones merged)
                           consecutive same-role turns are merged (roles must alternate)
max_completion_tokens,     max_tokens (required upstream: default_max_tokens when
  max_tokens                 neither is given)
stream                     stream
stop (str | list)          stop_sequences
temperature (0..2)         temperature (0..1: above 1 -> 400)
top_p                      top_p
user (or safety_identifier) metadata.user_id
tools (function)           tools: name, description, input_schema (= parameters),
                             cache_control (gateway extension) kept
tool_choice none/auto/     tool_choice none/auto/any/{type: tool, name}
  required/{function}
parallel_tool_calls=false  tool_choice.disable_parallel_tool_use = true
reasoning_effort           thinking {type: enabled, budget_tokens}: minimal 1024, low
                             2048, medium 8192, high 16384, xhigh 32768; "none" -> no
                             thinking. max_tokens <= budget -> max_tokens += budget.
                             Inbound: budget >= 16384 high, >= 8192 medium, else low;
                             output_config.effort used when thinking is not enabled.
response_format            json_schema -> output_config.format {type: json_schema,
                             schema}; text ignored; json_object refused
n > 1, logprobs,           refused: 400 unsupported_parameter
  top_logprobs, logit_bias,
  frequency_penalty/presence_penalty (nonzero), functions, function_call, audio,
  modalities other than text, prediction, web_search_options
seed, service_tier,        ignored (no equivalent, or advisory)
  stream_options, metadata (OpenAI's stored-completion tags), store,
  prompt_cache_key, prompt_cache_retention, verbosity, fallbacks, mock (gateway-only)
any other field            forwarded verbatim (e.g. Anthropic's own top_k, thinking)

Answers: text blocks -> content (null when only tool calls); thinking -> reasoning,
its signature -> ``reasoning_signature`` (the OpenAI message field that carries it back
on the next request; in streams a ``delta.reasoning_signature`` chunk);
redacted_thinking and server-tool blocks are dropped. stop_reason end_turn /
stop_sequence / pause_turn -> stop, max_tokens / model_context_window_exceeded ->
length, tool_use -> tool_calls, refusal -> content_filter (inbound: the reverse, stop ->
end_turn). Usage: prompt_tokens = input + cache reads + cache writes, completion_tokens
= output_tokens; prompt_tokens_details {cached_tokens, cached_read_tokens,
cached_write_tokens} when there is any cache traffic; completion_tokens_details
.reasoning_tokens from output_tokens_details.thinking_tokens.

Inbound only: top_k and Anthropic fields with no OpenAI equivalent (container,
mcp_servers, service_tier, ...) are dropped; a tool_result's is_error becomes an
"Error:" prefix; images in a tool_result move to a user message after the tool
messages; max_tokens -> max_completion_tokens; a document block with a base64 source ->
a file part (title -> filename), with a text source -> text parts, its context -> a text
part; url, file and content sources, citations and server tools -> 400.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.errors import UpstreamProtocolError
from gateway.providers import Endpoint
from gateway.providers.anthropic import sdk
from gateway.providers.anthropic.errors import StreamError, anthropic_type, error_body, messages_error
from gateway.providers.anthropic.inbound import messages_request, messages_response
from gateway.providers.anthropic.inbound_stream import MessagesStream
from gateway.providers.anthropic.outbound import chat_request, chat_response
from gateway.providers.anthropic.stream import ChatStream
from gateway.providers.dialect import Action, Dialect, InboundHead, Integration, ListedModel, Route, Upstream

ENDPOINTS: frozenset[Endpoint] = frozenset({"chat"})
VERSION = "2023-06-01"  # value of the anthropic-version request header
PATHS: dict[Endpoint, str] = {"chat": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}
MODELS_PATH = "/v1/models"  # same list shape as OpenAI's
# Sent by the Anthropic SDK for beta features; forwarded to every target (harmless to
# the others) unless the client forwards its own through x-bf-eh-anthropic-beta.
BETA_HEADER = "anthropic-beta"
# Sent by the Anthropic SDK on every request (it picks the answer's shape on shared paths).
VERSION_HEADER = "anthropic-version"


class _Upstream(Upstream):
    __slots__ = ()

    def urls(self, base_url: str) -> dict[Endpoint, str]:
        """Endpoint URLs for a base URL such as ``https://api.anthropic.com``."""
        return {e: base_url.rstrip("/") + p for e, p in self.paths.items()}

    def request_headers(self, *, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
        """Per-key upstream headers: Anthropic authenticates with ``x-api-key``, not a
        bearer token, and every request names the API version."""
        headers = {"Content-Type": "application/json", "anthropic-version": VERSION}
        headers.update(extra)
        if api_key:
            headers["x-api-key"] = api_key
        return headers


class _Translator:
    __slots__ = ()
    stream_error: type[UpstreamProtocolError] = StreamError

    def chat_request(self, body: bytes, *, model: str) -> bytes:
        return chat_request(body, model=model)

    def chat_response(self, data: bytes, *, model: str, created: int) -> bytes:
        return chat_response(data, created=created)  # the answer names its model

    def error_body(self, status: int, data: bytes) -> bytes:
        return error_body(status, data)

    def chat_stream(self, *, model: str, created: int) -> ChatStream:
        return ChatStream(created=created)


class _Inbound:
    __slots__ = ()
    forwarded_headers: tuple[str, ...] = (BETA_HEADER,)
    actions: Mapping[str, Action] = {}  # the body names the model and the stream

    def head(self, body: bytes, *, strict: bool) -> InboundHead:
        return sdk.head(body, strict=strict)

    def count_request(self, body: bytes, *, model: str) -> bytes:
        return messages_request(sdk.with_max_tokens(body))[0]

    def count_answer(self, tokens: int) -> bytes:
        return sdk.count_answer(tokens)

    def model_list(self, models: Sequence[ListedModel]) -> bytes:
        return sdk.model_list(models)

    def model(self, entry: ListedModel) -> bytes:
        return sdk.model(entry)

    def pending(self, *, job_id: str, model: str, job: bytes, created: int) -> bytes:
        return sdk.pending(job_id=job_id, model=model, job=job)

    def to_openai(self, body: bytes, *, model: str, stream: bool, prior: bytes | None = None) -> bytes:
        return messages_request(body)[0]  # the body names the model and the stream

    def answer(self, data: bytes, *, request: bytes) -> bytes:
        return messages_response(data)

    def stream(self, *, request: bytes) -> MessagesStream:
        return MessagesStream()

    def error(self, status: int, openai_body: bytes) -> bytes:
        return messages_error(status, openai_body)

    def error_fields(
        self, status: int, *, message: str, kind: str, param: str | None, code: str | None
    ) -> dict[str, object]:
        """``{"type": "error", "error": {"type", "message", "param", "code"}}``."""
        return {
            "type": "error",
            "error": {"type": anthropic_type(status), "message": message, "param": param, "code": code},
        }


UPSTREAM = _Upstream(paths=PATHS, models_path=MODELS_PATH)


def urls(base_url: str) -> dict[Endpoint, str]:
    """Endpoint URLs for a base URL such as ``https://api.anthropic.com``."""
    return UPSTREAM.urls(base_url)


def request_headers(*, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Per-key upstream headers (``x-api-key``, ``anthropic-version``)."""
    return UPSTREAM.request_headers(api_key=api_key, extra=extra)


DIALECT = Dialect(
    "anthropic",
    endpoints=ENDPOINTS,
    upstream=UPSTREAM,
    translator=_Translator(),
    inbound=_Inbound(),
    routes=(
        Route("POST", "/messages", "chat"),
        Route("POST", "/messages/count_tokens", "count_tokens"),
        Route("GET", "/models", "models"),
        Route("GET", "/models/{model}", "model"),
    ),
    # Its own prefix, and the frameworks' prefixes that serve every SDK's family.
    integrations=tuple(Integration(p, ("/v1",)) for p in ("/anthropic", "/langchain", "/pydanticai", "/litellm")),
    client_headers=(VERSION_HEADER,),
)

__all__ = [
    "BETA_HEADER",
    "DIALECT",
    "ENDPOINTS",
    "MODELS_PATH",
    "PATHS",
    "VERSION",
    "ChatStream",
    "MessagesStream",
    "StreamError",
    "chat_request",
    "chat_response",
    "error_body",
    "messages_error",
    "messages_request",
    "messages_response",
    "request_headers",
    "urls",
]
