"""A kept answer in either form: a stream's frames assembled into one completion object,
a completion object split into stream chunks, so that a request hits an entry whatever
form the entry was made in. Both sides are the OpenAI dialect (``chat.completion`` /
``chat.completion.chunk``, ``text_completion``); only hits come here, never a relay."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.relay.sse import data_of, split

_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode
DONE_FRAME = b"data: [DONE]\n\n"
# Delta fields that are text, added up over the chunks (reasoning: the mock's, vLLM's;
# reasoning_content: DeepSeek's).
_TEXT_FIELDS = ("content", "reasoning", "reasoning_content", "refusal")
# Chunk fields copied onto the assembled object from the first chunk that has them.
_HEAD_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


def _chunks(frames: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for region in frames:
        for frame in split(region):
            data = data_of(frame)
            if data is None or data == b"[DONE]":
                continue
            chunk = _decode(data)
            if isinstance(chunk, dict):
                out.append(chunk)
    return out


def _merge_tool_calls(into: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
    """Streamed tool calls merged by their index: id, type and name as first sent, the
    arguments added up."""
    for piece in calls:
        i = piece.get("index", 0)
        while len(into) <= i:
            into.append({"id": None, "type": "function", "function": {"name": None, "arguments": ""}})
        call = into[i]
        if piece.get("id"):
            call["id"] = piece["id"]
        if piece.get("type"):
            call["type"] = piece["type"]
        fn = piece.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] = fn["name"]
        if fn.get("arguments"):
            call["function"]["arguments"] += fn["arguments"]


def assemble(frames: list[bytes], *, text: bool) -> dict[str, Any]:
    """The completion object a stream's frames add up to (``text``: a text completion).
    Its usage is the stream's own, or absent when the stream carried none."""
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in _chunks(frames):
        for name in _HEAD_FIELDS:
            if name not in head and chunk.get(name) is not None:
                head[name] = chunk[name]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for c in chunk.get("choices") or ():
            acc = choices.setdefault(c.get("index", 0), {"parts": {}, "tool_calls": [], "finish_reason": None})
            if c.get("finish_reason") is not None:
                acc["finish_reason"] = c["finish_reason"]
            logprobs = c.get("logprobs")
            if logprobs:
                # Every list added up: a chat choice's content (and refusal), a text
                # completion's tokens, token_logprobs, top_logprobs and text_offset.
                for name, values in logprobs.items():
                    if isinstance(values, list) and values:
                        acc.setdefault("logprobs", {}).setdefault(name, []).extend(values)
            if text:
                acc["parts"]["text"] = acc["parts"].get("text", "") + (c.get("text") or "")
                continue
            delta = c.get("delta") or {}
            if delta.get("role"):
                acc["role"] = delta["role"]
            for name in _TEXT_FIELDS:
                if delta.get(name):
                    acc["parts"][name] = acc["parts"].get(name, "") + delta[name]
            if delta.get("tool_calls"):
                _merge_tool_calls(acc["tool_calls"], delta["tool_calls"])
    out: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "text_completion" if text else "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
    }
    for name in ("system_fingerprint", "service_tier"):
        if name in head:
            out[name] = head[name]
    out["choices"] = [_choice(i, acc, text=text) for i, acc in sorted(choices.items())]
    if usage is not None:
        out["usage"] = usage
    return out


def _choice(index: int, acc: dict[str, Any], *, text: bool) -> dict[str, Any]:
    parts = acc["parts"]
    logprobs = acc.get("logprobs")
    if text:
        text_part = parts.get("text", "")
        return {"index": index, "text": text_part, "logprobs": logprobs, "finish_reason": acc["finish_reason"]}
    message: dict[str, Any] = {"role": acc.get("role", "assistant"), "content": parts.get("content")}
    for name in ("reasoning", "reasoning_content", "refusal"):
        if name in parts:
            message[name] = parts[name]
    if acc["tool_calls"]:
        message["tool_calls"] = acc["tool_calls"]
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": acc["finish_reason"]}


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + _encode(chunk) + b"\n\n"


def split_answer(body: dict[str, Any], *, text: bool) -> list[bytes]:
    """A completion object as the stream that would have carried it: per choice one chunk
    with its whole content, then one with its finish reason; then the usage-only chunk
    (when the object has usage) and ``[DONE]``. One region per frame."""
    head = {
        "id": body.get("id", ""),
        "object": "text_completion" if text else "chat.completion.chunk",
        "created": body.get("created", 0),
        "model": body.get("model", ""),
    }
    if body.get("system_fingerprint") is not None:
        head["system_fingerprint"] = body["system_fingerprint"]
    frames = []
    choices = body.get("choices") or []
    for c in choices:
        index = c.get("index", 0)
        if text:
            part: dict[str, Any] = {"index": index, "text": c.get("text") or "", "logprobs": c.get("logprobs")}
        else:
            message = c.get("message") or {}
            delta = {k: v for k, v in message.items() if v is not None and k != "tool_calls"}
            calls = message.get("tool_calls")
            if calls:
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
            part = {"index": index, "delta": delta, "logprobs": c.get("logprobs")}
        part["finish_reason"] = None
        frames.append(_frame({**head, "choices": [part]}))
    for c in choices:
        index = c.get("index", 0)
        part = {"index": index, "text": ""} if text else {"index": index, "delta": {}}
        part["finish_reason"] = c.get("finish_reason") or "stop"
        frames.append(_frame({**head, "choices": [part]}))
    usage = body.get("usage")
    if usage:
        frames.append(_frame({**head, "choices": [], "usage": usage}))
    frames.append(DONE_FRAME)
    return frames
