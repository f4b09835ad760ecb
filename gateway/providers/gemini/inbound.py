"""A google-genai client's generateContent request, routed to any provider through the
OpenAI pipeline, and the OpenAI answer turned back into Gemini's."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import document
from gateway.providers.gemini import chat_wire as oa
from gateway.providers.gemini import convert
from gateway.providers.gemini import wire as g
from gateway.screen import NESTING

# Values whose keys are the user's (arguments, results, schemas): never renamed.
_FREE_FORM = frozenset(
    {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema", "partMetadata"}
)
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_URL_SAFE = str.maketrans("-_", "+/")


def _unsupported(field: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"gemini dialect: {what}", param=field, code="unsupported_parameter")


def _invalid(field: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"gemini dialect: {what}", param=field, code="invalid_value")


def _camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _camel_keys(value: Any) -> Any:
    """Proto JSON accepts snake_case names as well as lowerCamelCase, and the google-genai
    SDK sends a mix (``inlineData: {mime_type}``, ``thinkingConfig: {thinking_budget}``):
    one spelling before decoding. User-owned values are left alone."""
    if isinstance(value, dict):
        return {(c := _camel(k)): v if c in _FREE_FORM else _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def decode_request(body: bytes) -> g.GenerateContentRequest:
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest(NESTING, code="nesting_too_deep") from None
    if not isinstance(raw, dict):
        raise _invalid("", "the request body must be a JSON object")
    try:
        return msgspec.convert(_camel_keys(raw), g.GenerateContentRequest)
    except RecursionError:  # _camel_keys recurses as deep as the body nests
        raise InvalidRequest(NESTING, code="nesting_too_deep") from None
    except msgspec.ValidationError as e:
        m = _AT.search(str(e))
        text = str(e)[: m.start()] if m else str(e)
        raise _invalid(m.group("path") if m else "", f"invalid request: {text}") from None


def generate_request(body: bytes, *, model: str, stream: bool) -> bytes:
    req = decode_request(body)
    if req.cachedContent is not UNSET:
        raise _unsupported("cachedContent", "cachedContent names a Gemini-side cache other providers cannot read")
    if not req.contents:
        raise _invalid("contents", "contents must not be empty")
    out = oa.ChatRequest(model=model, stream=stream, messages=_messages(req))
    if stream:
        out.stream_options = oa.StreamOptions(include_usage=True)
    if req.tools is not UNSET:
        out.tools = _tools(req.tools)
    if isinstance(req.toolConfig, g.ToolConfig) and isinstance(
        req.toolConfig.functionCallingConfig, g.FunctionCallingConfig
    ):
        out.tool_choice = _tool_choice(req.toolConfig.functionCallingConfig)
    if isinstance(req.generationConfig, g.GenerationConfig):
        _generation_config(req.generationConfig, out)
    return oa.encode(out)


def _messages(req: g.GenerateContentRequest) -> list[oa.Message]:
    messages: list[oa.Message] = []
    if isinstance(req.systemInstruction, g.Content):
        texts = [p.text for p in req.systemInstruction.parts if isinstance(p.text, str)]
        if texts:
            messages.append(oa.Message(role="system", content=_text_content(texts)))
    pending: list[list[Any]] = []  # calls of the last model turn: [openai id, gemini id, name, answered]
    for i, c in enumerate(req.contents):
        at = f"contents[{i}]"
        role = c.role if isinstance(c.role, str) else "user"
        if role not in ("user", "model", "function"):  # "function": the older API's tool-result turn
            raise _invalid(f"{at}.role", f"role must be 'user' or 'model', not {role!r}")
        if not c.parts:
            raise _invalid(f"{at}.parts", "parts must not be empty")
        if role == "model":
            message, pending = _assistant(c, i)
            if message is not None:
                messages.append(message)
        else:
            messages.extend(_user(c, at, pending))
    return messages


def _text_content(texts: list[str]) -> str | list[oa.ContentPart]:
    return texts[0] if len(texts) == 1 else [oa.ContentPart(type="text", text=t) for t in texts]


def _assistant(c: g.Content, i: int) -> tuple[oa.Message | None, list[list[Any]]]:
    at = f"contents[{i}]"
    texts: list[str] = []
    calls: list[oa.ToolCall] = []
    pending: list[list[Any]] = []
    for j, p in enumerate(c.parts):
        if isinstance(p.functionCall, g.FunctionCall):
            fc = p.functionCall
            gid = fc.id if isinstance(fc.id, str) and fc.id else None
            sig = p.thoughtSignature if isinstance(p.thoughtSignature, str) else None
            # Generated ids are unique in the request: contents index and part index.
            call_id = convert.with_signature(gid or f"call_{i}_{j}", sig)
            args = oa.encode(fc.args if isinstance(fc.args, dict) else {}).decode()
            calls.append(oa.ToolCall(id=call_id, function=oa.FunctionCall(name=fc.name, arguments=args)))
            pending.append([call_id, gid, fc.name, False])
        elif isinstance(p.text, str):
            if p.thought is not True:  # thought summaries are not replayed to any model
                texts.append(p.text)
        elif p.thoughtSignature is UNSET:
            raise _unsupported(f"{at}.parts[{j}]", "a model turn may hold only text and functionCall parts")
    if not texts and not calls:
        return None, pending
    message = oa.Message(role="assistant", content="".join(texts) if texts else None)
    if calls:
        message.tool_calls = calls
    return message, pending


def _user(c: g.Content, at: str, pending: list[list[Any]]) -> list[oa.Message]:
    # Tool results first: OpenAI wants them right after the assistant's tool calls.
    tools: list[oa.Message] = []
    parts: list[oa.ContentPart] = []
    for j, p in enumerate(c.parts):
        here = f"{at}.parts[{j}]"
        if isinstance(p.functionResponse, g.FunctionResponse):
            tools.append(_tool_message(p.functionResponse, here, pending))
        elif isinstance(p.text, str):
            if p.thought is not True:
                parts.append(oa.ContentPart(type="text", text=p.text))
        elif isinstance(p.inlineData, g.Blob):
            parts.append(_inline(p.inlineData))
        elif isinstance(p.fileData, g.FileData):
            parts.append(_file(p.fileData, f"{here}.fileData"))
        elif p.functionCall is not UNSET:
            raise _invalid(f"{here}.functionCall", "a functionCall belongs in a model turn")
        elif p.executableCode is not UNSET or p.codeExecutionResult is not UNSET:
            raise _unsupported(here, "code execution parts have no OpenAI equivalent")
        else:
            raise _invalid(here, "a part needs text, inlineData, fileData or functionResponse")
    messages = tools
    if parts:
        texts = [p.text for p in parts if p.type == "text" and isinstance(p.text, str)]
        content = _text_content(texts) if len(texts) == len(parts) else parts
        messages.append(oa.Message(role="user", content=content))
    return messages


def _tool_message(fr: g.FunctionResponse, at: str, pending: list[list[Any]]) -> oa.Message:
    gid = fr.id if isinstance(fr.id, str) and fr.id else None
    for call in pending:
        if not call[3] and (call[1] == gid if gid else call[2] == fr.name):
            call[3] = True
            break
    else:
        raise _invalid(f"{at}.functionResponse", f"no functionCall {fr.name!r} in the model turn before it")
    response = fr.response if isinstance(fr.response, dict) else {}
    text = response["content"] if list(response) == ["content"] and isinstance(response["content"], str) else None
    content = text if text is not None else oa.encode(response).decode()
    return oa.Message(role="tool", tool_call_id=call[0], content=content)


def standard_base64(data: str) -> str:
    """Proto JSON's bytes may be URL-safe base64, unpadded: the google-genai SDK sends
    them so (``-`` and ``_``). Gemini reads either; OpenAI's and Anthropic's data take
    standard base64 only."""
    if "-" in data or "_" in data:
        data = data.translate(_URL_SAFE)
    return data + "=" * (-len(data) % 4)


def _inline(b: g.Blob) -> oa.ContentPart:
    mime, data = b.mimeType.lower(), standard_base64(b.data)
    if mime.startswith("image/"):
        return oa.ContentPart(type="image_url", image_url=oa.ImageURL(url=document.data_url(mime, data)))
    if mime in _AUDIO:
        return oa.ContentPart(type="input_audio", input_audio=oa.InputAudio(data=data, format=_AUDIO[mime]))
    # OpenAI reads a file's name with its data; Gemini's inline data has none.
    ref = oa.FileRef(file_data=document.data_url(mime, data), filename=document.file_name(mime))
    return oa.ContentPart(type="file", file=ref)


def _file(f: g.FileData, at: str) -> oa.ContentPart:
    mime = f.mimeType.lower() if isinstance(f.mimeType, str) else ""
    if mime and not mime.startswith("image/"):
        raise _unsupported(f"{at}.mimeType", "only images can be passed by URI; send other files inline")
    return oa.ContentPart(type="image_url", image_url=oa.ImageURL(url=f.fileUri))


def json_schema(schema: Any) -> Any:
    """The older OpenAPI-subset Schema (``"type": "OBJECT"``, ``nullable``) as JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, v in schema.items():
        k = _camel(key)
        if k == "propertyOrdering":
            continue  # Gemini's own ordering hint: not JSON Schema
        if k == "type" and isinstance(v, str):
            out[k] = v.lower()
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: json_schema(s) for name, s in v.items()}
        elif k in ("items", "additionalProperties"):
            out[k] = json_schema(v)
        elif k == "anyOf" and isinstance(v, list):
            out[k] = [json_schema(s) for s in v]
        elif k != "nullable":
            out[k] = v
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _tools(tools: list[g.Tool]) -> list[oa.Tool]:
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t.functionDeclarations, list):
            raise _unsupported(f"tools[{i}]", "only functionDeclarations tools can be routed to other providers")
        for d in t.functionDeclarations:
            params = d.parametersJsonSchema if d.parametersJsonSchema is not UNSET else json_schema(d.parameters)
            fn = oa.FunctionDefinition(name=d.name, description=d.description, parameters=params)
            out.append(oa.Tool(function=fn))
    return out


