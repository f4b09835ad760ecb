"""Non-streaming: read the whole upstream answer, account, enrich, one write."""

from __future__ import annotations

import time

import msgspec
from msgspec import UNSET

from gateway import codec
from gateway.accounting.tokens import count_completion
from gateway.accounting.usage import Usage, decode_usage, encode, encode_counted
from gateway.errors import UpstreamError, UpstreamProtocolError
from gateway.relay import embed, native, translate
from gateway.relay.attempts import first_success, lone_attempt, note_failure
from gateway.relay.call import Call, status_error
from gateway.relay.watch import add_cost, usage_at
from gateway.routing.table import Target


def account(call: Call, target: Target, data: bytes, usage_raw: bytes | None) -> tuple[bytes, bool]:
    """``data`` with ``usage.cost`` (and, for an answer without usage, the gateway's
    count); whether the usage is estimated. Records the request."""
    provider, ledger = target.provider, call.ledger
    estimated = usage_raw is None
    if usage_raw is not None:
        try:
            usage = decode_usage(usage_raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise UpstreamProtocolError(f"provider '{provider.name}' sent an unreadable usage object: {e}") from None
    else:
        tok = ledger.tokenizers.for_model(target.model)
        prompt = ledger.prompt_tokens(endpoint=call.endpoint, model=target.model, body=call.body)
        try:
            completion = count_completion(tok, data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            completion = 0
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    cost = ledger.cost(provider.pricing.lookup(target.model), usage)
    ledger.record(provider=provider.name, usage=usage, cost=cost, estimated=estimated)
    call.charge(usage, cost)
    if usage_raw is not None:
        if cost is not None:
            data = add_cost(data, usage_raw, encode(cost))
        return data, False
    counted = encode_counted(usage, encode(cost) if cost is not None else None)
    return codec.splice_field(data, b"usage", counted), True


def _plain(call: Call, target: Target, data: bytes, usage_raw: bytes) -> bytes:
    """The common answer (OpenAI dialect, usage reported, no gateway upstream, nothing
    raw asked for): accounted, then ``usage.cost`` and ``extra_fields`` spliced in one
    join. Equal to ``account`` + ``codec.enrich``, ~3 µs cheaper."""
    provider, ledger = target.provider, call.ledger
    try:
        usage = decode_usage(usage_raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"provider '{provider.name}' sent an unreadable usage object: {e}") from None
    cost = ledger.cost(provider.pricing.lookup(target.model), usage)
    ledger.record(provider=provider.name, usage=usage, cost=cost, estimated=False)
    call.charge(usage, cost)
    extra = call.plain_extra_fields(target)
    end = len(data.rstrip()) - 1  # the closing brace: response_head proved an object
    # find, not in: see server.options.request_options
    if cost is not None and usage_raw.find(b'"cost"') < 0 and usage_raw[-1:] == b"}":
        at = data.rfind(usage_raw)
        if at >= 0 and usage_raw.find(b'"') < 0:  # "{}": maybe inside a later string too
            at = usage_at(data, usage_raw)
        if at >= 0:
            close = at + len(usage_raw) - 1  # the usage object's closing brace
            sep = b'"cost":' if usage_raw[:-1].rstrip().endswith(b"{") else b',"cost":'
            return b"".join((data[:close], sep, encode(cost), data[close:end], b',"extra_fields":', extra, b"}"))
    return b"".join((data[:end], b',"extra_fields":', extra, b"}"))


async def _attempt(call: Call, target: Target, body: bytes, key: int) -> tuple[bytes, list[tuple[str, str]]]:
    provider = target.provider
    sent = time.perf_counter()
    try:
        reply = await call.send(target, body, key, stream=False)
        try:
            data = await reply.read()
        finally:
            reply.close()
    finally:
        call.upstream_s += time.perf_counter() - sent
    translated = provider.translated
    options = call.options
    scrub, secret = provider.scrub, options.direct_key
    headers = scrub.headers(reply.headers, secret=secret)
    if not 200 <= reply.status < 300:
        data = scrub.body(data, secret=secret)  # before a translation quotes a part of it
        if translated:
            data = translate.error(target, reply.status, data)
        raise status_error(provider.name, reply.status, data, headers)
    if target.native:  # a Responses API answer, relayed as is (relay.native)
        return native.answer(call, target, body, data), headers
    head = codec.response_head(data) if not translated else None
    if head is not None and call.client is None and not (options.raw_request or options.raw_response):
        usage = head.usage
        if usage is not UNSET and head.extra_fields is UNSET:
            reported = bytes(usage)
            if reported != b"null":
                return _plain(call, target, data, reported), headers
    upstream_data = data
    if translated:
        data = translate.answer(target, data)
        head = codec.response_head(data)
    assert head is not None
    usage_raw = bytes(head.usage) if head.usage is not UNSET else None
    if usage_raw == b"null":
        usage_raw = None
    data, estimated = account(call, target, data, usage_raw)
    if call.passthrough(target):
        # Same dialect both sides: the upstream's bytes go back untouched; the
        # translation above served the accounting only.
        return upstream_data, headers
    extra = call.extra_fields(
        target,
        estimated=estimated,
        raw_request=body if options.raw_request else None,
        raw_response=upstream_data if options.raw_response else None,
    )
    data = codec.enrich(data, head, extra)
    if call.client is not None:
        # The client's dialect keeps what it has room for (a Response: extra_fields).
        return translate.client_answer(call.client, data, request=call.client_body), headers
    return data, headers


async def unary(call: Call) -> tuple[bytes, int, list[tuple[str, str]]]:
    """The enriched body, the index of the target that served it (0: primary) and the
    upstream headers relayed to the client. All failing: the primary's error."""
    # Embeddings take their own attempt (relay.embed) through the same loop.
    attempt = _attempt if call.endpoint != "embeddings" else embed.attempt
    lone = lone_attempt(call)
    if lone is not None:  # the common call: one attempt, made here
        target, body, key = lone
        try:
            data, headers = await attempt(call, target, body, key)
        except UpstreamError as e:
            note_failure(target, key, e)
            raise
        target.provider.keys.succeeded(key)
        return data, 0, headers
    (data, headers), index, limiter = await first_success(call, lambda t, b, k: attempt(call, t, b, k))
    if limiter is not None:
        limiter.release()
    return data, index, headers
