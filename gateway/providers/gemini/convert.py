"""Field-level conversions both directions share: usage, finish reasons, logprobs,
tool call ids (with the thought signatures they carry) and error statuses."""

from __future__ import annotations

import hashlib
import os

from gateway.providers.gemini import chat_wire as oa
from gateway.providers.gemini import wire as g

# A Gemini thought signature rides in the OpenAI tool call id, after this marker:
# "<id>|ts:<base64 signature>". The id is the one field every OpenAI client echoes
# back verbatim (in the assistant's tool_calls and in the tool message), so the
# signature survives clients that rebuild messages from typed objects and drop
# unknown fields. Base64 never contains "|".
SIGNATURE_MARK = "|ts:"


def with_signature(call_id: str, signature: str | None) -> str:
    return call_id + SIGNATURE_MARK + signature if signature else call_id


def split_signature(call_id: str) -> tuple[str, str | None]:
    at = call_id.find(SIGNATURE_MARK)
    if at < 0:
        return call_id, None
    return call_id[:at], call_id[at + len(SIGNATURE_MARK) :] or None


def id_token(seed: str | None) -> str:
    """8 hex digits naming one response: derived from Gemini's responseId when there is
    one (so the same answer always gets the same ids), random otherwise. Keeps generated
    tool call ids unique across the turns of a conversation, which clients that key
    tool results by id (UI state, agent frameworks) rely on."""
    if seed:
        return hashlib.blake2b(seed.encode(), digest_size=4).hexdigest()
    return os.urandom(4).hex()


def call_id(token: str, n: int) -> str:
    return f"call_{token}_{n}"


# Gemini finishReason -> OpenAI finish_reason; anything else is "stop".
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
_REVERSE_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}


def finish_reason(reason: str, *, has_calls: bool) -> str:
    mapped = _FINISH.get(reason, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def gemini_finish(reason: str) -> str:
    return _REVERSE_FINISH.get(reason, "STOP")


def openai_usage(u: g.UsageMetadata) -> oa.Usage:
    # promptTokenCount already counts the cached tokens; the tool-use prompt (results of
    # server-side tools) is input too. Thoughts are output the model was billed for.
    prompt = u.promptTokenCount + u.toolUsePromptTokenCount
    completion = u.candidatesTokenCount + u.thoughtsTokenCount
    usage = oa.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    if u.cachedContentTokenCount:
        c = u.cachedContentTokenCount
        usage.prompt_tokens_details = oa.PromptDetails(cached_tokens=c, cached_read_tokens=c)
    if u.thoughtsTokenCount:
        usage.completion_tokens_details = oa.CompletionDetails(reasoning_tokens=u.thoughtsTokenCount)
    return usage


def _int(v: object) -> int:
    return v if isinstance(v, int) else 0


def gemini_usage(u: oa.Usage) -> g.UsageMetadata:
    pd, cd = u.prompt_tokens_details, u.completion_tokens_details
    cached = (_int(pd.cached_tokens) or _int(pd.cached_read_tokens)) if isinstance(pd, oa.PromptDetails) else 0
    thoughts = _int(cd.reasoning_tokens) if isinstance(cd, oa.CompletionDetails) else 0
    return g.UsageMetadata(
        promptTokenCount=u.prompt_tokens,
        candidatesTokenCount=max(u.completion_tokens - thoughts, 0),
        thoughtsTokenCount=thoughts,
        cachedContentTokenCount=cached,
        totalTokenCount=_int(u.total_tokens) or u.prompt_tokens + u.completion_tokens,
    )


def openai_logprobs(r: g.LogprobsResult) -> oa.Logprobs:
    tops = r.topCandidates
    content = []
    for i, c in enumerate(r.chosenCandidates):
        top = (
            [oa.TopLogprob(token=t.token, logprob=t.logProbability) for t in tops[i].candidates]
            if i < len(tops)
            else []
        )
        content.append(oa.TokenLogprob(token=c.token, logprob=c.logProbability, top_logprobs=top))
    return oa.Logprobs(content=content)


def gemini_logprobs(lp: oa.Logprobs) -> g.LogprobsResult | None:
    if not lp.content:
        return None
    chosen, tops = [], []
    for t in lp.content:
        chosen.append(g.LogprobsCandidate(token=t.token, logProbability=t.logprob))
        top = [g.LogprobsCandidate(token=x.token, logProbability=x.logprob) for x in t.top_logprobs]
        tops.append(g.TopCandidates(candidates=top))
    has_top = any(t.candidates for t in tops)
    return g.LogprobsResult(chosenCandidates=chosen, topCandidates=tops if has_top else [])


# HTTP status -> google.rpc.Code name, as the Gemini API reports them.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def rpc_status(http_status: int) -> str:
    if http_status in _STATUS:
        return _STATUS[http_status]
    return "INTERNAL" if http_status >= 500 else "FAILED_PRECONDITION" if http_status >= 400 else "UNKNOWN"


# OpenAI error type -> HTTP status, for errors that arrive in band without one.
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "server_error": 500,
    "upstream_error": 502,
}


def status_of_type(kind: str | None, code: str | int | None) -> int:
    if code == "upstream_timeout":
        return 504
    if code in ("server_shutting_down", "store_unavailable"):
        return 503  # UNAVAILABLE: try again, elsewhere or shortly
    return _TYPE_STATUS.get(kind or "", 500)


def openai_error_type(http_status: int) -> str:
    if http_status == 401:
        return "authentication_error"
    if http_status == 403:
        return "permission_error"
    if http_status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if 400 <= http_status < 500 else "server_error"
