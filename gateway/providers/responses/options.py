"""A Responses request's options -> the chat request's fields: its tools and
``tool_choice`` (``allowed_tools`` as the allowed tools and the mode), ``text`` (format,
verbosity), ``include`` with ``top_logprobs``, ``truncation``; and the 400s naming the
field a request gets wrong, shared with the items' translation (``request``)."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from gateway.errors import InvalidRequest
from gateway.providers.responses.wire import NamedChoice, ResponsesRequest, TextConfig, ToolDef

Message = dict[str, object]

# OpenAI's ResponseIncludable, whole: a value outside it is OpenAI's 400 too.
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
LOGPROBS = "message.output_text.logprobs"
_TRUNCATION = ("auto", "disabled")


def bad(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code=code)


def need(value: str | UnsetType | None, param: str) -> str:
    if not isinstance(value, str):
        raise bad(param, "Field required")
    return value


def _tool(tool: ToolDef, i: int) -> Message:
    if tool.type != "function":
        raise bad(
            f"tools[{i}].type",
            f"built-in tool {tool.type!r} is not available through this gateway; declare a function tool instead",
            "unsupported_parameter",
        )
    fn: Message = {"name": need(tool.name, f"tools[{i}].name")}
    if isinstance(tool.description, str):
        fn["description"] = tool.description
    if tool.parameters is not UNSET and bytes(tool.parameters) != b"null":
        fn["parameters"] = tool.parameters
    if isinstance(tool.strict, bool):
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def _allowed(choice: NamedChoice, offered: list[ToolDef]) -> set[str]:
    """The names ``allowed_tools`` lets the model call, each one of the request's
    function tools."""
    if choice.mode not in ("auto", "required"):
        raise bad("tool_choice.mode", "must be 'auto' or 'required'")
    if not choice.tools:
        raise bad("tool_choice.tools", "Field required: at least one of the request's function tools")
    names = {t.name for t in offered if isinstance(t.name, str)}
    allowed: set[str] = set()
    for i, t in enumerate(choice.tools):
        if t.type != "function" or not isinstance(t.name, str) or t.name not in names:
            named = t.name if isinstance(t.name, str) else t.type
            raise bad(
                f"tool_choice.tools[{i}]",
                f"allowed tool {named!r} is not among the request's tools; name a function tool of 'tools' "
                'as {"type": "function", "name": ...}',
            )
        allowed.add(t.name)
    return allowed


def tools(req: ResponsesRequest, fields: Message) -> None:
    """``tools`` and ``tool_choice``; ``allowed_tools`` leaves in ``tools`` only the
    allowed ones, and its mode (``auto``, ``required``) is the chat ``tool_choice``, so
    every provider's translation honours it."""
    offered = req.tools or []
    chat = [_tool(t, i) for i, t in enumerate(offered)]
    choice = req.tool_choice
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad("tool_choice", "must be 'auto', 'none', 'required', a function or allowed_tools")
        fields["tool_choice"] = choice
    elif isinstance(choice, NamedChoice):
        if choice.type == "function":
            fields["tool_choice"] = {"type": "function", "function": {"name": need(choice.name, "tool_choice.name")}}
        elif choice.type == "allowed_tools":
            allowed = _allowed(choice, offered)
            chat = [c for c, t in zip(chat, offered, strict=True) if t.name in allowed]
            fields["tool_choice"] = choice.mode
        else:
            raise bad(
                "tool_choice.type",
                f"tool_choice type {choice.type!r} is not supported; use 'function' or 'allowed_tools'",
            )
    if chat:
        fields["tools"] = chat


def text_format(text: TextConfig, fields: Message) -> None:
    fmt = text.format
    if isinstance(text.verbosity, str):
        fields["verbosity"] = text.verbosity
    if fmt is UNSET or fmt is None or fmt.type == "text":
        return
    if fmt.type == "json_object":
        fields["response_format"] = {"type": "json_object"}
    elif fmt.type == "json_schema":
        schema: Message = {"name": need(fmt.name, "text.format.name")}
        if fmt.schema is UNSET:
            raise bad("text.format.schema", "Field required")
        schema["schema"] = fmt.schema
        if isinstance(fmt.description, str):
            schema["description"] = fmt.description
        if isinstance(fmt.strict, bool):
            schema["strict"] = fmt.strict
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise bad("text.format.type", "must be 'text', 'json_object' or 'json_schema'")


def include(req: ResponsesRequest, fields: Message) -> None:
    """``include``: each value one of OpenAI's; the output text's logprobs ask the chat
    request for ``logprobs`` (and ``top_logprobs``). The others need nothing sent: a
    reasoning item carries ``encrypted_content`` whenever the provider signed its
    reasoning, and a translated request has no hosted-tool results or input image URLs
    to include."""
    wanted = req.include or []
    for i, value in enumerate(wanted):
        if value not in INCLUDABLE:
            raise bad(f"include[{i}]", f"{value!r} is not one of {', '.join(sorted(INCLUDABLE))}")
    if LOGPROBS in wanted:
        fields["logprobs"] = True
        if isinstance(req.top_logprobs, int):
            fields["top_logprobs"] = req.top_logprobs


def truncation(req: ResponsesRequest) -> None:
    """``auto`` is accepted and not done: it needs each model's context window."""
    if req.truncation is not UNSET and req.truncation is not None and req.truncation not in _TRUNCATION:
        raise bad("truncation", "must be 'auto' or 'disabled'")