def _tool_choice(fcc: g.FunctionCallingConfig) -> str | oa.ToolChoice | UnsetType:
    mode = fcc.mode.upper() if isinstance(fcc.mode, str) else "MODE_UNSPECIFIED"
    names = fcc.allowedFunctionNames if isinstance(fcc.allowedFunctionNames, list) else []
    if mode == "NONE":
        return "none"
    if mode == "ANY" and len(names) == 1:
        return oa.ToolChoice(type="function", function=oa.NamedFunction(name=names[0]))
    if mode in ("ANY", "VALIDATED") and names:
        tools = [oa.Tool(function=oa.FunctionDefinition(name=n)) for n in names]
        allowed = oa.AllowedTools(mode="required" if mode == "ANY" else "auto", tools=tools)
        return oa.ToolChoice(type="allowed_tools", allowed_tools=allowed)
    if mode == "ANY":
        return "required"
    if mode in ("AUTO", "VALIDATED"):
        return "auto"
    if mode == "MODE_UNSPECIFIED":
        return UNSET
    raise _invalid("toolConfig.functionCallingConfig.mode", f"unknown mode {fcc.mode!r}")


def _generation_config(cfg: g.GenerationConfig, out: oa.ChatRequest) -> None:
    """Copies what maps; ``topK`` is ignored (no OpenAI equivalent, and clients send it
    by habit)."""
    at = "generationConfig"
    out.temperature = cfg.temperature
    out.top_p = cfg.topP
    out.n = cfg.candidateCount
    out.stop = cfg.stopSequences
    out.max_completion_tokens = cfg.maxOutputTokens
    out.seed = cfg.seed
    out.presence_penalty = cfg.presencePenalty
    out.frequency_penalty = cfg.frequencyPenalty
    if cfg.responseLogprobs is True:
        out.logprobs = True
        out.top_logprobs = cfg.logprobs
    if isinstance(cfg.responseModalities, list) and any(m.upper() != "TEXT" for m in cfg.responseModalities):
        raise _unsupported(f"{at}.responseModalities", "only TEXT output can be routed to other providers")
    if cfg.speechConfig is not UNSET:
        raise _unsupported(f"{at}.speechConfig", "speech output has no OpenAI chat equivalent")
    mime = cfg.responseMimeType if isinstance(cfg.responseMimeType, str) else "text/plain"
    if mime == "application/json":
        schema = cfg.responseJsonSchema if cfg.responseJsonSchema is not UNSET else json_schema(cfg.responseSchema)
        if schema is UNSET:
            out.response_format = oa.ResponseFormat(type="json_object")
        else:
            out.response_format = oa.ResponseFormat(type="json_schema", json_schema=oa.JSONSchema(schema=schema))
    elif mime != "text/plain":
        raise _unsupported(f"{at}.responseMimeType", f"{mime!r} output has no OpenAI equivalent")
    if isinstance(cfg.thinkingConfig, g.ThinkingConfig):
        out.reasoning_effort = _effort(cfg.thinkingConfig)


