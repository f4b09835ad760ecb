"""Google Gemini ``generateContent`` as pure translators, both directions.

Outbound (an OpenAI client, a Gemini upstream): ``chat_request`` builds the body for
``POST {base}/v1beta/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``
when the client asked for a stream), sent with ``x-goog-api-key``; ``chat_response``,
``ChatStream`` and ``error_body`` turn the answers back into OpenAI's.

Inbound (a google-genai client, any provider): ``generate_request`` turns its request
into an OpenAI chat request; ``generate_response``, ``GenerateStream`` and
``generate_error`` turn the OpenAI answers into Gemini's. Snake_case field names, which
proto JSON (and the SDK, for some nested fields) uses, are accepted like camelCase.

Request mapping (OpenAI field -> Gemini):

=========================================  ==============================================
messages system / developer                systemInstruction.parts[].text
messages user / assistant                  contents[] role user / model (same roles merged)
content text part / string                 {text}
image_url data: URL                        {inlineData: {mimeType, data}}
image_url http(s) URL                      {fileData: {mimeType (from the extension, else
                                           image/jpeg), fileUri}}
input_audio {data, format}                 {inlineData: {mimeType: audio/<format>, data}}
file {file_data: data: URL, or base64     {inlineData: {mimeType, data}}; file_id: refused
  typed by the filename's extension}
assistant tool_calls[]                     {functionCall: {id, name, args}} (+ thoughtSignature)
tool message (tool_call_id)                {functionResponse: {id, name, response}} in a user
                                           turn; name looked up from the earlier call; a JSON
                                           object content is the response, else {content}
assistant reasoning                        not replayed (Gemini reads signatures, not text)
tools[].function                           tools[0].functionDeclarations[] {name, description,
                                           parametersJsonSchema}; non-function tools: refused
tool_choice none / auto / required         toolConfig.functionCallingConfig.mode NONE/AUTO/ANY
tool_choice {function: {name}}             mode ANY + allowedFunctionNames [name]
tool_choice allowed_tools required / auto  mode ANY / VALIDATED + allowedFunctionNames
temperature, top_p, top_k                  generationConfig temperature, topP, topK
max_completion_tokens | max_tokens         generationConfig.maxOutputTokens
stop (string or list)                      generationConfig.stopSequences
n                                          generationConfig.candidateCount
seed, presence_penalty, frequency_penalty  generationConfig seed, presencePenalty, frequencyPenalty
response_format json_object                responseMimeType application/json
response_format json_schema                responseMimeType application/json + responseJsonSchema
logprobs, top_logprobs                     responseLogprobs, logprobs
reasoning_effort                           thinkingConfig.thinkingBudget none 0, minimal 512,
                                           low 1024, medium 8192, high 24576, xhigh 32768;
                                           includeThoughts true unless none
logit_bias                                 refused (unsupported_parameter)
user, service_tier, stream_options,        ignored (no Gemini equivalent)
parallel_tool_calls, metadata, store
stream                                     the URL (:streamGenerateContent?alt=sse), not the body
model                                      the URL, not the body
fallbacks, mock (gateway-only)             ignored
=========================================  ==============================================

Inbound requests map the same table backwards. Besides: ``topK`` and
``safetySettings`` are ignored; ``cachedContent``, tools other than
functionDeclarations, non-TEXT ``responseModalities``, ``speechConfig``, a
``responseMimeType`` other than text/plain or application/json, and code execution
parts are refused; thought parts a client replays are dropped; inline data other
than images and audio becomes a file part (``filename`` from its type), URL-safe
base64 made standard; ``thinkingLevel`` maps to the effort of the same name,
``thinkingBudget`` to the nearest effort above (0: none, -1: left to the model); the
older OpenAPI ``parameters`` / ``responseSchema`` is converted to JSON Schema.

Response mapping: text parts -> content, ``thought: true`` parts -> reasoning,
functionCall -> tool_calls (arguments = the args JSON); finishReason STOP -> stop
(tool_calls when the candidate called functions), MAX_TOKENS -> length, SAFETY,
RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII -> content_filter, others -> stop; a
prompt blocked (promptFeedback.blockReason, no candidates) -> content_filter with
empty content; candidates[i] -> choices[index]; logprobsResult <-> logprobs.content.
Usage: prompt_tokens = promptTokenCount (which includes the cached tokens) +
toolUsePromptTokenCount; completion_tokens = candidatesTokenCount +
thoughtsTokenCount; reasoning_tokens = thoughtsTokenCount; cached_tokens =
cached_read_tokens = cachedContentTokenCount (Gemini reports no cache writes).

Tool call ids and thought signatures: Gemini's ``functionCall.id`` is used when it
sends one, else ``call_<8 hex of the responseId>_<n>`` (n counts the response's calls;
unique across turns, stable for one response). A part's ``thoughtSignature`` is
appended to the id as ``<id>|ts:<signature>``; ``chat_request`` splits it off and sends
it back on the functionCall part (and the bare id as functionCall/functionResponse
``id``). For a request whose model names Gemini 3+, a model turn whose calls carry no
signature (history from another model) gets Google's documented placeholder
``skip_thought_signature_validator`` on its first call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

import msgspec

from gateway.errors import UpstreamProtocolError
from gateway.providers import Endpoint
from gateway.providers.dialect import Action, Dialect, InboundHead, Integration, ListedModel, Route, Upstream
from gateway.providers.gemini import embed, sdk
from gateway.providers.gemini.convert import rpc_status
from gateway.providers.gemini.inbound import generate_error, generate_request, generate_response
from gateway.providers.gemini.inbound_stream import GenerateStream
from gateway.providers.gemini.outbound import chat_request, chat_response, error_body
from gateway.providers.gemini.stream import ChatStream, StreamError

ENDPOINTS: frozenset[Endpoint] = frozenset({"chat", "embeddings"})
MODELS_PATH = "/v1beta/models"
# The URL's action after the model -> the kind of call and whether it streams.
ACTIONS = sdk.ACTIONS
# Sent by the google-genai SDK (its key header, and its client id on every request):
# either picks the answer's shape on shared paths.
CLIENT_HEADERS = ("x-goog-api-key", "x-goog-api-client")


class _Model(msgspec.Struct):
    name: str


class _Listing(msgspec.Struct):
    """Gemini's model list: ``{"models": [{"name": "models/gemini-..."}]}``."""

    models: list[_Model] = []


