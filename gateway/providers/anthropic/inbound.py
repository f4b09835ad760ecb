"""An Anthropic client's Messages request -> an OpenAI chat request for the pipeline,
and the pipeline's chat.completion -> an Anthropic ``message``."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, Raw, UnsetType

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import document
from gateway.providers.anthropic import usage as _usage
from gateway.providers.anthropic.errors import decode_request, decode_upstream
from gateway.providers.anthropic.schema import (
    Block,
    BlockOut,
    ChatMessageOut,
    Citations,
    Completion,
    FunctionOut,
    MessageAnswer,
    MessageParam,
    MessagesRequest,
    Source,
    TextOut,
    ThinkingConfig,
    ThinkingOut,
    ToolCallOut,
    ToolDef,
    ToolUseOut,
)

_encode = msgspec.json.Encoder().encode
_messages_request = msgspec.json.Decoder(MessagesRequest)
_completion = msgspec.json.Decoder(Completion)
_object = msgspec.json.Decoder(dict[str, Raw]).decode
_citations = msgspec.json.Decoder(Citations | None).decode

# thinking.budget_tokens -> reasoning_effort: the inverse of outbound's budgets, rounded
# down, so OpenAI's low/medium/high survive a round trip.
EFFORT_FLOORS: tuple[tuple[int, str], ...] = ((16384, "high"), (8192, "medium"), (0, "low"))
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
# OpenAI's "stop" takes at most this many sequences (codec.decode_chat checks it).
MAX_STOP = 4


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


def _need(value: str | UnsetType, param: str) -> str:
    if value is UNSET:
        raise _bad(param, "Field required")
    return value


def _image_url(source: Source | UnsetType, param: str) -> dict[str, object]:
    if source is UNSET:
        raise _bad(f"{param}.source", "Field required")
    if source.type == "base64":
        media = _need(source.media_type, f"{param}.source.media_type")
        url = f"data:{media};base64,{_need(source.data, f'{param}.source.data')}"
    elif source.type == "url":
        url = _need(source.url, f"{param}.source.url")
    else:
        raise _bad(f"{param}.source.type", f"image source type {source.type!r} is not supported; use base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: Block, param: str) -> list[dict[str, object]]:
    """A document block -> OpenAI parts: a base64 source is a file part (its title the
    filename), a text source a text part; a title of a text document and the
    ``context`` (text for the model, no OpenAI field holds it) come as text parts
    around it. A URL or a file id names something only Anthropic fetches: a 400."""
    source = block.source
    if source is UNSET:
        raise _bad(f"{param}.source", "Field required")
    if block.citations is not UNSET:
        try:
            asked = _citations(block.citations)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise _bad(f"{param}.citations", 'must be an object such as {"enabled": true}') from None
        if asked is not None and asked.enabled:
            raise _bad(f"{param}.citations", "citations are only answered by an Anthropic provider")
    title = block.title or None
    parts: list[dict[str, object]] = []
    if source.type == "base64":
        media = _need(source.media_type, f"{param}.source.media_type")
        url = document.data_url(media, _need(source.data, f"{param}.source.data"))
        parts.append({"type": "file", "file": {"file_data": url, "filename": document.file_name(media, title)}})
    elif source.type == "text":
        text = _need(source.data, f"{param}.source.data")
        parts.extend({"type": "text", "text": t} for t in (title, text) if t)
    else:
        raise _bad(
            f"{param}.source.type",
            f"document source type {source.type!r} can only be read by an Anthropic provider; "
            "send the document as a base64 or text source",
        )
    if block.context:
        parts.append({"type": "text", "text": block.context})
    return parts


def _user_parts(block: Block, param: str) -> list[dict[str, object]]:
    if block.type == "text":
        return [{"type": "text", "text": _need(block.text, f"{param}.text")}]
    if block.type == "image":
        return [_image_url(block.source, param)]
    if block.type == "document":
        return _document(block, param)
    raise _bad(f"{param}.type", f"content block type {block.type!r} is not supported here")


def _tool_message(block: Block, param: str, images: list[dict[str, object]]) -> dict[str, object]:
    """A tool_result -> an OpenAI tool message. OpenAI tool messages hold text only: an
    image or a file in the result goes to the user message that follows."""
    call_id = _need(block.tool_use_id, f"{param}.tool_use_id")
    content = block.content
    text: str | list[dict[str, object]]
    if content is UNSET:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = []
        for k, inner in enumerate(content):
            for part in _user_parts(inner, f"{param}.content[{k}]"):
                (text if part["type"] == "text" else images).append(part)
    if block.is_error:
        # OpenAI has no error flag on a tool result; say it in the text.
        text = "Error: " + text if isinstance(text, str) else [{"type": "text", "text": "Error:"}, *text]
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _user(msg: MessageParam, param: str, out: list[object]) -> None:
    if isinstance(msg.content, str):
        out.append({"role": "user", "content": msg.content})
        return
    parts: list[dict[str, object]] = []
    for j, block in enumerate(msg.content or ()):
        where = f"{param}.content[{j}]"
        if block.type == "tool_result":
            out.append(_tool_message(block, where, parts))
        else:
            parts.extend(_user_parts(block, where))
    if parts:
        out.append({"role": "user", "content": parts})


def _assistant(msg: MessageParam, param: str) -> ChatMessageOut:
    if isinstance(msg.content, str):
        return ChatMessageOut(role="assistant", content=msg.content)
    texts: list[str] = []
    calls: list[ToolCallOut] = []
    out = ChatMessageOut(role="assistant", content=None)
    for j, block in enumerate(msg.content or ()):
        where = f"{param}.content[{j}]"
        if block.type == "text":
            texts.append(_need(block.text, f"{where}.text"))
        elif block.type == "tool_use":
            args = bytes(block.input) if block.input is not UNSET else b"{}"
            fn = FunctionOut(name=_need(block.name, f"{where}.name"), arguments=args.decode())
            calls.append(ToolCallOut(id=_need(block.id, f"{where}.id"), type="function", function=fn))
        elif block.type == "thinking":
            out.reasoning = (out.reasoning or "") + _need(block.thinking, f"{where}.thinking")
            out.reasoning_signature = _need(block.signature, f"{where}.signature")
        elif block.type != "redacted_thinking":  # encrypted: no OpenAI field can carry it
            raise _bad(f"{where}.type", f"content block type {block.type!r} is not supported here")
    out.content = "".join(texts) if texts or not calls else None
    out.tool_calls = calls or UNSET
    return out


def _system(system: str | list[Block], out: list[object]) -> None:
    if isinstance(system, str):
        out.append({"role": "system", "content": system})
        return
    parts = []
    for i, block in enumerate(system):
        if block.type != "text":
            raise _bad(f"system[{i}].type", "system blocks must be text")
        parts.append({"type": "text", "text": _need(block.text, f"system[{i}].text")})
    out.append({"role": "system", "content": parts})


def _tools(tools: list[ToolDef]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i, tool in enumerate(tools):
        if tool.type not in (UNSET, None, "custom"):
            raise _bad(f"tools[{i}].type", f"server tool {tool.type!r} is not supported by this gateway")
        fn = FunctionOut(name=_need(tool.name, f"tools[{i}].name"), description=tool.description)
        fn.parameters = _need_raw(tool.input_schema, f"tools[{i}].input_schema")
        out.append({"type": "function", "function": fn})
    return out


def _need_raw(value: Raw | UnsetType, param: str) -> Raw:
    if value is UNSET:
        raise _bad(param, "Field required")
    return value


def _tool_choice(req: MessagesRequest, fields: dict[str, object]) -> None:
    choice = req.tool_choice
    if choice is UNSET or choice is None:
        return
    kind = choice.type
    if kind == "tool":
        name = _need(choice.name, "tool_choice.name")
        fields["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif kind in ("auto", "any", "none"):
        fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        raise _bad("tool_choice.type", f"unknown tool_choice type {kind!r}")
    if choice.disable_parallel_tool_use:
        fields["parallel_tool_calls"] = False


def _effort(thinking: ThinkingConfig | UnsetType | None, effort: str | None) -> str | None:
    if thinking is not UNSET and thinking is not None and thinking.type == "enabled":
        budget = thinking.budget_tokens if thinking.budget_tokens is not UNSET else 0
        return next(name for floor, name in EFFORT_FLOORS if budget >= floor)
    return _EFFORTS.get(effort or "")


def _validate(req: MessagesRequest) -> list[MessageParam]:
    if not isinstance(req.model, str) or not req.model:
        raise _bad("model", "Field required")
    if req.max_tokens is UNSET or req.max_tokens < 1:
        raise _bad("max_tokens", "must be an integer >= 1")
    if not req.messages:
        raise _bad("messages", "at least one message is required")
    for i, msg in enumerate(req.messages):
        if msg.role not in ("user", "assistant", "system"):
            raise _bad(f"messages[{i}].role", "must be 'user' or 'assistant'")
        if msg.content is UNSET:
            raise _bad(f"messages[{i}].content", "Field required")
    if req.stop_sequences and len(req.stop_sequences) > MAX_STOP:
        raise _bad("stop_sequences", f"at most {MAX_STOP} stop sequences can be routed through the gateway")
    return req.messages


def messages_request(body: bytes) -> tuple[bytes, str, bool]:
    """A Messages request -> (OpenAI chat request body, model, stream)."""
    req = decode_request(_messages_request, body, what="request")
    turns = _validate(req)
    messages: list[object] = []
    if req.system is not UNSET:
        _system(req.system, messages)
    for i, msg in enumerate(turns):
        if msg.role == "user":
            _user(msg, f"messages[{i}]", messages)
        elif msg.role == "assistant":
            messages.append(_assistant(msg, f"messages[{i}]"))
        else:  # the SDK's SystemMessageParam: a system turn in place
            _system(msg.content if msg.content is not UNSET else "", messages)
    model, stream = str(req.model), bool(req.stream)
    fields: dict[str, object] = {"model": model, "messages": messages, "max_completion_tokens": req.max_tokens}
    if stream:
        fields["stream"] = True
        fields["stream_options"] = {"include_usage": True}
    if req.stop_sequences:
        fields["stop"] = req.stop_sequences
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not UNSET and value is not None:
            fields[name] = value
    if req.metadata and req.metadata.user_id:
        fields["user"] = req.metadata.user_id
    if req.tools:
        fields["tools"] = _tools(req.tools)
    _tool_choice(req, fields)
    config = req.output_config or None
    effort = _effort(req.thinking, config.effort if config and config.effort else None)
    if effort:
        fields["reasoning_effort"] = effort
    if config and config.format and config.format.schema is not UNSET:
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": config.format.schema},
        }
    return _encode(fields), model, stream


def messages_response(data: bytes) -> bytes:
    """The pipeline's chat.completion -> an Anthropic ``message``."""
    done = decode_upstream(_completion, data, what="an OpenAI chat.completion")
    choice = done.choices[0] if done.choices else None
    msg = choice.message if choice is not None else UNSET
    if choice is None or msg is UNSET:
        raise UpstreamProtocolError("OpenAI chat.completion has no choices[0].message")
    blocks: list[BlockOut] = []
    reasoning = msg.reasoning or msg.reasoning_content
    if reasoning:
        blocks.append(ThinkingOut(thinking=reasoning, signature=msg.reasoning_signature or ""))
    content = msg.content
    if isinstance(content, list):
        content = "".join(p.text if p.text is not UNSET else p.refusal or "" for p in content)
    text = content or msg.refusal
    if text:
        blocks.append(TextOut(text=text))
    for k, call in enumerate(msg.tool_calls or ()):
        fn = call.function
        if not fn or fn.name is UNSET:
            raise UpstreamProtocolError(f"OpenAI chat.completion tool_calls[{k}] has no function name")
        args = fn.arguments or "{}"
        try:
            _object(args)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise UpstreamProtocolError(
                f"OpenAI chat.completion tool_calls[{k}].function.arguments is not a JSON object"
            ) from None
        blocks.append(ToolUseOut(id=call.id or f"toolu_{k}", name=fn.name, input=Raw(args.encode())))
    answer = MessageAnswer(
        id=done.id,
        role="assistant",
        model=done.model,
        content=blocks,
        stop_reason=_usage.stop_reason(choice.finish_reason),
        stop_sequence=None,
        usage=_usage.to_anthropic(done.usage),
    )
    return _encode(answer)
