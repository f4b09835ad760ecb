"""OpenAI's Responses API relayed natively: a ``POST /v1/responses`` to a provider
configured with ``responses: native`` goes upstream as the client's bytes (the model
swapped, ``fallbacks`` removed: ``server.plan``) to its ``/responses``, and its Response
or event stream comes back as the upstream's bytes, with two splices:

- ``usage.cost``, priced from the Response's own usage (``input_tokens``,
  ``output_tokens``, ``input_tokens_details.cached_tokens``,
  ``output_tokens_details.reasoning_tokens``), accounted as a chat answer's (ledger,
  metrics, the caller's budgets);
- the gateway's ``extra_fields``, on the Response (unary) or on the response of the
  stream's terminal event (``response.completed``, ``.incomplete``, ``.failed``); with
  x-bf-send-back-raw-request/-response, ``raw_request`` (the body sent upstream) and
  ``raw_response`` (the upstream's Response as received: the whole answer, or the
  terminal event's ``response``).

Nothing else is decoded or re-encoded. A stream is watched per read by a frame count
(for the ``sequence_number`` of an error event of the gateway's) and three byte searches
for the terminal events' types; only a read holding one is split into frames. A stream
the upstream ends without a terminal event gets an ``error`` event, as OpenAI sends
one, and is accounted as estimated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Mapping

import msgspec
from aiohttp import web
from msgspec import UNSET, Raw, Struct, UnsetType

from gateway.accounting.usage import CompletionDetails, PromptDetails, Usage, encode
from gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError
from gateway.relay.call import Call, answer_headers
from gateway.relay.pipe import relay_regions
from gateway.relay.shutdown import SHUTDOWN_WRITE_S, is_shutdown, shutting_down
from gateway.relay.sse import Framer
from gateway.relay.watch import add_cost
from gateway.routing.table import Target
from gateway.upstream.client import Reply

log = logging.getLogger("gateway.relay")

# The events that end a Responses stream, each carrying the whole Response. Searched as
# quoted JSON strings: a text delta holding the same words has its quotes escaped, and
# a read that matches is split and each frame's type read exactly.
_TERMINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_TERMINAL_TYPES = frozenset(t.strip(b'"').decode() for t in _TERMINAL)
_SEP = b"\n\n"
_RESPONSE = b'"response":'
_SEQUENCE = b'"sequence_number":'


class _InputDetails(Struct):
    cached_tokens: int | None = None


class _OutputDetails(Struct):
    reasoning_tokens: int | None = None


class ResponsesUsage(Struct):
    """A Response's ``usage``, as far as it is priced."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _ResponseHead(Struct):
    usage: Raw | UnsetType = UNSET
    extra_fields: Raw | UnsetType = UNSET


class _EventHead(Struct):
    type: str = ""
    sequence_number: int | None = None
    response: Raw | UnsetType = UNSET


_usage = msgspec.json.Decoder(ResponsesUsage).decode
_response_head = msgspec.json.Decoder(_ResponseHead).decode
_event_head = msgspec.json.Decoder(_EventHead).decode
_fields = msgspec.json.Decoder(dict[str, Raw]).decode


def chat_usage(u: ResponsesUsage) -> Usage:
    """A Response's usage as the chat usage the gateway prices and records."""
    cached = u.input_tokens_details.cached_tokens if u.input_tokens_details else None
    reasoning = u.output_tokens_details.reasoning_tokens if u.output_tokens_details else None
    return Usage(
        prompt_tokens=u.input_tokens,
        completion_tokens=u.output_tokens,
        total_tokens=u.total_tokens if u.total_tokens is not None else u.input_tokens + u.output_tokens,
        prompt_tokens_details=PromptDetails(cached_tokens=cached) if cached is not None else None,
        completion_tokens_details=CompletionDetails(reasoning_tokens=reasoning) if reasoning is not None else None,
    )