def _effort(t: g.ThinkingConfig) -> str | UnsetType:
    if isinstance(t.thinkingLevel, str) and t.thinkingLevel.upper() in _LEVELS:
        return _LEVELS[t.thinkingLevel.upper()]
    b = t.thinkingBudget
    if not isinstance(b, int) or b < 0:
        return UNSET  # -1: dynamic, the model's own choice
    if b == 0:
        return "none"
    for limit, effort in ((512, "minimal"), (1024, "low"), (8192, "medium"), (24576, "high")):
        if b <= limit:
            return effort
    return "xhigh"


def generate_response(data: bytes) -> bytes:
    try:
        c = oa.decode_completion(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"gemini dialect: the answer is not a chat.completion: {e}") from None
    out = g.GenerateContentResponse(
        candidates=[_candidate(ch) for ch in c.choices], modelVersion=c.model, responseId=c.id
    )
    if isinstance(c.usage, oa.Usage):
        out.usageMetadata = convert.gemini_usage(c.usage)
    return g.encode(out)


def _candidate(ch: oa.Choice) -> g.Candidate:
    m = ch.message
    parts: list[g.Part] = []
    reasoning = m.reasoning if isinstance(m.reasoning, str) else m.reasoning_content
    if isinstance(reasoning, str) and reasoning:
        parts.append(g.Part(text=reasoning, thought=True))
    for text in (m.content, m.refusal):
        if isinstance(text, str) and text:
            parts.append(g.Part(text=text))
    for tc in m.tool_calls or ():
        parts.append(
            function_call_part(tc.id if isinstance(tc.id, str) else "", tc.function.name, tc.function.arguments)
        )
    cand = g.Candidate(content=g.Content(parts=parts, role="model"), index=ch.index)
    if isinstance(ch.finish_reason, str):
        cand.finishReason = convert.gemini_finish(ch.finish_reason)
    if isinstance(ch.logprobs, oa.Logprobs):
        cand.logprobsResult = convert.gemini_logprobs(ch.logprobs) or UNSET
    return cand


def function_call_part(call_id: str, name: str, arguments: str) -> g.Part:
    """An OpenAI tool call as a functionCall part; the signature comes out of the id."""
    try:
        args = msgspec.json.decode(arguments) if arguments.strip() else {}
    except msgspec.DecodeError:
        args = None
    if not isinstance(args, dict):
        raise UpstreamProtocolError(f"gemini dialect: tool call {name!r} has arguments that are not a JSON object")
    bare, sig = convert.split_signature(call_id)
    fc = g.FunctionCall(name=name, args=args, id=bare or UNSET)
    return g.Part(functionCall=fc, thoughtSignature=sig or UNSET)


def generate_error(status: int, data: bytes) -> bytes:
    try:
        message = oa.decode_error(data).error.message
    except (msgspec.ValidationError, msgspec.DecodeError):
        message = data[:500].decode("utf-8", "replace") or f"HTTP {status}"
    return g.encode(g.ErrorBody(error=g.Status(code=status, message=message, status=convert.rpc_status(status))))
