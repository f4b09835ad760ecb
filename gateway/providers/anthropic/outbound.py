"""An OpenAI client's chat request -> a Messages API request, and the Messages API
answer -> an OpenAI chat.completion."""

from __future__ import annotations

import binascii

import msgspec
from msgspec import UNSET, Raw

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import document
from gateway.providers.anthropic import usage as _usage
from gateway.providers.anthropic.errors import DIALECT, decode_request, decode_upstream
from gateway.providers.anthropic.schema import (
    Base64Source,
    BlockOut,
    ChatMessage,
    ChatMessageOut,
    ChatPart,
    ChatRequest,
    ChatTool,
    ChatToolChoice,
    ChoiceOut,
    CompletionOut,
    DocumentOut,
    FileRef,
    FunctionOut,
    ImageOut,
    JSONSchemaFormat,
    Message,
    MessageOut,
    MetadataOut,
    OutputConfigOut,
    TextOut,
    TextSource,
    ThinkingEnabled,
    ThinkingOut,
    ToolCallOut,
    ToolChoiceOut,
    ToolOut,
    ToolResultOut,
    ToolUseOut,
    URLSource,
)

_encode = msgspec.json.Encoder().encode
_chat_request = msgspec.json.Decoder(ChatRequest)
_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_arguments = msgspec.json.Decoder(dict[str, Raw]).decode
_message = msgspec.json.Decoder(Message)

# OpenAI fields mapped below, or ignored on purpose; every other top-level field (say
# Anthropic's own ``top_k``, or a client's ``thinking``) is forwarded verbatim.
_CONSUMED = frozenset(
    {
        *ChatRequest.__struct_fields__,
        "model",
        "stream_options",
        "seed",
        "service_tier",
        "fallbacks",
        "mock",
        "metadata",  # OpenAI's is stored-completion tags; Anthropic's holds only user_id
        "store",
        "prompt_cache_key",
        "prompt_cache_retention",
        "verbosity",
    }
)
# reasoning_effort -> thinking.budget_tokens. 1024 is the API's minimum budget; the
# others double from OpenAI's "low" as Anthropic's thinking guide suggests (start
# small, raise the budget for harder tasks); "none" sends no thinking at all.
THINKING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
# Anthropic's image source accepts exactly these media types.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# A document's base64 source takes PDF only; text documents go as a text source
# (text/plain, the only type it names), decoded: any text/* file, and JSON.
PDF = "application/pdf"
TEXT_DOCUMENT_TYPES = frozenset({"application/json"})
# An OpenAI temperature above this has no Anthropic equivalent (its range is 0..1).
MAX_TEMPERATURE = 1.0
_EMPTY_SCHEMA = Raw(b'{"type":"object","properties":{}}')
_EMPTY_INPUT = Raw(b"{}")


def _tool_id(call_id: str) -> str:
    """A tool call id as Anthropic takes it (``^[a-zA-Z0-9_-]+$``): without the Gemini
    thought signature the gemini dialect carries in it (``<id>|ts:<signature>``), so a
    conversation begun on a Gemini model can go on on an Anthropic one."""
    return call_id.partition("|ts:")[0]


def _unsupported(field: str, why: str = "") -> InvalidRequest:
    tail = f": {why}" if why else ""
    return InvalidRequest(
        f"'{field}' is not supported by the {DIALECT} provider dialect{tail}",
        param=field,
        code="unsupported_parameter",
    )


def _refuse_unmappable(req: ChatRequest) -> None:
    if req.n is not None and req.n > 1:
        raise _unsupported("n", "it returns one choice")
    if req.logprobs:
        raise _unsupported("logprobs")
    if req.top_logprobs:
        raise _unsupported("top_logprobs")
    if req.logit_bias:
        raise _unsupported("logit_bias")
    if req.frequency_penalty:
        raise _unsupported("frequency_penalty")
    if req.presence_penalty:
        raise _unsupported("presence_penalty")
    if req.modalities and any(m != "text" for m in req.modalities):
        raise _unsupported("modalities", "it answers in text only")
    for name in ("functions", "function_call", "audio", "prediction", "web_search_options"):
        if getattr(req, name) is not UNSET:
            raise _unsupported(name)
    if req.temperature is not None and req.temperature > MAX_TEMPERATURE:
        raise InvalidRequest(
            f"'temperature' must be at most {MAX_TEMPERATURE} for the {DIALECT} provider dialect "
            f"(its range is 0 to 1), got {req.temperature}",
            param="temperature",
            code="invalid_value",
        )


