"""The OpenAI Responses API (``POST /v1/responses``) as an SDK-side dialect: the
client's request becomes an OpenAI chat request for the pipeline, so it reaches any
provider, and the chat answer, stream and errors come back as a ``Response``, its
event stream and OpenAI error bodies. No provider is configured with this dialect.

Responses request field     -> OpenAI chat request
---------------------------    ----------------------------------------------------------
instructions                   a system message, first
input (string)                 one user message
input: message items           messages of the same role (user, assistant, system,
  (type "message" or none)       developer); input_text / output_text / refusal -> text,
                                 input_image image_url -> image_url part (file_id -> a file
                                 part: only OpenAI-dialect targets read file ids),
                                 input_file file_data + filename -> file part (file_id
                                 likewise; file_url -> 400); non-user turns: text only
input: function_call           assistant tool_calls (consecutive calls, and the assistant
                                 text just before them, make one assistant message)
input: function_call_output    a tool message (its call_id must name an earlier
                                 function_call: else 400 at input[i].call_id); an output
                                 of parts: input_text -> the tool message's text parts,
                                 input_image / input_file -> parts (as a message's) of a
                                 user message after the tool messages
input: reasoning               the next assistant message's reasoning (text of its
                                 reasoning_text content, else of its summary) and
                                 reasoning_signature (encrypted_content); dropped when
                                 no assistant item follows it, and for OpenAI-dialect
                                 targets (``codec.without_reasoning``)
input: item_reference, other   400 at input[i].type
tools (function)               tools: name, description, parameters, strict
tools (built-in: web_search,   400 at tools[i].type
  file_search, computer_use...)
tool_choice                    auto / none / required / {type: function, name};
                                 {type: allowed_tools, mode, tools}: tools filtered to
                                 the allowed ones (a name not in tools: 400 at
                                 tool_choice.tools[i]), tool_choice = mode
text.format                    text: nothing; json_object, json_schema (name, schema,
                                 strict, description) -> response_format
text.verbosity                 verbosity
reasoning.effort               reasoning_effort
max_output_tokens              max_completion_tokens
temperature, top_p, user,      the same
  parallel_tool_calls, safety_identifier, prompt_cache_key, service_tier
stream                         stream, stream_options.include_usage
previous_response_id,          400: stored responses are not available yet
  conversation, prompt, background (x-bf-async instead)
include                        message.output_text.logprobs -> logprobs (top_logprobs
                                 -> top_logprobs); the other values of OpenAI's list send
                                 nothing; another value: 400 at include[i]
truncation                     auto / disabled: not sent (auto is not done); another: 400
metadata, store, other fields  not sent upstream; metadata and store are echoed

Answers: the message's reasoning (or reasoning_content) -> a reasoning item first, its
text as one summary_text part, reasoning_signature -> encrypted_content; the message's
text -> a message item with output_text (its logprobs: the choice's logprobs.content,
bytes filled when absent; in streams on each output_text.delta too; refusal -> a
refusal part), each tool call ->
a function_call item; finish_reason length -> status
incomplete (max_output_tokens), content_filter -> incomplete (content_filter), else
completed. Usage: input_tokens = prompt_tokens (details.cached_tokens), output_tokens =
completion_tokens (details.reasoning_tokens), total_tokens, and the gateway's ``cost``;
``extra_fields`` as on chat answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from gateway.providers import openai
from gateway.providers.dialect import Action, Dialect, InboundHead, ListedModel, Route
from gateway.providers.responses import request as _request
from gateway.providers.responses.answer import from_chat, output_items, pending
from gateway.providers.responses.request import input_items, to_chat
from gateway.providers.responses.stream import ResponsesStream
from gateway.providers.responses.wire import InputCount
from gateway.schemas.response import Model, ModelList

_encode = msgspec.json.Encoder().encode


class _Inbound:
    __slots__ = ()
    forwarded_headers: tuple[str, ...] = ()
    actions: Mapping[str, Action] = {}  # the body names the model and the stream

    def head(self, body: bytes, *, strict: bool) -> InboundHead:
        return _request.head(body, strict=strict)

    def count_request(self, body: bytes, *, model: str) -> bytes:
        return to_chat(body, model=model, stream=False)

    def count_answer(self, tokens: int) -> bytes:
        return _encode(InputCount(object="response.input_tokens", input_tokens=tokens))

    # Model lists are the OpenAI routes' (this dialect serves none of its own).
    def model_list(self, models: Sequence[ListedModel]) -> bytes:
        return _encode(ModelList(data=[Model(id=m.id, owned_by=m.provider) for m in models]))

    def model(self, entry: ListedModel) -> bytes:
        return _encode(Model(id=entry.id, owned_by=entry.provider))

    def pending(self, *, job_id: str, model: str, job: bytes, created: int) -> bytes:
        return pending(job_id=job_id, model=model, job=job, created=created)

    def to_openai(self, body: bytes, *, model: str, stream: bool, prior: bytes | None = None) -> bytes:
        return to_chat(body, model=model, stream=stream, prior=prior)

    def answer(self, data: bytes, *, request: bytes) -> bytes:
        return from_chat(data, request=request)

    def stream(self, *, request: bytes) -> ResponsesStream:
        return ResponsesStream(request=request)

    def error(self, status: int, openai_body: bytes) -> bytes:
        return openai_body

    def error_fields(
        self, status: int, *, message: str, kind: str, param: str | None, code: str | None
    ) -> dict[str, object]:
        """OpenAI's own error body."""
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}


DIALECT = Dialect(
    "responses",
    endpoints=frozenset(),  # no provider speaks it: requests go on as OpenAI chat
    inbound=_Inbound(),
    routes=(
        Route("POST", "/responses", "chat"),
        Route("POST", "/responses/input_tokens", "count_tokens"),
    ),
    # Every root an OpenAI SDK's base URL may point at.
    integrations=openai.DIALECT.integrations,
    request_types={
        ("chat", False): "responses",
        ("chat", True): "responses_stream",
        ("count_tokens", False): "responses_input_tokens",
    },
)

__all__ = ["DIALECT", "ResponsesStream", "from_chat", "input_items", "output_items", "to_chat"]
