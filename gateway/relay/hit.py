"""A cache hit answered: the kept answer in the form the request asks for, its usage as
first reported with ``cost`` 0 (a semantic hit: its embedding's), and ``extra_fields``
with ``cache_debug``. A stream is replayed through the same ``StreamWatch`` a relayed
one passes, so usage lands where the client's ``stream_options`` want it, exactly once."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web
from msgspec import UNSET, Raw

from gateway.accounting.usage import Usage
from gateway.relay.cache import CacheTicket, Entry, completion_of, usage_of
from gateway.relay.call import PROVIDER_HEADER, Call
from gateway.relay.replay import split_answer
from gateway.relay.stream import SSE_HEADERS
from gateway.relay.watch import Finisher, StreamWatch
from gateway.schemas.response import ExtraFields

_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, Raw]).decode


def _extra(call: Call, ticket: CacheTicket, entry: Entry, *, chunk_index: int | None = None) -> bytes:
    return _encode(
        ExtraFields(
            request_type=call.request_type,
            provider=entry.provider,
            model_requested=call.requested,
            model_deployment=entry.model,
            latency=call.latency_ms(),
            chunk_index=UNSET if chunk_index is None else chunk_index,
            cache_debug=ticket.debug,
        )
    )


def unary_answer(call: Call, ticket: CacheTicket) -> bytes:
    """The completion object of a hit, for a request that does not stream. A kept unary
    answer (compact, its usage's exact bytes in ``entry.usage``, no cost, no
    extra_fields: ``Cache.keep_unary``) has ``cost`` and ``extra_fields`` spliced into
    its bytes; anything else is decoded and encoded again (``_rebuilt``)."""
    entry = ticket.entry
    assert entry is not None
    body, usage = entry.body, entry.usage
    if entry.stream or body[-1:] != b"}":
        return _rebuilt(call, ticket, entry)
    extra = _extra(call, ticket, entry)
    end = len(body) - 1
    if not usage:  # none reported (or null): as kept
        return b"".join((body[:end], b',"extra_fields":', extra, b"}"))
    # As keep_unary wrote it (compact at the top level): found by its name too, so an
    # empty usage is not found inside a later string ("arguments":"{}").
    at = body.rfind(b'"usage":' + usage)
    if at < 0 or usage[-1:] != b"}":
        return _rebuilt(call, ticket, entry)
    close = at + 8 + len(usage) - 1  # the usage object's closing brace
    sep = b'"cost":' if usage[:-1].rstrip().endswith(b"{") else b',"cost":'
    return b"".join((body[:close], sep, ticket.cost, body[close:end], b',"extra_fields":', extra, b"}"))


def _rebuilt(call: Call, ticket: CacheTicket, entry: Entry) -> bytes:
    """``unary_answer`` by decoding and encoding: a kept stream assembled, or a body
    ``unary_answer`` cannot splice."""
    fields = {k: Raw(_encode(v)) for k, v in completion_of(entry).items()} if entry.stream else _fields(entry.body)
    usage = fields.get("usage")
    if usage is not None and bytes(usage) != b"null":
        u = _fields(usage)
        u["cost"] = Raw(ticket.cost)
        fields["usage"] = Raw(_encode(u))
    fields["extra_fields"] = Raw(_extra(call, ticket, entry))
    return _encode(fields)


async def replay_stream(
    call: Call, request: web.BaseRequest, ticket: CacheTicket, *, paced: bool
) -> web.StreamResponse:
    """The hit as a stream: a kept stream's frames (at their original gaps when
    ``paced``), or a kept unary answer split into chunks."""
    entry = ticket.entry
    assert entry is not None
    if entry.stream:
        frames, gaps = entry.frames, entry.gaps_s
    else:
        frames = split_answer(completion_of(entry), text=entry.text)
        gaps = [0.0] * len(frames)
    usage = usage_of(entry)

    def extra(chunk_index: int, estimated: bool, last: bytes) -> bytes:
        return _extra(call, ticket, entry, chunk_index=chunk_index)

    def counted(frames_seen: int) -> Usage:
        return usage  # a kept stream that carried no usage: what it was accounted with

    def cost(usage: Usage) -> bytes:
        return ticket.cost  # nothing spent, or a semantic lookup's embedding

    watch = StreamWatch(
        client_usage=call.client_usage, counter=None, finish=Finisher(extra=extra, cost=cost, counted=counted)
    )
    headers = SSE_HEADERS.copy()
    headers[PROVIDER_HEADER] = entry.provider
    resp = web.StreamResponse(headers=headers)
    try:
        await resp.prepare(request)
        write, process = resp.write, watch.process
        for region, gap in zip(frames, gaps, strict=True):
            if paced and gap > 0:
                await asyncio.sleep(gap)
            out = process(region)
            if out:
                await write(out)
        await resp.write_eof()
    except ConnectionError:
        call.abandoned = True
    return resp
