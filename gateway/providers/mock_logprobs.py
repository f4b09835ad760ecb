"""The fake LLM's log probabilities, for a chat request with ``logprobs: true``: one
entry per token of its text answer (a word, or a fragment of structured content: what
one stream chunk carries), in OpenAI's ``choices[].logprobs.content`` shape, the same
for the same token at the same position. ``logprob`` is ``-0.125`` times 1 to 7 by
position (exact in binary, so every JSON reader gets the same number); with
``top_logprobs`` N, N alternatives: the token itself first, then other words, each
half a nat less likely than the one before."""

from __future__ import annotations

import msgspec

_encode = msgspec.json.Encoder().encode

# Not among the fake's answer words, so an alternative never repeats the chosen token.
_ALTERNATIVES = [
    "maybe",
    "perhaps",
    "often",
    "also",
    "then",
    "still",
    "quite",
    "rather",
    "just",
    "even",
    "more",
    "less",
    "some",
    "any",
    "each",
    "such",
    "very",
    "only",
    "again",
    "soon",
]
_STEP = 0.125
_CYCLE = 7
# OpenAI's bound on top_logprobs.
MAX_TOP = 20


def _one(token: str, logprob: float) -> bytes:
    return b'"token":%s,"logprob":%s,"bytes":%s' % (_encode(token), _encode(logprob), _encode(list(token.encode())))


def entry(token: str, *, position: int, top: int) -> bytes:
    """One token's entry (JSON)."""
    logprob = -_STEP * (1 + position % _CYCLE)
    space = " " if token.startswith(" ") else ""
    tops = [_one(token, logprob)] if top else []
    for k, alt in enumerate(_ALTERNATIVES[: max(0, min(top, MAX_TOP) - 1)], 1):
        tops.append(_one(space + alt, logprob - 0.5 * k))
    return b'{%s,"top_logprobs":[%s]}' % (_one(token, logprob), b",".join(b"{%s}" % t for t in tops))


def content(tokens: list[str], *, top: int) -> bytes:
    """A choice's ``logprobs`` object for these tokens, from position 0."""
    entries = b",".join(entry(t, position=i, top=top) for i, t in enumerate(tokens))
    return b'{"content":[%s],"refusal":null}' % entries
