"""Streaming: upstream SSE bytes go to the client as they arrive, counted as they pass.

The upstream is opened, and its first chunk awaited, before the client's headers are
written: a failure or silence before the first byte is an ordinary HTTP error (504 for
a timeout; 502 for a 200 whose Content-Type is not text/event-stream) and may fall
back. After it, failures are reported in-band as an OpenAI error frame and the stream
ends. Each upstream read is framed (``sse.Framer``) and watched (``watch.StreamWatch``);
what they return is written as one slice.
Backpressure: ``write`` waits while the client's socket buffer is full, and no read of
the upstream happens meanwhile, so aiohttp stops reading the upstream socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable

from aiohttp import web
from msgspec import UNSET

from gateway.accounting.tokens import CompletionCounter
from gateway.accounting.usage import Cost, Usage, encode
from gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.relay import native, translate
from gateway.relay.attempts import first_success
from gateway.relay.call import Call, answer_headers, status_error
from gateway.relay.pipe import relay_regions
from gateway.relay.shutdown import SHUTDOWN_WRITE_S, is_shutdown, shutting_down
from gateway.relay.sse import Framer
from gateway.relay.watch import Finisher, StreamWatch
from gateway.routing.table import Target
from gateway.upstream.client import Reply

log = logging.getLogger("gateway.relay")

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Tells nginx-style proxies in front of the gateway not to buffer the stream.
    "X-Accel-Buffering": "no",
}


def is_event_stream(content_type: str | None) -> bool:
    """Whether a reply may be relayed as a stream: it declares ``text/event-stream`` (with
    any parameters), or declares nothing and the framer judges its bytes."""
    return content_type is None or content_type.partition(";")[0].strip().lower() == "text/event-stream"


class _Opened:
    """An upstream stream whose first chunk has arrived, not yet sent to the client;
    ``decode``: the upstream's dialect to OpenAI chunks, for a translated provider."""

    __slots__ = ("chunks", "decode", "first", "reply")

    def __init__(
        self, reply: Reply, chunks: AsyncGenerator[bytes, None], first: bytes, decode: translate.UpstreamStream | None
    ) -> None:
        self.reply, self.chunks, self.first, self.decode = reply, chunks, first, decode


async def _first_read(chunks: AsyncGenerator[bytes, None], decode: translate.UpstreamStream | None) -> bytes:
    """The stream's first bytes for the client (translated ones: the first read that
    makes any; b"" for a stream that ends before)."""
    if decode is None:
        return await anext(chunks, b"")
    async for data in chunks:
        out = decode.feed(data)
        if out:
            return out
    return decode.close()


async def _first_chunk(call: Call, target: Target, body: bytes, key: int) -> _Opened:
    """The stream of one attempt, once its first chunk is in: within the first-byte
    bound (or the client's x-bf-stream-idle-timeout), cut to what is left of the client's
    x-bf-request-timeout, so silence can still fall back."""
    provider = target.provider
    o = call.options.timeouts
    wait_s = (o.stream_idle_s if o else None) or provider.first_byte_s
    if o is not None and o.request_s:
        wait_s = min(wait_s, call.t0 + o.request_s - time.perf_counter())
    try:
        async with asyncio.timeout(wait_s):
            reply = await call.send(target, body, key, stream=True)
            try:
                translated = provider.translated
                if not 200 <= reply.status < 300:
                    scrub, secret = provider.scrub, call.options.direct_key
                    # Scrubbed before a translation quotes a part of it.
                    data = scrub.body(await reply.read(), secret=secret)
                    if translated:
                        data = translate.error(target, reply.status, data)
                    raise status_error(provider.name, reply.status, data, scrub.headers(reply.headers, secret=secret))
                if not is_event_stream(reply.content_type):
                    # A 200 that is not a stream (a JSON answer or error, an HTML page):
                    # a 502 now, before any byte has gone to the client, can still fall back.
                    raise UpstreamProtocolError(
                        f"provider '{provider.name}' answered a stream request with Content-Type "
                        f"{reply.content_type}, not text/event-stream"
                    )
                decode = translate.UpstreamStream(target) if translated and not call.passthrough(target) else None
                chunks = reply.chunks()
                try:
                    first = await _first_read(chunks, decode)
                except translate.STREAM_ERRORS as e:  # the upstream's error event, quoted
                    e.message = provider.scrub.text(e.message, secret=call.options.direct_key)
                    raise
                if not first:
                    raise UpstreamProtocolError(f"provider '{provider.name}' closed the stream before sending anything")
            except BaseException:
                reply.close()
                raise
    except TimeoutError:
        raise UpstreamTimeout(f"provider '{provider.name}' sent no first byte in time") from None
    return _Opened(reply, chunks, first, decode)


