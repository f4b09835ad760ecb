"""The store of a single process: dicts, no awaits inside an operation, so each operation
is atomic under asyncio. Same semantics as the Redis store, without the sharing.

Memory is bounded: a window period's counters are dropped once the period has been over
for GRACE_S (swept at most once a minute of the callers' clock, and whenever the table is
full); past ``max_counters`` live counters the oldest are evicted, which forgets usage
(logged). In-flight counts need no lease here: they die with the process. Kept responses
are bounded by bytes (``max_response_bytes``): past it the expired go first, then the
least recently used, an eighth of the cap at a time (logged).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from gateway.state.limits import Limit, Limits, Plan, Refusal, Ticket, clamp, passes, refusal

log = logging.getLogger("gateway.state")

GRACE_S = 60.0  # a period's counters outlive its end by this long (as the Redis keys' TTL)
SWEEP_EVERY_S = 60.0
# ~200 bytes a counter: 200k of them (e.g. 20k keys with 10 windows each) is ~40 MB.
MAX_COUNTERS = 200_000
EVICT_FRACTION = 8  # when full of live counters, evict the oldest 1/8, not one per insert
# Kept responses (Responses API): a few KB to a few MB each. 256 MiB holds tens of
# thousands of ordinary conversations' turns in a process that should stay well under 1 GB.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# What an entry costs beyond its strings: its object, the dict's slot, the key.
RESPONSE_OVERHEAD_BYTES = 200


class _Counter:
    __slots__ = ("expires", "requests", "spent", "spent_r", "tokens", "tokens_r")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.requests = 0
        self.tokens = 0
        self.tokens_r = 0  # reserved by admitted requests not yet settled
        self.spent = 0  # nano-USD
        self.spent_r = 0


class _Job:
    __slots__ = ("expires", "owner", "record")

    def __init__(self, owner: str, record: bytes, expires: float) -> None:
        self.owner = owner
        self.record = record
        self.expires = expires  # time.monotonic()


class _Kept:
    __slots__ = ("expires", "owner", "record", "size")

    def __init__(self, owner: str, record: bytes, expires: float, size: int) -> None:
        self.owner = owner
        self.record = record
        self.expires = expires  # time.monotonic()
        self.size = size


class MemoryStore:
    __slots__ = (
        "_by_hash",
        "_counters",
        "_inflight",
        "_jobs",
        "_jobs_sweep_at",
        "_keys",
        "_kept",
        "_kept_bytes",
        "_kept_sweep_at",
        "_max_counters",
        "_max_kept_bytes",
        "_pending",
        "_sweep_at",
        "_zero",
    )

    def __init__(self, *, max_counters: int = MAX_COUNTERS, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._max_counters = max_counters
        self._max_kept_bytes = max_response_bytes
        self._kept: OrderedDict[str, _Kept] = OrderedDict()  # response id -> entry, least recently used first
        self._kept_bytes = 0
        self._kept_sweep_at = 0.0
        self._counters: dict[tuple[str, str], _Counter] = {}  # (principal, counter name)
        self._zero = _Counter(0.0)  # read in place of a counter that does not exist; never written
        self._sweep_at = 0.0
        self._inflight: dict[str, int] = {}
        self._jobs: dict[str, _Job] = {}
        self._pending: dict[str, float] = {}  # unfinished job -> when it expires
        self._jobs_sweep_at = 0.0
        self._keys: dict[str, tuple[str, bytes]] = {}  # key id -> (secret hash, record)
        self._by_hash: dict[str, str] = {}

    def __len__(self) -> int:
        """How many window-period counters are held (live or not yet swept)."""
        return len(self._counters)

    async def admit(self, limits: Limits, *, now: float, tokens: int, cost: int) -> Ticket | Refusal:
        tokens, cost = clamp(tokens), clamp(cost)
        if now >= self._sweep_at or len(self._counters) + len(limits.limits) > self._max_counters:
            self._make_room(now, need=len(limits.limits))
        principal = limits.principal
        plan = Plan(limits, now=now)
        found = [self._live(principal, name, now) for name in plan.names]
        failed: list[int] = []
        cap = limits.max_concurrency
        if cap is not None and self._inflight.get(principal, 0) >= cap:
            failed.append(-1)
        zero = self._zero
        for i, limit in enumerate(limits.limits):
            c = found[plan.index[i]] or zero
            if not passes(
                limit.kind,
                limit.amount,
                requests=c.requests,
                tokens=c.tokens + c.tokens_r,
                spent=c.spent + c.spent_r,
                cost=cost,
            ):
                failed.append(i)
        if failed:
            return refusal(limits, plan, failed, now=now)
        for name, end, old in zip(plan.names, plan.ends, found, strict=True):
            c = old or _Counter(end + GRACE_S)
            if old is None:
                self._counters[(principal, name)] = c
            c.requests += 1
            c.tokens_r += tokens
            c.spent_r += cost
        slot = ""
        if cap is not None:
            self._inflight[principal] = self._inflight.get(principal, 0) + 1
            slot = "1"
        return Ticket(tuple(plan.names), tokens, cost, slot)

    async def settle(self, limits: Limits, ticket: Ticket, *, tokens: int, cost: int) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        principal = limits.principal
        if ticket.slot:
            n = self._inflight.get(principal, 0) - 1
            if n > 0:
                self._inflight[principal] = n
            else:
                self._inflight.pop(principal, None)
        tokens, cost = clamp(tokens), clamp(cost)
        for name in ticket.counters:
            c = self._counters.get((principal, name))
            if c is None:  # the period is long over and was dropped
                continue
            c.tokens_r = clamp(c.tokens_r - ticket.tokens)
            c.tokens += tokens
            c.spent_r = clamp(c.spent_r - ticket.cost)
            c.spent += cost

    async def usage(self, limits: Limits, *, now: float) -> list[tuple[Limit, int, float]]:
        plan = Plan(limits, now=now)
        out: list[tuple[Limit, int, float]] = []
        for limit, i in zip(limits.limits, plan.index, strict=True):
            c = self._live(limits.principal, plan.names[i], now) or self._zero
            if limit.kind == "requests":
                used = c.requests
            elif limit.kind == "tokens":
                used = c.tokens + c.tokens_r
            else:
                used = c.spent + c.spent_r
            out.append((limit, used, plan.ends[i]))
        return out

    def _live(self, principal: str, name: str, now: float) -> _Counter | None:
        c = self._counters.get((principal, name))
        if c is not None and c.expires <= now:
            del self._counters[(principal, name)]
            return None
        return c

    def _make_room(self, now: float, *, need: int) -> None:
        """Drops expired counters; evicts the oldest live ones if that is not enough for
        ``need`` more. Runs before an admission reads its counters, never in between."""
        self._sweep_at = now + SWEEP_EVERY_S
        self._counters = {k: c for k, c in self._counters.items() if c.expires > now}
        if len(self._counters) + need > self._max_counters:
            n = max(need, self._max_counters // EVICT_FRACTION)
            log.warning("state store full (%d live counters): forgetting the %d oldest", len(self._counters), n)
            for k in list(self._counters)[:n]:  # dicts keep insertion order: oldest first
                del self._counters[k]

    # Jobs: TTLs on the monotonic clock; a job counts as pending from creation until an
    # update marks it finished or its TTL runs out (a crashed worker frees its place).

    async def job_create(self, job_id: str, owner: str, record: bytes, *, ttl_s: float, max_pending: int) -> bool:
        now = time.monotonic()
        self._sweep_jobs(now)
        job = self._jobs.get(job_id)
        if job is not None and job.expires > now:
            return False
        if len(self._pending) >= max_pending:
            self._pending = {k: t for k, t in self._pending.items() if t > now}
            if len(self._pending) >= max_pending:
                return False
        self._jobs[job_id] = _Job(owner, record, now + ttl_s)
        self._pending[job_id] = now + ttl_s
        return True

    async def job_update(self, job_id: str, record: bytes, *, ttl_s: float, finished: bool) -> None:
        now = time.monotonic()
        job = self._jobs.get(job_id)
        if job is None or job.expires <= now:
            self._jobs.pop(job_id, None)
            self._pending.pop(job_id, None)
            return
        job.record = record
        job.expires = now + ttl_s
        if finished:
            self._pending.pop(job_id, None)
        elif job_id in self._pending:
            self._pending[job_id] = job.expires

    async def job_get(self, job_id: str) -> tuple[str, bytes] | None:
        job = self._jobs.get(job_id)
        if job is None or job.expires <= time.monotonic():
            return None
        return job.owner, job.record

    def _sweep_jobs(self, now: float) -> None:
        if now < self._jobs_sweep_at:
            return
        self._jobs_sweep_at = now + SWEEP_EVERY_S
        self._jobs = {k: j for k, j in self._jobs.items() if j.expires > now}
        self._pending = {k: t for k, t in self._pending.items() if t > now}

    # Kept responses: TTLs on the monotonic clock, bounded by bytes, least recently used
    # (read or written) forgotten first.

    @property
    def response_bytes(self) -> int:
        """What the kept responses take, as counted against ``max_response_bytes``."""
        return self._kept_bytes

    async def response_put(self, response_id: str, owner: str, record: bytes, *, ttl_s: float) -> None:
        now = time.monotonic()
        self._forget(response_id)
        size = len(record) + len(owner) + len(response_id) + RESPONSE_OVERHEAD_BYTES
        if size > self._max_kept_bytes:
            log.warning(
                "response %s not kept: %d bytes, more than the memory store holds (%d)",
                response_id,
                size,
                self._max_kept_bytes,
            )
            return
        if now >= self._kept_sweep_at or self._kept_bytes + size > self._max_kept_bytes:
            self._make_room_for_responses(now, need=size)
        self._kept[response_id] = _Kept(owner, record, now + ttl_s, size)
        self._kept_bytes += size

    async def response_get(self, response_id: str) -> tuple[str, bytes] | None:
        kept = self._kept.get(response_id)
        if kept is None:
            return None
        if kept.expires <= time.monotonic():
            self._forget(response_id)
            return None
        self._kept.move_to_end(response_id)
        return kept.owner, kept.record

    async def response_delete(self, response_id: str) -> bool:
        kept = self._kept.get(response_id)
        live = kept is not None and kept.expires > time.monotonic()
        self._forget(response_id)
        return live

    def _forget(self, response_id: str) -> None:
        kept = self._kept.pop(response_id, None)
        if kept is not None:
            self._kept_bytes -= kept.size

    def _make_room_for_responses(self, now: float, *, need: int) -> None:
        """Drops the expired; then, if ``need`` more bytes still do not fit, the least
        recently used down to 7/8 of the cap (a full store evicts in batches, not on
        every write)."""
        self._kept_sweep_at = now + SWEEP_EVERY_S
        for response_id in [k for k, v in self._kept.items() if v.expires <= now]:
            self._forget(response_id)
        cap = self._max_kept_bytes
        if self._kept_bytes + need <= cap:
            return
        target = min(cap - need, cap - cap // EVICT_FRACTION)
        n = 0
        while self._kept and self._kept_bytes > target:
            _, kept = self._kept.popitem(last=False)
            self._kept_bytes -= kept.size
            n += 1
        log.warning(
            "response store full (%d bytes): forgot the %d least recently used responses; "
            "continuing them answers previous_response_not_found",
            cap,
            n,
        )

    async def key_put(self, key_id: str, secret_hash: str, record: bytes) -> None:
        old = self._keys.get(key_id)
        if old is not None and old[0] != secret_hash and self._by_hash.get(old[0]) == key_id:
            del self._by_hash[old[0]]
        self._keys[key_id] = (secret_hash, record)
        self._by_hash[secret_hash] = key_id

    async def key_create(self, key_id: str, secret_hash: str, record: bytes) -> bool:
        if key_id in self._keys:
            return False
        await self.key_put(key_id, secret_hash, record)
        return True

    async def key_by_hash(self, secret_hash: str) -> bytes | None:
        key_id = self._by_hash.get(secret_hash)
        return None if key_id is None else self._keys[key_id][1]

    async def key_get(self, key_id: str) -> bytes | None:
        entry = self._keys.get(key_id)
        return None if entry is None else entry[1]

    async def key_list(self) -> list[bytes]:
        return [record for _, record in self._keys.values()]

    async def key_delete(self, key_id: str) -> bool:
        entry = self._keys.pop(key_id, None)
        if entry is None:
            return False
        if self._by_hash.get(entry[0]) == key_id:
            del self._by_hash[entry[0]]
        return True

    async def close(self) -> None:
        return None