def image_source(url: str, *, param: str) -> Base64Source | URLSource:
    """An OpenAI image URL: ``data:<type>;base64,<data>`` or http(s)."""
    if url.startswith(("https://", "http://")):
        return URLSource(url=url)
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if sep and encoding == "base64" and media_type in IMAGE_TYPES:
            return Base64Source(media_type=media_type, data=data)
        raise InvalidRequest(
            f"'{param}' must be a base64 data URL of type {', '.join(sorted(IMAGE_TYPES))} "
            f"for the {DIALECT} provider dialect",
            param=param,
            code="invalid_value",
        )
    raise InvalidRequest(f"'{param}' must be an http(s) URL or a data URL", param=param, code="invalid_value")


def _document(file: FileRef, *, param: str) -> DocumentOut:
    """An OpenAI file part -> a document block: a PDF as a base64 source, text as a text
    source; the filename is its title."""
    if not file.file_data and file.file_id:
        raise document.file_id_refused(f"{param}.file_id", dialect=DIALECT)
    if not file.file_data:
        raise InvalidRequest(f"'{param}.file_data' is required", param=f"{param}.file_data", code="invalid_value")
    name = file.filename or None
    inline = document.inline_file(file.file_data, filename=name, param=f"{param}.file_data")
    title = name or UNSET
    if inline.media_type == PDF:
        return DocumentOut(source=Base64Source(media_type=PDF, data=inline.data), title=title)
    if inline.media_type.startswith("text/") or inline.media_type in TEXT_DOCUMENT_TYPES:
        try:
            text = binascii.a2b_base64(inline.data, strict_mode=True).decode()
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
            raise InvalidRequest(
                f"'{param}.file_data' must hold base64 of UTF-8 text for a {inline.media_type} document",
                param=f"{param}.file_data",
                code="invalid_value",
            ) from None
        return DocumentOut(source=TextSource(media_type="text/plain", data=text), title=title)
    raise InvalidRequest(
        f"a {inline.media_type!r} file is not supported by the {DIALECT} provider dialect: "
        "it takes PDF and text documents",
        param=f"{param}.file_data",
        code="invalid_value",
    )


def _part(part: ChatPart, *, param: str, role: str) -> TextOut | ImageOut | DocumentOut:
    kind = part.type
    if kind == "text" and part.text is not UNSET:
        return TextOut(text=part.text, cache_control=part.cache_control)
    if kind == "refusal" and role == "assistant" and part.refusal is not UNSET:
        return TextOut(text=part.refusal)
    if kind == "image_url" and role in ("user", "tool"):
        url = part.image_url.url if part.image_url is not UNSET else UNSET
        if url is UNSET:
            raise InvalidRequest(f"'{param}.image_url.url' is required", param=f"{param}.image_url.url")
        return ImageOut(source=image_source(url, param=f"{param}.image_url.url"), cache_control=part.cache_control)
    if kind == "file" and role in ("user", "tool"):
        if part.file is UNSET:
            raise InvalidRequest(f"'{param}.file' is required", param=f"{param}.file", code="invalid_value")
        block = _document(part.file, param=f"{param}.file")
        block.cache_control = part.cache_control
        return block
    if kind in ("text", "refusal"):
        raise InvalidRequest(f"'{param}.{kind}' is required", param=f"{param}.{kind}", code="invalid_value")
    raise InvalidRequest(
        f"content part type {kind!r} is not supported in a {role} message by the {DIALECT} provider dialect",
        param=f"{param}.type",
        code="invalid_value",
    )


def _parts(msg: ChatMessage, *, param: str) -> list[TextOut | ImageOut | DocumentOut]:
    content = msg.content
    if content is UNSET or content is None:
        return []
    if isinstance(content, str):
        return [TextOut(text=content)] if content else []
    return [_part(p, param=f"{param}.content[{j}]", role=msg.role) for j, p in enumerate(content)]


