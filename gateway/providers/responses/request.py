"""A Responses API request -> an OpenAI chat request for the pipeline (the table in
``providers.responses``), and what the gateway routes on."""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from gateway import codec, screen
from gateway.providers.dialect import InboundHead
from gateway.providers.responses import options
from gateway.providers.responses.options import Message, bad, need
from gateway.providers.responses.wire import Head, Item, Items, Part, ResponsesRequest

_encode = msgspec.json.Encoder().encode
_request = msgspec.json.Decoder(ResponsesRequest)
_head = msgspec.json.Decoder(Head)
_item_list = msgspec.json.Decoder(Items)
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
# What the head reads must not repeat (codec.decode_request).
_KEYS = screen.Keys(Head.__struct_fields__)
_ROLES = ("user", "assistant", "system", "developer")


def head(body: bytes, *, strict: bool) -> InboundHead:
    h = codec.decode_request(_head, body, keys=_KEYS if strict else None)
    if not isinstance(h.model, str) or not h.model:
        raise bad("model", "Field required")
    return InboundHead(
        model=h.model,
        stream=bool(h.stream),
        max_out=h.max_output_tokens or 0,
        fallbacks=h.fallbacks,
        previous=h.previous_response_id,
        # Kept unless the client says not to, as OpenAI does.
        keep=h.store is not False,
    )


def _text(part: Part, param: str) -> str:
    if part.type == "refusal":
        return need(part.refusal, f"{param}.refusal")
    return need(part.text, f"{param}.text")


def _part(part: Part, param: str) -> Message:
    """One input part as an OpenAI chat content part."""
    kind = part.type
    if kind in ("input_text", "output_text", "refusal"):
        return {"type": "text", "text": _text(part, param)}
    if kind == "input_image":
        if isinstance(part.image_url, str):
            image: Message = {"url": part.image_url}
            if isinstance(part.detail, str):
                image["detail"] = part.detail
            return {"type": "image_url", "image_url": image}
        if isinstance(part.file_id, str):
            # Only an OpenAI-dialect target reads a file id: the others' translations refuse it.
            return {"type": "file", "file": {"file_id": part.file_id}}
        raise bad(f"{param}.image_url", "an input_image needs image_url (a URL or a data URL) or file_id")
    if kind == "input_file":
        if isinstance(part.file_data, str):
            file: Message = {"file_data": part.file_data}
            if isinstance(part.filename, str):
                file["filename"] = part.filename
            return {"type": "file", "file": file}
        if isinstance(part.file_id, str):
            return {"type": "file", "file": {"file_id": part.file_id}}
        if isinstance(part.file_url, str):
            raise bad(
                f"{param}.file_url",
                "files by URL are not fetched by this gateway; send the file inline as file_data (a base64 data URL)",
                "unsupported_parameter",
            )
        raise bad(f"{param}.file_data", "an input_file needs file_data (a base64 data URL) or file_id")
    raise bad(
        f"{param}.type", f"content part type {kind!r} is not supported; use input_text, input_image or input_file"
    )


def _message(item: Item, param: str, out: list[Message]) -> None:
    role = item.role
    if role not in _ROLES:
        raise bad(f"{param}.role", "must be one of 'user', 'assistant', 'system', 'developer'")
    content = item.content
    if content is UNSET:
        raise bad(f"{param}.content", "Field required")
    if isinstance(content, list):
        parts = [_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)]
        if role != "user":
            # Only user turns take images and files; the others are text.
            for j, p in enumerate(parts):
                if p["type"] != "text":
                    raise bad(f"{param}.content[{j}].type", f"a {role} message holds text parts only")
            out.append({"role": role, "content": "".join(str(p["text"]) for p in parts)})
            return
        out.append({"role": role, "content": parts})
        return
    out.append({"role": role, "content": content})


def _function_call(item: Item, param: str, out: list[Message], calls: set[str], *, join: bool) -> None:
    """An assistant tool call: consecutive ones (and the text just before them) make one
    assistant turn, as chat answers hold them; ``join`` false (reasoning came between):
    a turn of its own."""
    call_id = need(item.call_id, f"{param}.call_id")
    call = {
        "id": call_id,
        "type": "function",
        "function": {
            "name": need(item.name, f"{param}.name"),
            "arguments": need(item.arguments, f"{param}.arguments"),
        },
    }
    calls.add(call_id)
    last = out[-1] if out and join else None
    if last is not None and last["role"] == "assistant":
        tool_calls = last.setdefault("tool_calls", [])
        assert isinstance(tool_calls, list)
        tool_calls.append(call)
        return
    out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: Item, param: str, out: list[Message], calls: set[str], media: list[Message]) -> None:
    """A tool message; its output's image and file parts, which a chat tool message
    cannot hold, go to ``media``: a user message after the tool messages (``_items``)."""
    call_id = need(item.call_id, f"{param}.call_id")
    if call_id not in calls:
        raise bad(
            f"{param}.call_id",
            f"no function_call with call_id {call_id!r} comes before this function_call_output in the input",
        )
    output = item.output
    if output is UNSET:
        raise bad(f"{param}.output", "Field required")
    content: str | list[Message]
    if isinstance(output, str):
        content = output
    else:
        content = []
        for j, p in enumerate(output):
            part = _part(p, f"{param}.output[{j}]")
            (content if part["type"] == "text" else media).append(part)
        if not content:  # images or files only: they follow in the user message
            content = ""
    out.append({"role": "tool", "tool_call_id": call_id, "content": content})


