"""An OpenAI client's chat request to a Gemini upstream, and Gemini's answers back."""

from __future__ import annotations

import os
import re
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.providers import document
from gateway.providers.gemini import chat_wire as oa
from gateway.providers.gemini import convert
from gateway.providers.gemini import wire as g

# Google's documented stand-in for a missing signature on a replayed function call
# (history from another model, or a client that lost the id): Gemini 3 refuses such a
# turn with a 400 otherwise. Sent only to Gemini 3+ models, as other SDKs do.
DUMMY_SIGNATURE = "skip_thought_signature_validator"
_SIGNED_MODELS = re.compile(r"gemini-([3-9]|\d\d)")

# reasoning_effort -> thinkingBudget: Google's own OpenAI-compatibility mapping (low 1K,
# medium 8K, high 24K, none 0), extended at both ends. A budget, not thinkingLevel:
# 2.5 models reject a level, and 3.x models still accept a budget.
_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
_MODES = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
T = TypeVar("T")


def _unsupported(field: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"gemini dialect: {what}", param=field, code="unsupported_parameter")


def _invalid(field: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"gemini dialect: {what}", param=field, code="invalid_value")


def decode_request(body: bytes) -> oa.ChatRequest:
    try:
        return oa.decode_request(body)
    except msgspec.ValidationError as e:
        m = _AT.search(str(e))
        text = str(e)[: m.start()] if m else str(e)
        raise _invalid(m.group("path") if m else "", f"invalid request: {text}") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}", code="invalid_json") from None


def chat_request(body: bytes) -> bytes:
    req = decode_request(body)
    if req.logit_bias:
        raise _unsupported("logit_bias", "Gemini has no logit_bias")
    signed = isinstance(req.model, str) and _SIGNED_MODELS.search(req.model) is not None
    system, contents = _contents(req.messages, signed=signed)
    out = g.GenerateContentRequest(contents=contents)
    if system:
        out.systemInstruction = g.Content(parts=system)
    if req.tools:
        out.tools = [g.Tool(functionDeclarations=_declarations(req.tools))]
    if req.tool_choice is not None and req.tool_choice is not UNSET:
        out.toolConfig = g.ToolConfig(functionCallingConfig=_tool_choice(req.tool_choice))
    cfg = _generation_config(req)
    if cfg != g.GenerationConfig():
        out.generationConfig = cfg
    return g.encode(out)


def _contents(messages: list[oa.Message], *, signed: bool) -> tuple[list[g.Part], list[g.Content]]:
    system: list[g.Part] = []
    contents: list[g.Content] = []
    calls: dict[str, str] = {}  # OpenAI tool call id -> function name, latest wins
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        role = "user"
        if m.role in ("system", "developer"):
            system.extend(g.Part(text=t) for t in _texts(m.content, f"{at}.content") if t)
            continue
        if m.role == "user":
            parts = _user_parts(m.content, f"{at}.content")
        elif m.role == "assistant":
            role = "model"
            parts = [g.Part(text=t) for t in _texts(m.content, f"{at}.content", assistant=True) if t]
            parts.extend(_calls(m, at, calls=calls, signed=signed))
        elif m.role == "tool":
            parts = [_tool_result(m, at, calls=calls)]
        elif m.role == "function":
            if not isinstance(m.name, str):
                raise _invalid(f"{at}.name", "a function message needs the function's name")
            parts = [g.Part(functionResponse=g.FunctionResponse(name=m.name, response=_response(m, at)))]
        else:
            raise _invalid(f"{at}.role", f"unknown role {m.role!r}")
        if not parts:
            continue  # Gemini refuses a turn without parts
        if contents and contents[-1].role == role:
            contents[-1].parts.extend(parts)  # Gemini wants user and model turns to alternate
        else:
            contents.append(g.Content(role=role, parts=parts))
    if not contents:
        raise _invalid("messages", "at least one user or assistant message with content is needed")
    return system, contents