_listing = msgspec.json.Decoder(_Listing).decode


def url(base_url: str, *, model: str, stream: bool, endpoint: Endpoint = "chat") -> str:
    """The model is in the path; streams ask for SSE (``alt=sse``), not a JSON array.
    The router lets only plain names through (``routing.table.check_url_model``); the
    model is percent-encoded all the same, so no name can leave its path segment."""
    if endpoint == "count_tokens":
        action = "countTokens"
    elif endpoint == "embeddings":  # every embeddings request goes as a batch (gemini.embed)
        action = "batchEmbedContents"
    else:
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base_url}{MODELS_PATH}/{quote(model, safe='')}:{action}"


def request_headers(*, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Per-key upstream headers: Gemini authenticates with ``x-goog-api-key``."""
    headers = {"Content-Type": "application/json", **extra}
    if api_key:
        headers["x-goog-api-key"] = api_key
    return headers


class _Upstream(Upstream):
    __slots__ = ()

    def urls(self, base_url: str) -> dict[Endpoint, str]:
        return {}  # every URL names its model: ``url``, per request

    def url(self, base_url: str, endpoint: Endpoint, *, model: str, stream: bool) -> str:
        return url(base_url, model=model, stream=stream, endpoint=endpoint)

    def request_headers(self, *, api_key: str | None, extra: dict[str, str]) -> dict[str, str]:
        return request_headers(api_key=api_key, extra=extra)

    def model_list(self, data: bytes) -> list[str]:
        return [m.name.removeprefix("models/") for m in _listing(data).models]

    def model_path(self, rest: str) -> tuple[str, Action] | None:
        model, _, name = rest.rpartition(":")
        action = ACTIONS.get(name)
        return None if action is None or not model else (model, action)


class _Translator:
    __slots__ = ()
    stream_error: type[UpstreamProtocolError] = StreamError

    def chat_request(self, body: bytes, *, model: str) -> bytes:
        return chat_request(body)  # the model goes into the URL

    def chat_response(self, data: bytes, *, model: str, created: int) -> bytes:
        return chat_response(data, model=model, created=created)

    def error_body(self, status: int, data: bytes) -> bytes:
        return error_body(status, data)

    def chat_stream(self, *, model: str, created: int) -> ChatStream:
        return ChatStream(model=model, created=created)


class _Embedder:
    __slots__ = ()

    def request(self, body: bytes, *, model: str) -> bytes:
        return embed.embeddings_request(body, model=model)

    def response(self, data: bytes, *, model: str, base64: bool) -> bytes:
        return embed.embeddings_response(data, model=model, base64=base64)

    def client_request(self, body: bytes, *, model: str, single: bool) -> bytes:
        return embed.client_request(body, model=model, single=single)

    def native_request(self, body: bytes, *, model: str, single: bool) -> bytes:
        return embed.native_request(body, model=model, single=single)

    def client_answer(self, data: bytes, *, single: bool) -> bytes:
        return embed.client_answer(data, single=single)

    def native_answer(self, data: bytes, *, single: bool) -> bytes:
        return embed.native_answer(data, single=single)


class _Inbound:
    __slots__ = ()
    forwarded_headers: tuple[str, ...] = ()
    actions: Mapping[str, Action] = ACTIONS

    def head(self, body: bytes, *, strict: bool) -> InboundHead:
        return sdk.head(body, strict=strict)

    def count_request(self, body: bytes, *, model: str) -> bytes:
        return generate_request(sdk.count_body(body), model=model, stream=False)

    def count_answer(self, tokens: int) -> bytes:
        return sdk.count_answer(tokens)

    def model_list(self, models: Sequence[ListedModel]) -> bytes:
        return sdk.model_list(models)

    def model(self, entry: ListedModel) -> bytes:
        return sdk.model(entry)

    def pending(self, *, job_id: str, model: str, job: bytes, created: int) -> bytes:
        return sdk.pending(job_id=job_id, model=model, job=job)

    def to_openai(self, body: bytes, *, model: str, stream: bool, prior: bytes | None = None) -> bytes:
        return generate_request(body, model=model, stream=stream)

    def answer(self, data: bytes, *, request: bytes) -> bytes:
        return generate_response(data)

    def stream(self, *, request: bytes) -> GenerateStream:
        return GenerateStream()

    def error(self, status: int, openai_body: bytes) -> bytes:
        return generate_error(status, openai_body)

    def error_fields(
        self, status: int, *, message: str, kind: str, param: str | None, code: str | None
    ) -> dict[str, object]:
        """``{"error": {"code": <HTTP status>, "message", "status", "type", "param"}}``."""
        return {
            "error": {"code": status, "message": message, "status": rpc_status(status), "type": kind, "param": param}
        }


DIALECT = Dialect(
    "gemini",
    endpoints=ENDPOINTS,
    upstream=_Upstream(paths={}, models_path=MODELS_PATH, url_names_model=True),
    translator=_Translator(),
    inbound=_Inbound(),
    routes=(
        *(Route("POST", "/models/{model}:" + name, action.kind) for name, action in ACTIONS.items()),
        Route("GET", "/models", "models"),
        Route("GET", "/models/{model}", "model"),
    ),
    # Its own prefix, and the frameworks' prefixes that serve every SDK's family.
    integrations=tuple(Integration(p, ("/v1beta", "/v1")) for p in ("/genai", "/langchain", "/pydanticai", "/litellm")),
    client_headers=CLIENT_HEADERS,
    embedder=_Embedder(),
)

__all__ = [
    "ACTIONS",
    "DIALECT",
    "ENDPOINTS",
    "MODELS_PATH",
    "ChatStream",
    "GenerateStream",
    "StreamError",
    "chat_request",
    "chat_response",
    "error_body",
    "generate_error",
    "generate_request",
    "generate_response",
    "request_headers",
    "url",
]
