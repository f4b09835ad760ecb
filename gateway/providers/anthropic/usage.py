"""Usage and stop reasons between the dialects.

Anthropic counts input three ways (``input_tokens`` excludes the cache); OpenAI's
``prompt_tokens`` is the whole prompt, cached reads and cache writes included, and the
split is kept in ``prompt_tokens_details``.
"""

from __future__ import annotations

from msgspec import Raw

from gateway.providers.anthropic.schema import (
    ChatUsage,
    ChatUsageOut,
    CompletionDetailsOut,
    PromptDetailsOut,
    Usage,
    UsageOut,
)

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # A server tool's long turn paused; the client resends to continue: a stop.
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def stop_reason(finish: str | None) -> str:
    return STOP_REASONS.get(finish or "stop", "end_turn")


def chat_usage(
    *, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, thinking: int
) -> ChatUsageOut:
    """Anthropic counts -> the OpenAI usage object of the gateway's conventions."""
    prompt = input_tokens + cache_read + cache_write
    out = ChatUsageOut(prompt_tokens=prompt, completion_tokens=output_tokens, total_tokens=prompt + output_tokens)
    if cache_read or cache_write:
        out.prompt_tokens_details = PromptDetailsOut(
            cached_tokens=cache_read, cached_read_tokens=cache_read, cached_write_tokens=cache_write
        )
    if thinking:
        out.completion_tokens_details = CompletionDetailsOut(reasoning_tokens=thinking)
    return out


def from_anthropic(usage: Usage | None) -> ChatUsageOut:
    u = usage or Usage()
    details = u.output_tokens_details
    return chat_usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_read=u.cache_read_input_tokens or 0,
        cache_write=u.cache_creation_input_tokens or 0,
        thinking=(details.thinking_tokens or 0) if details else 0,
    )


def to_anthropic(usage: ChatUsage | None) -> UsageOut:
    """OpenAI usage -> Anthropic's. ``cached_tokens`` is OpenAI's own name for cache
    reads; ``cached_read_tokens`` / ``cached_write_tokens`` are the gateway's."""
    u = usage or ChatUsage()
    p = u.prompt_tokens_details
    read = (p.cached_read_tokens if p.cached_read_tokens is not None else p.cached_tokens or 0) if p else 0
    write = (p.cached_write_tokens or 0) if p else 0
    out = UsageOut(
        input_tokens=max(u.prompt_tokens - read - write, 0),
        output_tokens=u.completion_tokens,
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
    )
    c = u.completion_tokens_details
    if c and c.reasoning_tokens:
        out.output_tokens_details = Raw(b'{"thinking_tokens":%d}' % c.reasoning_tokens)
    return out