class _Pricer:
    """A stream's usage priced once: the final chunk's ``usage.cost`` and the ledger's are
    one pricing, and an unpriced model counts one request in
    ``gateway_unpriced_requests_total``, not two."""

    __slots__ = ("_cost", "_ledger", "_lookup", "_model", "_usage")

    def __init__(self, call: Call, target: Target) -> None:
        self._ledger, self._lookup, self._model = call.ledger, target.provider.pricing.lookup, target.model
        self._usage: Usage | None = None
        self._cost: Cost | None = None

    def __call__(self, usage: Usage) -> Cost | None:
        if usage != self._usage:
            self._usage, self._cost = usage, self._ledger.cost(self._lookup(self._model), usage)
        return self._cost


def _finisher(call: Call, target: Target, body: bytes, *, counting: bool, price: _Pricer) -> Finisher:
    ledger = call.ledger
    options = call.options  # read once a stream
    raw_request = body if options.raw_request else None
    raw_response = options.raw_response
    debug = call.cache.debug if call.cache is not None else UNSET

    def extra(chunk_index: int, estimated: bool, last: bytes) -> bytes:
        return encode(
            call.extra_fields(
                target,
                chunk_index=chunk_index,
                estimated=estimated,
                raw_request=raw_request,
                raw_response=last if raw_response and last else None,
                cache_debug=debug,
            )
        )

    def cost(usage: Usage) -> bytes | None:
        return ledger.encode_cost(price(usage))

    def counted(completion_tokens: int) -> Usage:
        # Counting streams count exactly; a trusted upstream's stream cut short before its
        # usage arrived is estimated without loading the BPE tables.
        prompt = ledger.prompt_tokens(endpoint=call.endpoint, model=target.model, body=call.body, exact=counting)
        return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens, total_tokens=prompt + completion_tokens)

    return Finisher(extra=extra, cost=cost, counted=counted)


def _record(call: Call, target: Target, watch: StreamWatch, outcome: str, price: _Pricer) -> None:
    provider, ledger = target.provider, call.ledger
    usage, estimated = watch.final_usage()
    cost = price(usage)
    ledger.record(provider=provider.name, usage=usage, cost=cost, estimated=estimated)
    call.charge(usage, cost)
    ledger.metrics.for_provider(provider.name).streams[outcome] += 1
    if outcome == "completed":
        provider.stream_usage.learn(reported=watch.usage is not None)


async def stream(call: Call, request: web.BaseRequest) -> web.StreamResponse:
    # A shutdown whose grace ends cancels its task with SHUTDOWN (LiveStreams).
    sent = time.perf_counter()
    try:
        opened, index, limiter = await first_success(call, lambda t, b, k: _first_chunk(call, t, b, k))
    except asyncio.CancelledError as e:
        call.upstream_s = time.perf_counter() - sent
        if is_shutdown(e):  # nothing sent yet: an ordinary 503
            raise shutting_down() from None
        raise
    except BaseException:
        # Failed, or its client gone, before a first chunk: the wait is still the upstream's.
        call.upstream_s = time.perf_counter() - sent
        raise
    call.served_index = index
    metrics = call.ledger.metrics
    metrics.streams_in_flight += 1
    try:
        return await _relay(call, request, opened, index)
    finally:
        metrics.streams_in_flight -= 1
        # A stream's upstream part: from the first send to the upstream's last byte.
        call.upstream_s = time.perf_counter() - sent
        if limiter is not None:
            limiter.release()


