"""The attempt loop: each target in order (the primary, then each fallback), each with
its provider's concurrency slot, key choice and retries.

Retries (``retries.max_retries`` per provider), key rotation and fallbacks follow one
policy, ``gateway.errors.classify``: a 429, 401 or 403 moves to another key of the
provider (the key cools down, see ``routing.keys``); a 5xx, timeout or network failure
retries after a backoff (exponential, full jitter, an upstream's Retry-After when it sent
one), never past the request's timeout; a 4xx other than those is the request's own
fault: no retry, no fallback.
All failing: the primary's error, with every attempt listed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config import RetryConfig
from gateway.errors import Attempt, GatewayError, UpstreamError, UpstreamStatusError, classify
from gateway.relay import translate
from gateway.relay.call import Call, status_error
from gateway.routing.limits import Limiter, ProviderBusy
from gateway.routing.table import Target
from gateway.upstream.client import Reply

T = TypeVar("T")
# One attempt on one target with one key (index into the provider's KeyRing).
Op = Callable[[Target, bytes, int], Awaitable[T]]


class NoKeyForModel(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "no_key_for_model"


def lone_attempt(call: Call) -> tuple[Target, bytes, int] | None:
    """(target, body, key) when the call is one attempt and nothing more: one target,
    no concurrency cap, no retries, no pinned key, no client key. The caller makes that
    attempt itself (``note``-ing its key's outcome) instead of entering the loop below,
    which saves two coroutine frames on every resumption of the request (~2-3 µs a request)."""
    targets, options = call.targets, call.options
    if len(targets) != 1 or options.pinned_key is not None or options.direct_key is not None:
        return None
    target, body = targets[0]
    provider = target.provider
    if provider.limiter is not None or provider.retries.max_retries or type(body) is not bytes or target.twin:
        return None
    key = provider.keys.choose(target.model)
    return None if key is None else (target, body, key)


def note_failure(target: Target, key: int, e: UpstreamError) -> None:
    """An attempt with key ``key`` failed upstream: the key is marked as ``classify`` says."""
    keys = target.provider.keys
    keys.failed(key, classify(e, key_cooldown_s=keys.cooldown_s), status=_status(e))


def _status(e: UpstreamError) -> int | None:
    return e.status if isinstance(e, UpstreamStatusError) else None


async def first_success(call: Call, op: Op[T]) -> tuple[T, int, Limiter | None]:
    """The first target's result, its index, and the concurrency slot it holds (the
    caller releases it once the answer has been relayed)."""
    errors: list[tuple[Target, GatewayError]] = []
    targets = call.targets
    index = 0
    while index < len(targets):
        target, body = targets[index]
        limiter = target.provider.limiter
        try:
            if isinstance(body, GatewayError):
                raise body  # this target refused the request when it was translated
            if limiter is not None:
                await limiter.acquire()
            try:
                result = await _retrying(call, target, body, op)
            except BaseException:
                if limiter is not None:
                    limiter.release()
                raise
        except GatewayError as e:
            if target.twin is not None and lacks_route(e):
                # responses: auto, and the server has no such route: its translated twin
                # takes this target's place (and every later request's, ``NativeResponses``).
                target.provider.responses.lacks(call.endpoint)
                targets[index] = target.twin
                continue
            if isinstance(e, ProviderBusy):
                call.ledger.metrics.for_provider(target.provider.name).busy += 1
            errors.append((target, e))
            if not classify(e).fall_back:
                break
            index += 1
            continue
        if index:
            call.ledger.metrics.for_provider(target.provider.name).fallbacks += 1
        return result, index, limiter
    raise _final(errors)


def lacks_route(e: GatewayError) -> bool:
    """Whether a native Responses attempt's error says the server has no such route
    (405, 501, or a 404 that is not about the model: "Not Found", "404 page not found",
    OpenAI's own "Invalid URL"), rather than refusing this request."""
    if not isinstance(e, UpstreamStatusError) or e.status not in (404, 405, 501):
        return False
    if e.status != 404:
        return True
    text = e.upstream_body if e.upstream_body is not None else e.message.partition(" answered HTTP 404")[2].encode()
    return b"model" not in text.lower()


def _final(errors: list[tuple[Target, GatewayError]]) -> GatewayError:
    first = errors[0][1]
    if len(errors) > 1:
        first.attempts = [
            Attempt(provider=t.provider.name, model=t.model, status=e.status, code=e.code, message=e.message)
            for t, e in errors
        ]
    return first


async def _retrying(call: Call, target: Target, body: bytes, op: Op[T]) -> T:
    provider = target.provider
    keys, cfg = provider.keys, provider.retries
    # A client's own key (x-bf-direct-key) replaces every configured key: it is never
    # chosen, rotated or cooled down; ``op`` sends it whatever the index.
    options = call.options
    direct = options.direct_key is not None
    pinned = 0 if direct else keys.index(options.pinned_key) if options.pinned_key else None
    excluded: set[int] = set()
    attempt = 0
    while True:
        key = pinned if pinned is not None else keys.choose(target.model, exclude=excluded)
        if key is None:
            raise NoKeyForModel(
                f"no API key of provider '{provider.name}' may be used for model '{target.model}'", param="model"
            )
        try:
            result = await op(target, body, key)
        except UpstreamError as e:
            failure = classify(e, key_cooldown_s=keys.cooldown_s)
            if not direct:
                keys.failed(key, failure, status=_status(e))
            if attempt >= cfg.max_retries or not (failure.retry or failure.rotate_key):
                raise
            if failure.rotate_key and pinned is None:
                excluded.add(key)
                if keys.choose(target.model, exclude=excluded) is None:
                    if not failure.retry:
                        raise  # refused with every key
                    excluded.clear()  # rate-limited on every key: wait, then any
            elif not failure.retry:
                raise  # the pinned (or client's) key was refused: another try gives the same answer
            retry_after = e.retry_after_s if isinstance(e, UpstreamStatusError) else None
            delay = backoff_s(cfg, attempt=attempt, retry_after_s=retry_after)
            limits = options.timeouts
            deadline = call.t0 + ((limits.request_s if limits else None) or provider.request_s)
            if time.perf_counter() + delay >= deadline:
                raise
            call.ledger.metrics.for_provider(provider.name).retries += 1
            await asyncio.sleep(delay)
            attempt += 1
            continue
        if not direct:
            keys.succeeded(key)
        return result


def backoff_s(cfg: RetryConfig, *, attempt: int, retry_after_s: float | None) -> float:
    """Full jitter over an exponentially growing cap; an upstream's Retry-After wins
    when it is within the cap."""
    if retry_after_s is not None and retry_after_s <= cfg.backoff_max_s:
        return retry_after_s
    return random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_initial_s * 2**attempt))