def _assistant(msg: ChatMessage, *, param: str) -> list[BlockOut]:
    blocks: list[BlockOut] = []
    # A thinking block is replayed only with its signature: Anthropic rejects an
    # unsigned one, and an assistant turn without it is still valid.
    reasoning = msg.reasoning or msg.reasoning_content
    if reasoning and msg.reasoning_signature:
        blocks.append(ThinkingOut(thinking=reasoning, signature=msg.reasoning_signature))
    blocks.extend(_parts(msg, param=param))
    if msg.refusal and not msg.content:
        blocks.append(TextOut(text=msg.refusal))
    for k, call in enumerate(msg.tool_calls or ()):
        where = f"{param}.tool_calls[{k}]"
        fn = call.function
        if not fn or fn.name is UNSET or not call.id:
            raise InvalidRequest(f"'{where}' needs an id and function.name", param=where, code="invalid_value")
        args = fn.arguments or ""
        try:
            if args.strip():
                _arguments(args)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise InvalidRequest(
                f"'{where}.function.arguments' must be a JSON object",
                param=f"{where}.function.arguments",
                code="invalid_value",
            ) from None
        payload = Raw(args.encode()) if args.strip() else _EMPTY_INPUT
        blocks.append(ToolUseOut(id=_tool_id(call.id), name=fn.name, input=payload))
    return blocks


def _tool_result(msg: ChatMessage, *, param: str) -> ToolResultOut:
    if not msg.tool_call_id:
        raise InvalidRequest(f"'{param}.tool_call_id' is required", param=f"{param}.tool_call_id")
    content: str | list[TextOut | ImageOut | DocumentOut]
    content = msg.content if isinstance(msg.content, str) else _parts(msg, param=param)
    return ToolResultOut(tool_use_id=_tool_id(msg.tool_call_id), content=content)


def _system(msg: ChatMessage, *, param: str, system: list[TextOut]) -> None:
    for block in _parts(msg, param=param):
        if not isinstance(block, TextOut):
            raise InvalidRequest(f"'{param}.content' must be text", param=f"{param}.content", code="invalid_value")
        system.append(block)


def _messages(req: ChatRequest) -> tuple[list[TextOut], list[MessageOut]]:
    """System text, and the turns merged so that roles alternate, as Anthropic needs."""
    system: list[TextOut] = []
    turns: list[MessageOut] = []
    for i, msg in enumerate(req.messages):
        param = f"messages[{i}]"
        role = msg.role
        content: str | list[BlockOut]
        if role in ("system", "developer"):
            _system(msg, param=param, system=system)
            continue
        if role == "user":
            content = msg.content if isinstance(msg.content, str) else list(_parts(msg, param=param))
        elif role == "assistant":
            content = _assistant(msg, param=param)
        elif role == "tool":
            role, content = "user", [_tool_result(msg, param=param)]
        else:
            raise InvalidRequest(
                f"role {role!r} is not supported by the {DIALECT} provider dialect; use tools and 'tool' messages",
                param=f"{param}.role",
                code="invalid_value",
            )
        if turns and turns[-1].role == role:
            last = turns[-1]
            head: list[BlockOut] = [TextOut(text=last.content)] if isinstance(last.content, str) else last.content
            tail: list[BlockOut] = [TextOut(text=content)] if isinstance(content, str) else content
            last.content = head + tail
        else:
            turns.append(MessageOut(role=role, content=content))
    return system, turns


def _tools(tools: list[ChatTool]) -> list[ToolOut]:
    out = []
    for i, tool in enumerate(tools):
        fn = tool.function
        if tool.type != "function" or fn is UNSET or fn.name is UNSET:
            raise _unsupported(f"tools[{i}].type", "only function tools are")
        out.append(
            ToolOut(
                name=fn.name,
                description=fn.description or UNSET,
                input_schema=fn.parameters if fn.parameters is not UNSET else _EMPTY_SCHEMA,
                cache_control=tool.cache_control,
            )
        )
    return out