def _reasoning(item: Item, param: str, before: Message | None) -> Message | None:
    """A reasoning item as the chat form's ``reasoning`` (its reasoning_text content,
    else its summary) and ``reasoning_signature`` (its encrypted_content), joined to
    the reasoning item just before it, if any. None: it holds nothing."""
    content = item.content
    if isinstance(content, list) and content:
        texts = [need(p.text, f"{param}.content[{j}].text") for j, p in enumerate(content)]
    elif isinstance(content, str) and content:
        texts = [content]
    else:
        summary = item.summary if item.summary is not UNSET else []
        texts = [need(p.text, f"{param}.summary[{j}].text") for j, p in enumerate(summary)]
    text = "\n\n".join(t for t in texts if t)
    signature = item.encrypted_content if isinstance(item.encrypted_content, str) else None
    if before is not None:
        text = "\n\n".join(t for t in (str(before["reasoning"]), text) if t)
        if signature is None and "reasoning_signature" in before:
            signature = str(before["reasoning_signature"])
    if not text and not signature:
        return None
    out: Message = {"reasoning": text}
    if signature:
        out["reasoning_signature"] = signature
    return out


def _items(items: list[Item], out: list[Message], calls: set[str], *, where: str) -> None:
    """``where``: the param naming the list (``input``). A reasoning item goes with the
    assistant turn that follows it (its thinking, for a target that replays it), and
    is dropped when another kind of item follows."""
    reasoning: Message | None = None
    media: list[Message] = []  # function outputs' images and files, after their tool messages
    for i, item in enumerate(items):
        param = f"{where}[{i}]"
        kind = item.type
        if media and kind != "function_call_output":
            out.append({"role": "user", "content": media})
            media = []
        if kind == "reasoning":
            reasoning = _reasoning(item, param, reasoning)
            continue
        if kind is UNSET or kind == "message":
            _message(item, param, out)
        elif kind == "function_call":
            _function_call(item, param, out, calls, join=reasoning is None)
        elif kind == "function_call_output":
            _function_output(item, param, out, calls, media)
        elif kind == "item_reference":
            raise bad(f"{param}.type", "item references need stored responses, which this gateway does not keep yet")
        else:
            raise bad(
                f"{param}.type",
                f"input item type {kind!r} is not supported; use message, function_call, function_call_output "
                "or reasoning",
            )
        if reasoning is not None:
            if out[-1]["role"] == "assistant":
                out[-1].update(reasoning)
            reasoning = None
    if media:
        out.append({"role": "user", "content": media})


def _refuse_state(req: ResponsesRequest) -> None:
    # A request continuing a stored response reaches ``to_chat`` with its conversation
    # (``prior``, loaded by the drop-in route from the response store); without one it
    # came another way: an async job (x-bf-async), a token count (input_tokens), or a
    # translated fallback of a target that continues its upstream's own stored responses.
    if isinstance(req.previous_response_id, str):
        raise bad(
            "previous_response_id",
            "previous_response_id cannot be used with x-bf-async, on input_tokens, or by a translated fallback "
            "of a model whose provider stores the responses itself; send the earlier input and output items in "
            "'input' instead",
            "unsupported_parameter",
        )
    for name in ("conversation", "prompt"):
        value = getattr(req, name)
        if value is not UNSET and bytes(value) != b"null":
            raise bad(
                name, "stored conversations and prompts are not available on this gateway", "unsupported_parameter"
            )
    if req.background:
        raise bad(
            "background",
            "background responses are not available; send the request with the header x-bf-async: true "
            "and poll it with x-bf-async-id",
            "unsupported_parameter",
        )


def decode(body: bytes) -> ResponsesRequest:
    return codec.decode_request(_request, body)


def to_chat(body: bytes, *, model: str, stream: bool, prior: bytes | None = None) -> bytes:
    """A Responses request as an OpenAI chat request. ``prior``: a JSON array of
    Responses items (earlier inputs and outputs, in order) to put before the input: the
    conversation a stored ``previous_response_id`` names."""
    req = decode(body)
    if prior is None:
        _refuse_state(req)
    messages: list[Message] = []
    if isinstance(req.instructions, str):
        messages.append({"role": "system", "content": req.instructions})
    calls: set[str] = set()
    if prior is not None:
        _items(_items_of(prior), messages, calls, where="previous_response_id")
    given = req.input
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif given is not UNSET:
        _items(given, messages, calls, where="input")
    if not any(m["role"] != "system" for m in messages):
        raise bad("input", "Field required: a text or at least one input item")
    fields: Message = {"model": model, "messages": messages}
    if stream:
        fields["stream"] = True
        fields["stream_options"] = {"include_usage": True}
    if isinstance(req.max_output_tokens, int):
        fields["max_completion_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key"):
        value = getattr(req, name)
        if value is not UNSET and value is not None:
            fields[name] = value
    if req.service_tier not in (UNSET, None, "auto", "default"):
        fields["service_tier"] = req.service_tier
    options.tools(req, fields)
    if req.text is not UNSET and req.text is not None:
        options.text_format(req.text, fields)
    options.include(req, fields)
    options.truncation(req)
    if req.reasoning is not UNSET and req.reasoning is not None and isinstance(req.reasoning.effort, str):
        fields["reasoning_effort"] = req.reasoning.effort
    return _encode(fields)


def _items_of(data: bytes) -> list[Item]:
    try:
        return _item_list.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise bad("previous_response_id", f"the stored conversation is not a list of items: {e}") from None


def input_items(body: bytes) -> bytes:
    """The request's input as a JSON array of items, as the client sent them (a string
    input: one user message), for a store to keep with the response."""
    given = _fields(body).get("input")
    if given is None:
        return b"[]"
    data = bytes(given)
    if data[:1] == b'"':
        return b'[{"type":"message","role":"user","content":[{"type":"input_text","text":%s}]}]' % data
    return data