def _texts(content: Any, at: str, *, assistant: bool = False) -> list[str]:
    if content is None or content is UNSET:
        return []
    if isinstance(content, str):
        return [content]
    out = []
    for j, p in enumerate(content):
        if p.type == "text" and isinstance(p.text, str):
            out.append(p.text)
        elif not (assistant and p.type == "refusal"):
            raise _invalid(f"{at}[{j}].type", f"a {p.type!r} part is not accepted here; only text")
    return out


def _user_parts(content: Any, at: str) -> list[g.Part]:
    if content is None or content is UNSET:
        return []
    if isinstance(content, str):
        return [g.Part(text=content)] if content else []
    parts = []
    for j, p in enumerate(content):
        here = f"{at}[{j}]"
        if p.type == "text" and isinstance(p.text, str):
            if p.text:
                parts.append(g.Part(text=p.text))
        elif p.type == "image_url" and isinstance(p.image_url, oa.ImageURL):
            parts.append(_image(p.image_url.url, f"{here}.image_url.url"))
        elif p.type == "input_audio" and isinstance(p.input_audio, oa.InputAudio):
            fmt = p.input_audio.format
            parts.append(g.Part(inlineData=g.Blob(mimeType=f"audio/{fmt}", data=p.input_audio.data)))
        elif p.type == "file":
            parts.append(_file(p.file, f"{here}.file"))
        else:
            raise _invalid(f"{here}.type", f"unsupported content part type {p.type!r}")
    return parts


def _file(f: oa.FileRef | UnsetType, at: str) -> g.Part:
    """A file sent inline -> inlineData of its media type (Gemini reads PDFs, text and
    the other types it documents; the upstream judges the type)."""
    if not isinstance(f, oa.FileRef):
        raise _invalid(at, "a file part needs its file object")
    if not f.file_data and f.file_id:
        raise document.file_id_refused(f"{at}.file_id", dialect=g.DIALECT)
    if not f.file_data:
        raise _invalid(f"{at}.file_data", "a file part needs file_data (a base64 data URL)")
    name = f.filename if isinstance(f.filename, str) else None
    inline = document.inline_file(f.file_data, filename=name, param=f"{at}.file_data")
    return g.Part(inlineData=g.Blob(mimeType=inline.media_type, data=inline.data))


def _data_url(url: str, at: str) -> tuple[str, str]:
    head, sep, data = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64") or not sep:
        raise _invalid(at, "expected a base64 data: URL (data:<mime type>;base64,<data>)")
    return head[5:-7] or "application/octet-stream", data


def _image(url: str, at: str) -> g.Part:
    if url.startswith("data:"):
        mime, data = _data_url(url, at)
        return g.Part(inlineData=g.Blob(mimeType=mime, data=data))
    if not url.startswith(("https://", "http://")):
        raise _invalid(at, "an image URL must be http(s) or a base64 data: URL")
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    ext = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ""
    return g.Part(fileData=g.FileData(mimeType=_IMAGE_TYPES.get(ext, "image/jpeg"), fileUri=url))


def _calls(m: oa.Message, at: str, *, calls: dict[str, str], signed: bool) -> list[g.Part]:
    if not m.tool_calls:
        return []
    parts = []
    for k, tc in enumerate(m.tool_calls):
        where = f"{at}.tool_calls[{k}].function.arguments"
        try:
            args = msgspec.json.decode(tc.function.arguments) if tc.function.arguments.strip() else {}
        except msgspec.DecodeError:
            raise _invalid(where, "the arguments are not valid JSON") from None
        if not isinstance(args, dict):
            raise _invalid(where, "the arguments must be a JSON object")
        full_id = tc.id if isinstance(tc.id, str) else ""
        bare, signature = convert.split_signature(full_id)
        if full_id:
            calls[full_id] = tc.function.name
        call = g.FunctionCall(name=tc.function.name, args=args, id=bare or UNSET)
        parts.append(g.Part(functionCall=call, thoughtSignature=signature or UNSET))
    if signed and all(p.thoughtSignature is UNSET for p in parts):
        parts[0].thoughtSignature = DUMMY_SIGNATURE
    return parts


