"""What the fake LLM reads of a chat request that offers tools, and the one call it
answers with (see ``providers.mock``): decoded only when ``tools`` is present, so a
request without tools pays nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from gateway.errors import InvalidRequest
from gateway.providers.mock_schema import Schema, SchemaError, example


# What the fake reads of a request that offers tools.
class _Role(Struct, kw_only=True):
    role: str = ""


class _Function(Struct, kw_only=True):
    name: str
    parameters: Schema | bool | None = None
    strict: bool | None = None  # every property filled, as OpenAI's strict mode makes them required


class _Tool(Struct, kw_only=True):
    function: _Function


class _Named(Struct, kw_only=True):
    name: str


class _ToolChoice(Struct, kw_only=True):
    function: _Named | None = None


_decode_roles = msgspec.json.Decoder(list[_Role] | None).decode
_decode_tools = msgspec.json.Decoder(list[_Tool] | None).decode
_decode_tool_choice = msgspec.json.Decoder(str | _ToolChoice | None).decode
_encode = msgspec.json.Encoder().encode
_T = TypeVar("_T")


class ToolCall(Struct, kw_only=True, frozen=True):
    """The one call a tool-calling answer makes."""

    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it


def _decoded(decode: Callable[[Raw], _T], raw: Raw, *, param: str) -> _T:
    try:
        return decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as e:
        raise InvalidRequest(f"mock provider: invalid {param}: {e}", param=param) from None


def tool_call(*, tools: Raw, tool_choice: Raw | UnsetType, messages: Raw | UnsetType, serial: int) -> ToolCall | None:
    """The call a request that offers ``tools`` is answered with; None for text. Raises
    InvalidRequest (param ``tools``, ``tool_choice`` or ``messages``) for shapes the fake
    cannot read and for a forced tool that is not offered."""
    offered = _decoded(_decode_tools, tools, param="tools")
    if not offered:
        return None
    choice = None if tool_choice is UNSET else _decoded(_decode_tool_choice, tool_choice, param="tool_choice")
    if choice == "none":
        return None
    fn = offered[0].function
    if isinstance(choice, _ToolChoice) and choice.function is not None:
        name = choice.function.name
        forced = next((t.function for t in offered if t.function.name == name), None)
        if forced is None:
            raise InvalidRequest(
                f"mock provider: tool_choice names the function {name!r}, which is not in tools",
                param="tool_choice",
            )
        fn = forced
    if messages is not UNSET:
        roles = _decoded(_decode_roles, messages, param="messages")
        if roles and roles[-1].role == "tool":
            return None  # the model has its tool result: it answers
    arguments = _arguments(fn.parameters, strict=bool(fn.strict))
    return ToolCall(id=f"call_mock{serial:012d}", name=fn.name, arguments=arguments)


def _arguments(params: Schema | bool | None, *, strict: bool) -> str:
    """Arguments valid against the tool's parameters (``providers.mock_schema``); a
    part of the schema the fake cannot read is null, as before a model's own guess."""
    if params is None:
        return "{}"
    try:
        value = example(params, fill_all=strict, lenient=True)
    except SchemaError as e:
        raise InvalidRequest(f"mock provider: tools: {e}", param="tools") from None
    return _encode(value).decode() if isinstance(value, dict) else "{}"
