"""The pipeline's chat.completion -> a ``Response``; the parts a stream shares with it
(the request's echo, usage, status) and the pending Response of an async job."""

from __future__ import annotations

import os

import msgspec
from msgspec import UNSET, Raw, UnsetType

from gateway.errors import UpstreamProtocolError
from gateway.providers.responses.wire import (
    ChatLogprobs,
    ChatMessage,
    ChatUsage,
    Completion,
    Echo,
    FunctionCallItem,
    Incomplete,
    InputDetails,
    MessageItem,
    OutputDetails,
    OutputItem,
    OutputOnly,
    OutputText,
    ReasoningItem,
    Refusal,
    Response,
    ResponseError,
    SummaryText,
    TokenLogprob,
    Usage,
)

_encode = msgspec.json.Encoder().encode
_echo = msgspec.json.Decoder(Echo)
_completion = msgspec.json.Decoder(Completion)
_output = msgspec.json.Decoder(OutputOnly)

_NULL = Raw(b"null")
_EMPTY_OBJECT = Raw(b"{}")
_EMPTY_LIST = Raw(b"[]")
_AUTO = Raw(b'"auto"')
_TEXT = Raw(b'{"format":{"type":"text"}}')
# finish_reason -> why a Response is incomplete (any other: completed).
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """A Response or item id: the prefix OpenAI uses, then 24 random bytes in hex."""
    return prefix + os.urandom(24).hex()


def echo(request: bytes) -> Echo:
    """The request's echoed fields (the request was validated when it was translated)."""
    try:
        return _echo.decode(request)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return Echo()


def _raw(value: Raw | UnsetType, default: Raw) -> Raw:
    return default if value is UNSET or bytes(value) == b"null" else value


def response(
    e: Echo,
    *,
    id: str,
    created: int,
    status: str,
    output: list[OutputItem],
    usage: Usage | None = None,
    extra: Raw | UnsetType = UNSET,
    error: ResponseError | None = None,
    incomplete: str | None = None,
    model: str | None = None,
) -> Response:
    return Response(
        id=id,
        created_at=created,
        status=status,
        model=model if model is not None else e.model,
        output=output,
        instructions=e.instructions,
        max_output_tokens=e.max_output_tokens,
        metadata=_raw(e.metadata, _EMPTY_OBJECT),
        parallel_tool_calls=e.parallel_tool_calls is not False,
        previous_response_id=e.previous_response_id,
        reasoning=_raw(e.reasoning, _NULL),
        store=e.store is not False,  # OpenAI's default
        temperature=e.temperature,
        text=_raw(e.text, _TEXT),
        tool_choice=_raw(e.tool_choice, _AUTO),
        tools=_raw(e.tools, _EMPTY_LIST),
        top_p=e.top_p,
        user=e.user,
        error=error,
        incomplete_details=Incomplete(reason=incomplete) if incomplete else None,
        usage=usage,
        extra_fields=extra,
    )


def usage(chat: ChatUsage | None) -> Usage | None:
    if chat is None:
        return None
    prompt, details = chat.prompt_tokens_details, chat.completion_tokens_details
    total = chat.total_tokens if chat.total_tokens is not None else chat.prompt_tokens + chat.completion_tokens
    return Usage(
        input_tokens=chat.prompt_tokens,
        input_tokens_details=InputDetails(
            cached_tokens=(prompt.cached_tokens or 0) if prompt else 0,
            cache_write_tokens=(prompt.cached_write_tokens or 0) if prompt else 0,
        ),
        output_tokens=chat.completion_tokens,
        output_tokens_details=OutputDetails(reasoning_tokens=(details.reasoning_tokens or 0) if details else 0),
        total_tokens=total,
        cost=chat.cost,
    )


def status(finish_reason: str | None) -> tuple[str, str | None]:
    """(the Response's status, why it is incomplete)."""
    reason = INCOMPLETE.get(finish_reason or "")
    return ("incomplete", reason) if reason else ("completed", None)