def _tool_result(m: oa.Message, at: str, *, calls: dict[str, str]) -> g.Part:
    full_id = m.tool_call_id if isinstance(m.tool_call_id, str) else ""
    name = calls.get(full_id)
    if name is None:
        raise _invalid(f"{at}.tool_call_id", f"no earlier assistant tool call has the id {full_id!r}")
    bare, _ = convert.split_signature(full_id)
    return g.Part(functionResponse=g.FunctionResponse(name=name, response=_response(m, at), id=bare or UNSET))


def _response(m: oa.Message, at: str) -> dict[str, Any]:
    text = "".join(_texts(m.content, f"{at}.content"))
    if text.startswith("{"):
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"content": text}


def _declarations(tools: list[oa.Tool]) -> list[g.FunctionDeclaration]:
    out = []
    for i, t in enumerate(tools):
        f = t.function
        if t.type != "function" or not isinstance(f, oa.FunctionDefinition):
            raise _unsupported(f"tools[{i}].type", f"only function tools are supported, not {t.type!r}")
        d = g.FunctionDeclaration(name=f.name)
        if isinstance(f.description, str):
            d.description = f.description
        if f.parameters is not None and f.parameters is not UNSET:
            d.parametersJsonSchema = f.parameters
        out.append(d)
    return out


def _tool_choice(choice: str | oa.ToolChoice) -> g.FunctionCallingConfig:
    if isinstance(choice, str):
        if choice not in _MODES:
            raise _invalid("tool_choice", f"unknown tool_choice {choice!r}")
        return g.FunctionCallingConfig(mode=_MODES[choice])
    if choice.type == "function" and isinstance(choice.function, oa.NamedFunction):
        return g.FunctionCallingConfig(mode="ANY", allowedFunctionNames=[choice.function.name])
    if choice.type == "allowed_tools" and isinstance(choice.allowed_tools, oa.AllowedTools):
        allowed = choice.allowed_tools
        names = [t.function.name for t in allowed.tools if isinstance(t.function, oa.FunctionDefinition)]
        # VALIDATED: a call among the allowed names or plain text, OpenAI's "auto".
        mode = "ANY" if allowed.mode == "required" else "VALIDATED"
        return g.FunctionCallingConfig(mode=mode, allowedFunctionNames=names)
    raise _invalid("tool_choice.type", f"unsupported tool_choice type {choice.type!r}")


def _set(v: Any) -> bool:
    return v is not None and v is not UNSET


def _opt(v: T | UnsetType | None) -> T | UnsetType:
    """An OpenAI field that may be null, as an optional Gemini field."""
    return UNSET if v is None else v


def _generation_config(req: oa.ChatRequest) -> g.GenerationConfig:
    limit = req.max_completion_tokens if _set(req.max_completion_tokens) else req.max_tokens
    stop = [req.stop] if isinstance(req.stop, str) else req.stop or UNSET
    cfg = g.GenerationConfig(
        temperature=_opt(req.temperature),
        topP=_opt(req.top_p),
        topK=_opt(req.top_k),
        candidateCount=_opt(req.n),
        maxOutputTokens=_opt(limit),
        stopSequences=stop,
        seed=_opt(req.seed),
        presencePenalty=_opt(req.presence_penalty),
        frequencyPenalty=_opt(req.frequency_penalty),
    )
    if req.logprobs:
        cfg.responseLogprobs = True
        if req.top_logprobs:
            cfg.logprobs = req.top_logprobs
    if isinstance(req.response_format, oa.ResponseFormat):
        _response_format(req.response_format, cfg)
    if isinstance(req.reasoning_effort, str):
        if req.reasoning_effort not in _BUDGETS:
            raise _invalid("reasoning_effort", f"unknown reasoning_effort {req.reasoning_effort!r}")
        budget = _BUDGETS[req.reasoning_effort]
        cfg.thinkingConfig = g.ThinkingConfig(thinkingBudget=budget, includeThoughts=True if budget else UNSET)
    return cfg