def _account(call: Call, target: Target, usage_raw: bytes | None) -> tuple[bytes | None, bool]:
    """Records what the answer used; (its encoded cost, None when unpriced; whether the
    usage is estimated: the upstream reported none, so only the prompt is estimated)."""
    provider, ledger = target.provider, call.ledger
    usage: Usage | None = None
    if usage_raw is not None:
        try:
            usage = chat_usage(_usage(usage_raw))
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise UpstreamProtocolError(f"provider '{provider.name}' sent an unreadable usage object: {e}") from None
    estimated = usage is None
    if usage is None:
        prompt = ledger.prompt_tokens(endpoint="chat", model=target.model, body=call.body, exact=False)
        usage = Usage(prompt_tokens=prompt, completion_tokens=0, total_tokens=prompt)
    cost = ledger.cost(provider.pricing.lookup(target.model), usage)
    ledger.record(provider=provider.name, usage=usage, cost=cost, estimated=estimated)
    call.charge(usage, cost)
    return ledger.encode_cost(cost), estimated


def _enrich(response: bytes, *, usage_raw: bytes | None, cost: bytes | None, extra: bytes, has_extra: bool) -> bytes:
    """The Response object ``response`` with ``usage.cost`` and ``extra_fields`` set,
    spliced into its bytes (``has_extra``: an upstream that is itself a gateway sent its
    own, replaced)."""
    if cost is not None and usage_raw is not None:
        response = add_cost(response, usage_raw, cost)
    if has_extra:
        fields = _fields(response)
        fields["extra_fields"] = Raw(extra)
        return encode(fields)
    end = response.rstrip()
    inner = end[:-1].rstrip()
    sep = b"" if inner.endswith(b"{") else b","
    return b"".join((inner, sep, b'"extra_fields":', extra, b"}"))


