"""The response cache: chat and text completions answered again from what an equal
request was answered with, without an upstream call (docs/cache.md).

A request takes part when the cache is on for its target and it sends
``x-bf-cache-key`` (its namespace) or the config says every request does. Its direct
key is a hash of the canonical request (``relay.cachekey``): equal requests get equal
keys whatever their key order, spacing or number formatting; a stream and a
non-streaming request share one entry.

What is kept is the answer in the OpenAI dialect before the gateway's additions: a
unary body (no ``extra_fields``, usage without cost), or a stream's SSE regions as the
upstream sent them (translated when its dialect is another) with the gaps between
them. A hit is given back in the form asked for (``relay.replay``): usage as first
reported, ``cost`` 0 (nothing was spent), ``extra_fields.cache_debug`` saying so.
Only complete, successful answers are kept: no error, no cut stream, no
``finish_reason: "length"`` unless configured, nothing over ``max_entry_bytes``.

A store that cannot answer is a miss (and ``gateway_cache_errors_total``), never a
failed request. Semantic lookup (the nearest kept request by embedding, after a direct
miss) is ``relay.semantic``'s, given as ``Cache.semantic``."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Raw, Struct

from gateway.accounting.usage import Cost, Usage
from gateway.config import CacheConfig, CacheRuleConfig
from gateway.metrics import CacheMeters
from gateway.relay.cachekey import direct_key, key_head, namespace_id
from gateway.relay.replay import assemble
from gateway.routing.table import Target
from gateway.schemas.response import CacheDebug
from gateway.state.cache import CacheStore
from gateway.state.store import StoreUnavailable

if TYPE_CHECKING:
    from gateway.relay.call import Call
    from gateway.relay.semantic import Semantic
    from gateway.state.vectors import VectorIndex

log = logging.getLogger("gateway.cache")

# Kept writes to a remote store waiting at once; past it answers are not kept (busy).
MAX_PENDING_WRITES = 1000
# After a store failure, how long requests skip the store (each a miss, its answer not
# kept) before it is tried again: a hung Redis costs one deadline a second, not one per
# request.
STORE_RETRY_S = 1.0
# Rule lookups remembered per (provider, model); the model is the client's choice.
MAX_RULES = 4096
_LENGTH = re.compile(rb'"finish_reason"\s*:\s*"length"')
_ERROR = b'"error"'

_decode_any = msgspec.json.decode
_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, Raw]).decode
_decode_usage = msgspec.json.Decoder(Usage).decode
ZERO_COST = _encode(Cost(input_tokens_cost=0.0, output_tokens_cost=0.0, total_cost=0.0))


class CacheAsk:
    """What a request's ``x-bf-cache-*`` headers ask (``server.options``), checked."""

    __slots__ = ("direct", "key", "no_store", "semantic", "threshold", "ttl_s")

    def __init__(
        self,
        *,
        key: str | None = None,
        ttl_s: float | None = None,
        no_store: bool = False,
        direct: bool = True,
        semantic: bool = True,
        threshold: float | None = None,
    ) -> None:
        self.key = key  # the namespace; None: the default one (every_request)
        self.ttl_s = ttl_s
        self.no_store = no_store  # read, never write
        self.direct = direct
        self.semantic = semantic
        self.threshold = threshold

    def __repr__(self) -> str:
        return (
            f"CacheAsk(key={self.key!r}, ttl_s={self.ttl_s!r}, no_store={self.no_store!r}, "
            f"direct={self.direct!r}, semantic={self.semantic!r}, threshold={self.threshold!r})"
        )


class Rule:
    """The cache settings of one target, overrides applied."""

    __slots__ = ("enabled", "every_request", "threshold", "ttl_s")

    def __init__(self, cfg: CacheConfig, *overrides: CacheRuleConfig | None) -> None:
        self.enabled, self.ttl_s = cfg.enabled, cfg.ttl_s
        self.every_request, self.threshold = cfg.every_request, cfg.threshold
        for o in overrides:
            if o is None:
                continue
            self.enabled = o.enabled if o.enabled is not None else self.enabled
            self.ttl_s = o.ttl_s if o.ttl_s is not None else self.ttl_s
            self.every_request = o.every_request if o.every_request is not None else self.every_request
            self.threshold = o.threshold if o.threshold is not None else self.threshold