def _response_format(rf: oa.ResponseFormat, cfg: g.GenerationConfig) -> None:
    if rf.type == "text":
        return
    if rf.type not in ("json_object", "json_schema"):
        raise _invalid("response_format.type", f"unsupported response_format type {rf.type!r}")
    cfg.responseMimeType = "application/json"
    if rf.type == "json_schema" and isinstance(rf.json_schema, oa.JSONSchema) and _set(rf.json_schema.schema):
        cfg.responseJsonSchema = rf.json_schema.schema


def chat_response(data: bytes, *, model: str, created: int) -> bytes:
    try:
        r = g.decode_response(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"gemini upstream answered with a body that is not a response: {e}") from None
    token = convert.id_token(r.responseId or None)
    choices: list[oa.Choice] = []
    n = 0
    for pos, c in enumerate(r.candidates or ()):
        choice, n = _choice(c, pos=pos, token=token, n=n)
        choices.append(choice)
    if not choices:
        if not isinstance(r.promptFeedback, g.PromptFeedback) or r.promptFeedback.blockReason is UNSET:
            raise UpstreamProtocolError("gemini upstream answered with no candidates and no block reason")
        choices.append(oa.Choice(index=0, message=oa.ResponseMessage(content=""), finish_reason="content_filter"))
    out = oa.ChatCompletion(
        id=r.responseId or "chatcmpl-" + os.urandom(12).hex(), created=created, model=model, choices=choices
    )
    if isinstance(r.usageMetadata, g.UsageMetadata):
        out.usage = convert.openai_usage(r.usageMetadata)
    return oa.encode(out)


def _choice(c: g.Candidate, *, pos: int, token: str, n: int) -> tuple[oa.Choice, int]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[oa.ToolCall] = []
    parts = c.content.parts if isinstance(c.content, g.Content) else []
    for p in parts:
        if isinstance(p.functionCall, g.FunctionCall):
            fc = p.functionCall
            call_id = fc.id if isinstance(fc.id, str) and fc.id else convert.call_id(token, n)
            n += 1
            sig = p.thoughtSignature if isinstance(p.thoughtSignature, str) else None
            args = oa.encode(fc.args if isinstance(fc.args, dict) else {}).decode()
            fn = oa.FunctionCall(name=fc.name, arguments=args)
            calls.append(oa.ToolCall(id=convert.with_signature(call_id, sig), function=fn))
        elif isinstance(p.text, str):
            (thoughts if p.thought is True else texts).append(p.text)
    message = oa.ResponseMessage(content="".join(texts) if texts else None if calls else "")
    if thoughts:
        message.reasoning = "".join(thoughts)
    if calls:
        message.tool_calls = calls
    reason = convert.finish_reason(c.finishReason or "STOP", has_calls=bool(calls))
    choice = oa.Choice(index=c.index if isinstance(c.index, int) else pos, message=message, finish_reason=reason)
    if isinstance(c.logprobsResult, g.LogprobsResult):
        choice.logprobs = convert.openai_logprobs(c.logprobsResult)
    return choice, n


def error_body(status: int, data: bytes) -> bytes:
    status_name, message = convert.rpc_status(status), ""
    try:
        err = g.decode_error(data)
        first = err[0] if isinstance(err, list) else err
        message = first.error.message
        if isinstance(first.error.status, str):
            status_name = first.error.status
    except (msgspec.ValidationError, msgspec.DecodeError, IndexError):
        message = f"gemini upstream answered HTTP {status}: {data[:500].decode('utf-8', 'replace')}"
    detail = oa.ErrorDetail(message=message, type=convert.openai_error_type(status), code=status_name)
    return oa.encode(oa.ErrorBody(error=detail))