def _head(data: bytes, provider: str) -> _ResponseHead:
    try:
        return _response_head(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise UpstreamProtocolError(f"provider '{provider}' sent a Response that is not a JSON object: {e}") from None


def _usage_of(head: _ResponseHead) -> bytes | None:
    raw = bytes(head.usage) if head.usage is not UNSET else None
    return None if raw == b"null" else raw


def answer(call: Call, target: Target, body: bytes, data: bytes) -> bytes:
    """A unary Response (2xx), accounted, with ``usage.cost`` and ``extra_fields``."""
    head = _head(data, target.provider.name)
    usage_raw = _usage_of(head)
    cost, estimated = _account(call, target, usage_raw)
    options = call.options
    extra = call.extra_fields(
        target,
        estimated=estimated,
        raw_request=body if options.raw_request else None,
        raw_response=data if options.raw_response else None,
    )
    return _enrich(data, usage_raw=usage_raw, cost=cost, extra=encode(extra), has_extra=head.extra_fields is not UNSET)


class _Watch:
    """What a native stream's relay learns: its terminal event, and the last region
    relayed (where an error event of ours finds the next sequence_number). ``body``: the
    request sent upstream (echoed with x-bf-send-back-raw-request)."""

    __slots__ = ("body", "call", "cost", "done", "estimated", "final", "last", "target")

    def __init__(self, call: Call, target: Target, body: bytes) -> None:
        self.call, self.target, self.body = call, target, body
        self.done = False
        self.last = b""
        self.cost: bytes | None = None
        self.estimated = True
        self.final = b""  # the terminal event's Response, enriched

    def region(self, region: bytes) -> bytes:
        """A region of whole frames, the terminal event's enriched."""
        self.last = region  # a reference: nothing counted or copied per region
        # Only lifecycle events carry a "response" object (a delta's text cannot hold the
        # bytes: its quotes are escaped): one search passes every other region on.
        if region.find(_RESPONSE) < 0 or not any(region.find(t) >= 0 for t in _TERMINAL):
            return region
        frames = region.split(_SEP)[:-1]
        for i, frame in enumerate(frames):
            at = frame.find(b"data:")
            if at < 0 or (at and frame[at - 1 : at] != b"\n"):
                continue
            data = frame[at + 5 :].lstrip(b" ")
            try:
                event = _event_head(data)
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
            if event.type in _TERMINAL_TYPES and event.response is not UNSET and not self.done:
                frames[i] = frame[:at] + b"data: " + self._final(data, bytes(event.response))
        return _SEP.join(frames) + _SEP

    def _final(self, data: bytes, response: bytes) -> bytes:
        """The terminal event ``data`` with its response enriched, once."""
        self.done = True
        call, target = self.call, self.target
        head = _head(response, target.provider.name)
        usage_raw = _usage_of(head)
        self.cost, self.estimated = _account(call, target, usage_raw)
        options = call.options  # read once a stream, at its terminal event
        extra = encode(
            call.extra_fields(
                target,
                estimated=self.estimated,
                raw_request=self.body if options.raw_request else None,
                raw_response=response if options.raw_response else None,
            )
        )
        has_extra = head.extra_fields is not UNSET
        enriched = self.final = _enrich(response, usage_raw=usage_raw, cost=self.cost, extra=extra, has_extra=has_extra)
        at = data.rfind(response)
        return data[:at] + enriched + data[at + len(response) :] if at >= 0 else data

    def _next_sequence(self) -> int:
        """One past the last relayed event's ``sequence_number`` (0 before any)."""
        last = self.last
        at = last.rfind(_SEQUENCE)
        if at < 0:
            return 0
        digits = last[at + len(_SEQUENCE) :].lstrip()[:20]
        n = len(digits) - len(digits.lstrip(b"0123456789"))
        return int(digits[:n]) + 1 if n else 0

    def error_event(self, e: GatewayError) -> bytes:
        """OpenAI's ``error`` event for a stream that ends without its terminal one."""
        body = b'{"type":"error","sequence_number":%d,"code":%s,"message":%s,"param":%s}' % (
            self._next_sequence(),
            encode(e.code),
            encode(e.message),
            encode(e.param),
        )
        return b"event: error\ndata: " + body + _SEP


async def stream(
    call: Call,
    request: web.BaseRequest,
    *,
    reply: Reply,
    chunks: AsyncGenerator[bytes, None],
    first: bytes,
    index: int,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Relays the upstream's Responses event stream (its first read ``first``) as it
    comes; ``headers``: the stream's own, before the provider's."""
    target, body = call.targets[index]
    assert isinstance(body, bytes)  # a target that refused the request was never sent
    provider = target.provider
    scrub, secret = provider.scrub, call.options.direct_key
    relayed = scrub.headers(reply.headers, secret=secret) if reply.headers else []
    out_headers = dict(headers)
    out_headers.update(answer_headers(provider.name, index, relayed))
    resp = web.StreamResponse(headers=out_headers)
    watch = _Watch(call, target, body)
    feed, region_of = Framer().feed, watch.region
    outcome = "client_gone"
    try:
        await resp.prepare(request)
        write = resp.write
        try:
            region = feed(first)
            if region:
                await write(region_of(region))
            call.ledger.metrics.first_token(provider.name, time.perf_counter() - call.t0)
            await relay_regions(request, reply, chunks, feed=feed, region=region_of)
            if not watch.done:
                raise UpstreamProtocolError(f"provider '{provider.name}' closed the stream before its final event")
            outcome = "completed"
            if call.keep is not None and secret is None:
                # Where it is kept, recorded before the stream ends: a retrieval that
                # follows it finds it (not one made with the client's own key, which the
                # gateway's keys cannot read).
                await call.keep(watch.final, native=target)
        except UpstreamError as e:
            outcome = "upstream_error"
            log.warning("stream from provider failed mid-way: %s", scrub.text(e.message, secret=secret))
            await write(scrub.body(watch.error_event(e), secret=secret))
        except asyncio.CancelledError as e:
            if not is_shutdown(e):
                raise
            # The shutdown's grace ended: the client learns why its stream stops, as on
            # the chat relay (relay.stream), within a bound for a client that does not read.
            outcome = "shutdown"
            try:
                async with asyncio.timeout(SHUTDOWN_WRITE_S):
                    await write(watch.error_event(shutting_down()))
                    await resp.write_eof()
            except TimeoutError:
                call.abandoned = True
            return resp
        await resp.write_eof()
    except (ConnectionError, asyncio.CancelledError) as e:
        call.abandoned = True
        if isinstance(e, asyncio.CancelledError):
            raise
        log.debug("client disconnected mid-stream")
    finally:
        reply.close()
        await chunks.aclose()
        if not watch.done:  # charged for what passed: the prompt, estimated
            _account(call, target, None)
        call.ledger.metrics.for_provider(provider.name).streams[outcome] += 1
    return resp