def logprobs(chat: ChatLogprobs | None) -> list[TokenLogprob]:
    """A chat choice's ``logprobs.content`` as the Responses API's logprobs: the same
    entries, ``bytes`` filled where the provider sent none (a list is required there)."""
    if chat is None or not chat.content:
        return []
    for lp in chat.content:
        if lp.bytes is None:
            lp.bytes = list(lp.token.encode())
        for top in lp.top_logprobs:
            if top.bytes is None:
                top.bytes = list(top.token.encode())
    return chat.content


def _message(msg: ChatMessage, item_status: str, chat_logprobs: ChatLogprobs | None) -> MessageItem | None:
    content = msg.content
    parts: list[OutputText | Refusal] = []
    if isinstance(content, list):
        text = "".join(p.text for p in content if isinstance(p.text, str))
        refusal = "".join(p.refusal for p in content if isinstance(p.refusal, str)) or msg.refusal
    else:
        text, refusal = content or "", msg.refusal
    if text:
        parts.append(OutputText(text=text, logprobs=logprobs(chat_logprobs)))
    if refusal:
        parts.append(Refusal(refusal=refusal))
    if not parts:
        return None
    return MessageItem(id=new_id("msg_"), status=item_status, content=parts)


def reasoning_item(*, id: str, text: str, signature: str | None, item_status: str) -> ReasoningItem:
    """The chat form's reasoning as one summary part, whatever ``reasoning.summary``
    asked: it is all the model's reasoning the gateway has."""
    return ReasoningItem(
        id=id,
        summary=[SummaryText(text=text)] if text else [],
        encrypted_content=signature or UNSET,
        status=item_status,
    )


def from_chat(data: bytes, *, request: bytes) -> bytes:
    """The pipeline's chat.completion -> a Response; ``request``: the client's body."""
    try:
        done = _completion.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"upstream sent an OpenAI chat.completion that is not valid: {e}") from None
    choice = done.choices[0] if done.choices else None
    msg = choice.message if choice is not None else UNSET
    if choice is None or msg is UNSET:
        raise UpstreamProtocolError("OpenAI chat.completion has no choices[0].message")
    state, reason = status(choice.finish_reason)
    output: list[OutputItem] = []
    text = _message(msg, "incomplete" if reason else "completed", choice.logprobs)
    thought = msg.reasoning or msg.reasoning_content
    if thought or msg.reasoning_signature:
        # Cut short while still reasoning (nothing after it): the reasoning is what was cut.
        cut = reason is not None and text is None and not msg.tool_calls
        item_status = "incomplete" if cut else "completed"
        output.append(
            reasoning_item(
                id=new_id("rs_"), text=thought or "", signature=msg.reasoning_signature, item_status=item_status
            )
        )
    if text is not None:
        output.append(text)
    for k, call in enumerate(msg.tool_calls or ()):
        fn = call.function
        if fn is None or not isinstance(fn.name, str):
            raise UpstreamProtocolError(f"OpenAI chat.completion tool_calls[{k}] has no function name")
        output.append(
            FunctionCallItem(
                id=new_id("fc_"),
                call_id=call.id or new_id("call_"),
                name=fn.name,
                arguments=fn.arguments or "{}",
                status="completed",
            )
        )
    out = response(
        echo(request),
        id=new_id("resp_"),
        created=done.created,
        status=state,
        output=output,
        usage=usage(done.usage),
        extra=done.extra_fields,
        incomplete=reason,
    )
    return _encode(out)


def output_items(response_body: bytes) -> bytes:
    """A finished Response's output items as a JSON array, as a store keeps them: the
    next request's ``prior`` is the earlier inputs and these, in order."""
    return bytes(_output.decode(response_body).output)


def pending(*, job_id: str, model: str, job: bytes, created: int) -> bytes:
    """An unfinished async job as a queued Response, which the SDK parses; ``created``:
    when it was submitted (Unix seconds)."""
    out = response(
        Echo(model=model), id=job_id, created=created, status="queued", output=[], extra=Raw(b'{"async_job":%s}' % job)
    )
    return _encode(out)