class Entry(Struct, array_like=True):
    """One kept answer (msgpack in the store)."""

    stream: bool
    body: bytes  # unary: the completion object, usage without cost, no extra_fields
    frames: list[bytes]  # stream: the upstream's SSE regions, OpenAI dialect
    gaps_s: list[float]  # stream: seconds before each region (the first: 0)
    usage: bytes  # the usage accounted (JSON, no cost): a stream that carried none
    provider: str  # the target that answered
    model: str
    text: bool  # a text completion (else chat)


_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(Entry).decode


class CacheTicket:
    """One request's part in the cache: its entry id, what a hit found, whether its
    answer is to be kept and for how long, and the ``cache_debug`` it reports; with
    semantic lookup on, its threshold, its embedding and what the embedding cost."""

    __slots__ = (
        "cost",
        "debug",
        "entry",
        "entry_id",
        "group",
        "head",
        "keep",
        "namespace",
        "owner",
        "semantic",
        "spent_cost",
        "spent_tokens",
        "threshold",
        "ttl_s",
        "vector",
    )

    def __init__(self, owner: Cache, entry_id: str, namespace: str, *, ttl_s: float, keep: bool) -> None:
        self.owner = owner
        self.entry_id = entry_id
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.keep = keep
        self.entry: Entry | None = None
        self.debug = CacheDebug(cache_hit=False, cache_id=entry_id)
        # A hit's usage.cost (JSON): nothing spent, or a semantic lookup's embedding.
        self.cost = ZERO_COST
        # Semantic lookup still to be made (after the caller is admitted): Cache.find_near.
        self.semantic = False
        self.threshold = 0.0
        self.head = b""  # key_head: the group's too
        self.vector: Any = None  # normalised float32 (numpy), once embedded
        self.group: str | None = None
        self.spent_tokens = 0  # the embedding's input tokens and cost (None: unpriced)
        self.spent_cost: float | None = None