async def exchange(
    call: Call, target: Target, opener: Callable[[], Awaitable[Reply]]
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """One upstream request (``opener``: sends it, e.g. ``call.send(...)`` or the
    provider's ``resource(...)``) and its whole answer, the wait counted in
    ``call.upstream_s``: the status, the body and the headers the client may see, the
    headers scrubbed of the provider's keys; an error answer (its body scrubbed, then
    translated from the target's dialect) raised as the status error, in OpenAI's form.
    The start of the whole-answer calls other than chat's (``relay.embed``,
    ``relay.count``, the stored responses' reads); ``relay.unary._attempt`` does the
    same inline, one coroutine frame less on the common request."""
    provider = target.provider
    sent = time.perf_counter()
    try:
        reply = await opener()
        try:
            data = await reply.read()
        finally:
            reply.close()
    finally:
        call.upstream_s += time.perf_counter() - sent
    scrub, secret = provider.scrub, call.options.direct_key
    headers = scrub.headers(reply.headers, secret=secret)
    if not 200 <= reply.status < 300:
        data = scrub.body(data, secret=secret)  # before a translation quotes a part of it
        if provider.translated:
            data = translate.error(target, reply.status, data)
        raise status_error(provider.name, reply.status, data, headers)
    return reply.status, data, headers