async def _relay(call: Call, request: web.BaseRequest, opened: _Opened, index: int) -> web.StreamResponse:
    reply, chunks = opened.reply, opened.chunks
    target, body = call.targets[index]
    assert isinstance(body, bytes)  # a target that refused the request was never sent
    if target.native:  # a Responses API event stream, relayed as is
        return await native.stream(
            call, request, reply=reply, chunks=chunks, first=opened.first, index=index, headers=SSE_HEADERS
        )
    counter = (
        CompletionCounter(call.ledger.tokenizers.for_model(target.model))
        if target.provider.stream_usage.must_count()
        else None
    )
    price = _Pricer(call, target)
    finisher = _finisher(call, target, body, counting=counter is not None, price=price)
    scrub, secret = target.provider.scrub, call.options.direct_key

    def redact(frames: bytes) -> bytes:
        return scrub.body(frames, secret=secret)

    watch = StreamWatch(client_usage=call.client_usage, counter=counter, finish=finisher, redact=redact)
    feed: Callable[[bytes], bytes] = Framer().feed
    ticket = call.cache  # read once a stream
    recorder = None
    if ticket is not None and ticket.keep:
        # The regions the framer returns, kept for the response cache (relay.cache).
        recorder = ticket.owner.recorder()
        feed = recorder.wrap(feed)
    emit = process = watch.process
    shadow = translate.chat_stream(target) if call.passthrough(target) else None
    to_client = (
        translate.client_stream(call.client, request=call.client_body)
        if call.client is not None and shadow is None
        else None
    )
    if shadow is not None:
        # Same dialect both sides: the client gets the upstream's frames untouched; a
        # translated copy feeds the watch, for the accounting only.
        shadow_feed = shadow.feed

        def emit(region: bytes) -> bytes:
            try:
                seen = shadow_feed(region)
                if seen:
                    process(seen)
            except UpstreamProtocolError as e:
                watch.error = e  # raised by the loop, after this region
                # The upstream's own error event goes to the client as it came, keys
                # scrubbed; bytes that are not the dialect's events do not.
                return redact(region) if isinstance(e, translate.STREAM_ERRORS) else b""
            return region

    elif to_client is not None:
        client_feed = to_client.feed

        def emit(region: bytes) -> bytes:
            out = process(region)
            return client_feed(out) if out else b""

    upstream_headers = scrub.headers(reply.headers, secret=secret) if reply.headers else []
    headers = SSE_HEADERS.copy()
    headers.update(answer_headers(target.provider.name, index, upstream_headers))
    resp = web.StreamResponse(headers=headers)
    decode = opened.decode
    outcome = "client_gone"
    try:
        await resp.prepare(request)
        write = resp.write
        try:
            # A first read may end inside its first frame (nothing whole yet): held, not
            # looked at (the watch takes whole frames only).
            region = feed(opened.first)
            out = emit(region) if region else b""
            if out:
                await write(out)
            call.ledger.metrics.first_token(target.provider.name, time.perf_counter() - call.t0)
            await relay_regions(request, reply, chunks, feed=feed, region=emit, watch=watch, decode=decode)
            if shadow is not None:
                tail = shadow.close()  # Gemini's last chunk and [DONE] come out at EOF
                if tail:
                    process(tail)
            if watch.error is not None:
                raise watch.error
            if not watch.done:
                raise UpstreamProtocolError(
                    f"provider '{target.provider.name}' closed the stream before its completion marker"
                )
            outcome = "completed"
            if call.keep is not None:
                # Kept before the stream ends, so a request continuing it finds it.
                final = getattr(to_client, "final", None)
                if final is not None:
                    await call.keep(final)
        except (UpstreamError, asyncio.CancelledError) as caught:
            e: GatewayError
            if isinstance(caught, asyncio.CancelledError):
                if not is_shutdown(caught):
                    raise
                # The shutdown's grace ended: the client learns why its stream stops.
                outcome, e = "shutdown", shutting_down()
            else:
                outcome, e = "upstream_error", caught
                log.warning("stream from provider failed mid-way: %s", scrub.text(e.message, secret=secret))
            frame = watch.flush_held() + b"data: " + redact(e.body()) + b"\n\n"
            if call.client is not None:
                # In the client's dialect. Passed through, the upstream's own error event
                # (what the watch saw) has reached the client already.
                relayed = shadow is not None and isinstance(e, translate.STREAM_ERRORS)
                if relayed:
                    frame = b""
                else:
                    frame = (to_client or translate.client_stream(call.client, request=call.client_body)).feed(frame)
            if outcome == "shutdown":
                try:
                    async with asyncio.timeout(SHUTDOWN_WRITE_S):
                        await write(frame)
                        await resp.write_eof()
                except TimeoutError:  # a client that does not read: its connection is cut
                    call.abandoned = True
                return resp
            await write(frame)
        await resp.write_eof()
    except ConnectionError:
        # The client went away; closing the reply (below) closes the upstream. (When
        # aiohttp saw the connection close first it cancels the handler instead, and
        # server.handlers records the request.)
        call.abandoned = True
        log.debug("client disconnected mid-stream")
    finally:
        reply.close()
        await chunks.aclose()
        # Charged for what passed, however the stream ended.
        _record(call, target, watch, outcome, price)
        if recorder is not None and ticket is not None:
            completed = outcome == "completed" and watch.error is None
            usage = watch.final_usage()[0]
            await ticket.owner.keep_stream(ticket, call, recorder, target=target, completed=completed, usage=usage)
    return resp