class Recorder:
    """A stream's regions as the framer returns them, with their gaps, up to a size."""

    __slots__ = ("frames", "gaps_s", "last", "max_bytes", "over", "size")

    def __init__(self, max_bytes: int) -> None:
        self.frames: list[bytes] = []
        self.gaps_s: list[float] = []
        self.last = 0.0
        self.size = 0
        self.max_bytes = max_bytes
        self.over = False

    def wrap(self, feed: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        frames, gaps, clock = self.frames, self.gaps_s, time.perf_counter

        def recording(data: bytes) -> bytes:
            region = feed(data)
            if region and not self.over:
                now = clock()
                gaps.append(now - self.last if frames else 0.0)
                self.last = now
                frames.append(region)
                self.size += len(region)
                if self.size > self.max_bytes:
                    self.over = True
                    frames.clear()
            return region

        return recording


class Cache:
    """The process's response cache for one config: its rules, its store (the process's,
    kept across reloads) and its counters."""

    __slots__ = (
        "_cfg",
        "_down_until",
        "_pending",
        "_rules",
        "_store",
        "_store_down",
        "_vectors",
        "meters",
        "semantic",
    )

    def __init__(
        self,
        cfg: CacheConfig,
        store: CacheStore,
        *,
        meters: CacheMeters,
        semantic: Semantic | None = None,
        vectors: VectorIndex | None = None,
    ) -> None:
        self._cfg = cfg
        self._store = store
        self._rules: dict[tuple[str, str], Rule] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._store_down = False
        self._down_until = 0.0  # time.monotonic() before which the store is not tried
        self.meters = meters
        meters.active = True
        meters.stats_source = store.stats
        # The semantic lookup (embedder and vector index); None: direct lookups only.
        self.semantic = semantic
        # The process's vector index, kept across reloads: entries deleted here leave it
        # too, whether this config looks anything up in it or not.
        self._vectors = vectors if vectors is not None else semantic.vectors if semantic is not None else None

    @staticmethod
    def wanted(cfg: CacheConfig) -> bool:
        """Whether ``cfg`` turns the cache on for anything."""
        rules = (*cfg.providers.values(), *cfg.models.values())
        return cfg.enabled or any(r.enabled for r in rules)

    @property
    def config(self) -> CacheConfig:
        return self._cfg

    def recorder(self) -> Recorder:
        return Recorder(self._cfg.max_entry_bytes)

    def rule(self, target: Target) -> Rule:
        name, model = target.provider.name, target.model
        rule = self._rules.get((name, model))
        if rule is None:
            if len(self._rules) >= MAX_RULES:
                self._rules.clear()
            c = self._cfg
            rule = self._rules[(name, model)] = Rule(c, c.providers.get(name), c.models.get(f"{name}/{model}"))
        return rule

    async def lookup(self, call: Call, *, caller: str) -> CacheTicket | None:
        """The request's ticket, with the entry found on a hit; None when it takes no part:
        the cache is off for its target, it sent no x-bf-cache-key and not every request
        takes part, or it asks what a kept answer cannot give (raw echoes, its own key)."""
        options = call.options
        ask = options.cache
        if options.raw_request or options.raw_response or options.direct_key is not None or not call.targets:
            return None
        target = call.targets[0][0]
        rule = self.rule(target)
        if not rule.enabled or (ask is None and not rule.every_request):
            return None
        key = ask.key if ask is not None else None
        t0 = time.perf_counter()
        head = key_head(call, namespace=key, caller=None if self._cfg.shared else caller)
        entry_id = direct_key(call, namespace=key, caller=None, head=head)
        ttl_s = ask.ttl_s if ask is not None and ask.ttl_s is not None else rule.ttl_s
        ticket = CacheTicket(self, entry_id, namespace_id(key), ttl_s=ttl_s, keep=ask is None or not ask.no_store)
        ticket.debug.requested_provider = target.provider.name
        ticket.debug.requested_model = call.requested
        if ask is None or ask.direct or self.semantic is None:  # semantic asked, none configured: direct
            found = await self._get(entry_id)
            self.meters.looked_up("direct", "miss" if found is None else "hit", time.perf_counter() - t0)
            if found is not None:
                ticket.entry = found
                ticket.keep = False
                d = ticket.debug
                d.cache_hit, d.hit_type, d.provider_used, d.model_used = True, "direct", found.provider, found.model
                return ticket
        if self.semantic is not None and (ask is None or ask.semantic) and not self._skipping():
            # Made by find_near once the caller is admitted: the embedding is a paid call
            # (and none while the store is down: it could keep nothing found by it).
            ticket.semantic, ticket.head = True, head
            ticket.threshold = ask.threshold if ask is not None and ask.threshold is not None else rule.threshold
        return ticket

    async def find_near(self, ticket: CacheTicket, call: Call) -> None:
        """The semantic lookup of a ticket that missed its direct key: on a hit the
        nearest entry is the ticket's, else its answer is kept with its vector."""
        semantic = self.semantic
        assert semantic is not None and ticket.semantic
        near = await semantic.find(ticket, call, head=ticket.head, get=self._get, store_up=self._store_up)
        if near is None:
            return
        entry_id, found, similarity = near
        ticket.entry = found
        ticket.keep = False
        d = ticket.debug
        d.cache_hit, d.hit_type, d.provider_used, d.model_used = True, "semantic", found.provider, found.model
        d.cache_id, d.similarity = entry_id, round(similarity, 6)  # the entry that answered

    def _store_up(self) -> bool:
        """Whether the store answered its last call (a miss read from it is a real one)."""
        return not self._store_down

    def _skipping(self) -> bool:
        return self._store_down and time.monotonic() < self._down_until

    async def _get(self, entry_id: str) -> Entry | None:
        if self._skipping():
            return None
        try:
            value = await self._store.get(entry_id)
        except StoreUnavailable as e:
            self._failed(e)
            return None
        self._store_down = False
        if value is None:
            return None
        try:
            return _decode_entry(value)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None  # written by another version: a miss, overwritten by this answer

    def _failed(self, e: StoreUnavailable) -> None:
        self.meters.errors += 1
        if not self._store_down:  # once per outage, not once per request
            log.warning("response cache store unavailable, requests go upstream: %s", e)
        self._store_down = True
        self._down_until = time.monotonic() + STORE_RETRY_S

    async def keep_unary(self, ticket: CacheTicket, call: Call, data: bytes, *, target: Target) -> bytes:
        """``data`` (the answer as the relay made it) with its ``cache_debug``; kept when it
        is a complete answer that fits."""
        fields = _fields(data)
        extra = fields.get("extra_fields")
        if extra is not None:
            more = _fields(extra)
            more["cache_debug"] = Raw(_encode(ticket.debug))
            fields["extra_fields"] = Raw(_encode(more))
        answer = _encode(fields)
        if not ticket.keep:
            self.meters.skipped["no_store"] += 1
            return answer
        if len(data) > self._cfg.max_entry_bytes:
            self.meters.skipped["oversize"] += 1
            return answer
        if not self._cfg.cache_length_finish and _LENGTH.search(data):
            self.meters.skipped["length"] += 1
            return answer
        fields.pop("extra_fields", None)
        usage = fields.get("usage")
        clean_usage = b""
        if usage is not None and bytes(usage) != b"null":
            u = _fields(usage)
            u.pop("cost", None)
            clean_usage = _encode(u)
            fields["usage"] = Raw(clean_usage)
        entry = Entry(
            stream=False,
            body=_encode(fields),
            frames=[],
            gaps_s=[],
            usage=clean_usage,
            provider=target.provider.name,
            model=target.model,
            text=call.endpoint == "text",
        )
        await self._put(ticket, entry)
        return answer

    async def keep_stream(
        self, ticket: CacheTicket, call: Call, recorder: Recorder, *, target: Target, completed: bool, usage: Usage
    ) -> None:
        """A stream's frames kept, when it completed cleanly and fits."""
        skipped = self.meters.skipped
        if not ticket.keep:
            skipped["no_store"] += 1
            return
        if not completed:
            skipped["incomplete"] += 1
            return
        if recorder.over:
            skipped["oversize"] += 1
            return
        frames = recorder.frames
        if any(region.find(_ERROR) >= 0 for region in frames):
            skipped["error"] += 1
            return
        if not self._cfg.cache_length_finish and any(_LENGTH.search(region) for region in frames):
            skipped["length"] += 1
            return
        entry = Entry(
            stream=True,
            body=b"",
            frames=frames,
            gaps_s=recorder.gaps_s,
            usage=_encode(usage),
            provider=target.provider.name,
            model=target.model,
            text=call.endpoint == "text",
        )
        await self._put(ticket, entry)

    async def _put(self, ticket: CacheTicket, entry: Entry) -> None:
        if self._skipping():
            self.meters.skipped["store_error"] += 1
            return
        value = _encode_entry(entry)
        store = self._store
        if store.inline:
            await self._write(ticket, value)
            return
        if len(self._pending) >= MAX_PENDING_WRITES:
            self.meters.skipped["busy"] += 1
            return
        # In the background: the client does not wait for a remote store's round trip.
        task = asyncio.get_running_loop().create_task(self._write(ticket, value))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, ticket: CacheTicket, value: bytes) -> None:
        try:
            await self._store.put(ticket.entry_id, ticket.namespace, value, ttl_s=ticket.ttl_s)
        except StoreUnavailable as e:
            self._failed(e)
            self.meters.skipped["store_error"] += 1
            return
        self._store_down = False
        self.meters.stored += 1
        if self.semantic is not None:
            await self.semantic.remember(ticket)

    async def delete(self, entry_id: str) -> bool:
        """Raises StoreUnavailable: the admin API says so."""
        deleted = await self._store.delete(entry_id)
        if self._vectors is not None:
            await self._vectors.remove(entry_id)
        return deleted

    async def delete_namespace(self, key: str) -> int:
        ns = namespace_id(key)
        n = await self._store.delete_namespace(ns)
        if self._vectors is not None:
            await self._vectors.remove_namespace(ns)
        return n

    async def drain(self) -> None:
        """Waits for the writes under way (a shutdown, a test)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


def usage_of(entry: Entry) -> Usage:
    """The usage an entry's answer was accounted with."""
    return _decode_usage(entry.usage) if entry.usage else Usage()


def completion_of(entry: Entry) -> dict[str, Any]:
    """An entry's answer as a completion object (a stream's assembled), usage without
    cost: a stream that carried none gets the usage it was accounted with."""
    if not entry.stream:
        body: dict[str, Any] = _decode_any(entry.body)
        return body
    body = assemble(entry.frames, text=entry.text)
    if "usage" not in body and entry.usage:
        body["usage"] = _decode_any(entry.usage)
    return body