def _tool_choice(choice: str | ChatToolChoice | None, *, parallel: bool | None) -> ToolChoiceOut | None:
    once = True if parallel is False else UNSET
    if choice is None:
        return ToolChoiceOut(type="auto", disable_parallel_tool_use=once) if once else None
    if isinstance(choice, str):
        kind = {"auto": "auto", "required": "any", "none": "none"}.get(choice)
        if kind is None:
            raise InvalidRequest(f"unknown tool_choice {choice!r}", param="tool_choice", code="invalid_value")
        return ToolChoiceOut(type=kind, disable_parallel_tool_use=UNSET if kind == "none" else once)
    fn = choice.function
    if choice.type != "function" or fn is UNSET or fn.name is UNSET:
        raise _unsupported("tool_choice.type", "only function tool choices are")
    return ToolChoiceOut(type="tool", name=fn.name, disable_parallel_tool_use=once)


def chat_request(body: bytes, *, model: str, default_max_tokens: int = 4096) -> bytes:
    """The client's OpenAI chat request -> the Messages API request body."""
    req = decode_request(_chat_request, body, what="request")
    _refuse_unmappable(req)
    system, turns = _messages(req)
    max_tokens = req.max_completion_tokens or req.max_tokens or default_max_tokens
    out: dict[str, object] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        only = system[0]
        one_plain = len(system) == 1 and only.cache_control is UNSET
        out["system"] = only.text if one_plain else system
    if req.stop is not None:
        out["stop_sequences"] = [req.stop] if isinstance(req.stop, str) else req.stop
    if req.temperature is not None:
        out["temperature"] = req.temperature
    if req.top_p is not None:
        out["top_p"] = req.top_p
    user = req.user or req.safety_identifier
    if user:
        out["metadata"] = MetadataOut(user_id=user)
    if req.tools:
        out["tools"] = _tools(req.tools)
        choice = _tool_choice(req.tool_choice, parallel=req.parallel_tool_calls)
        if choice is not None:
            out["tool_choice"] = choice
    elif req.tool_choice not in (None, "none", "auto"):
        raise InvalidRequest("'tool_choice' needs 'tools'", param="tool_choice", code="invalid_value")
    budget = THINKING_BUDGETS.get(req.reasoning_effort or "")
    if budget:
        out["thinking"] = ThinkingEnabled(budget_tokens=budget)
        if max_tokens <= budget:
            # Thinking counts against max_tokens: keep the client's budget for the answer.
            out["max_tokens"] = budget + max_tokens
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_schema":
        schema = fmt.json_schema.schema if fmt.json_schema is not UNSET else UNSET
        if schema is UNSET:
            raise InvalidRequest("'response_format.json_schema.schema' is required", param="response_format")
        out["output_config"] = OutputConfigOut(format=JSONSchemaFormat(schema=schema))
    elif fmt is not None and fmt.type != "text":
        raise _unsupported("response_format", "use type json_schema")
    if req.stream:
        out["stream"] = True
    for key, value in _fields(body).items():
        if key not in _CONSUMED and key not in out:
            out[key] = value
    return _encode(out)


def chat_response(data: bytes, *, created: int) -> bytes:
    """A Messages API ``message`` -> an OpenAI chat.completion."""
    msg = decode_upstream(_message, data, what=f"an {DIALECT} message")
    texts: list[str] = []
    thinking: list[str] = []
    signature = ""
    calls: list[ToolCallOut] = []
    for block in msg.content:
        if block.type == "text" and block.text is not UNSET:
            texts.append(block.text)
        elif block.type == "thinking" and block.thinking is not UNSET:
            thinking.append(block.thinking)
            signature = block.signature or ""
        elif block.type == "tool_use":
            if block.id is UNSET or block.name is UNSET:
                raise UpstreamProtocolError(f"{DIALECT} upstream sent a tool_use block without id or name")
            args = bytes(block.input).decode() if block.input is not UNSET else "{}"
            calls.append(
                ToolCallOut(id=block.id, type="function", function=FunctionOut(name=block.name, arguments=args))
            )
    message = ChatMessageOut(
        role="assistant",
        content=None if calls and not texts else "".join(texts),
        tool_calls=calls or UNSET,
        reasoning="".join(thinking) if thinking else UNSET,
        reasoning_signature=signature or UNSET,
    )
    return _encode(
        CompletionOut(
            id=msg.id,
            object="chat.completion",
            created=created,
            model=msg.model,
            choices=[ChoiceOut(index=0, message=message, finish_reason=_usage.finish_reason(msg.stop_reason))],
            usage=_usage.from_anthropic(msg.usage),
        )
    )
