"""The store shared by every gateway process and replica: Redis, one Lua script per
operation that reads and writes (scripts.py), so N processes never overshoot a limit.

Key layout (``prefix`` defaults to "gw:"; the braces are a Redis Cluster hash tag, so a
principal's keys share a slot and one script may touch them all):

  {prefix}{<principal>}:c:<window>:<r|c>:<period id>   hash req, tok, tok_r, usd, usd_r;
                                                        TTL: period end - now + 60 s
  {prefix}{<principal>}:inflight                        zset slot id -> lease end (ms)
  {prefix}{jobs}:pending                                zset job id -> TTL end (ms)
  {prefix}{jobs}:j:<job id>                             hash owner, record; TTL ttl_s
  {prefix}{keys}:records | :by_hash | :hash_of          hashes id->record, hash->id, id->hash
  {prefix}resp:<response id>                            string <owner length>:<owner><record>;
                                                        TTL ttl_s (SET PX)

A kept response is one key, written and read whole in one command; it has no hash tag, so
under Redis Cluster responses spread over every slot rather than piling onto one.

In-flight slots are leases, not a bare counter: each admission adds its own entry that
expires ``inflight_lease_s`` (1 h) after it was taken, and settle removes it. A process
that dies holding slots frees them when their leases run out, one by one; no request
is expected to run for an hour.

Every Redis failure (refused, reset, timed out, error reply) becomes StoreUnavailable
within 2 x ``timeout_s``; the caller decides to fail open or closed. An admission that
timed out or was cancelled may still have run on the server: its request stays counted
(on the safe side), and its slot is freed by the next successful admission (``_orphans``)
rather than held for the whole lease.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from gateway.state import scripts
from gateway.state.limits import Limit, Limits, Plan, Refusal, Ticket, clamp, refusal
from gateway.state.store import StoreUnavailable

T = TypeVar("T")

GRACE_S = 60.0  # a period's counters outlive its end by this long: late settles still land
INFLIGHT_LEASE_S = 3600.0
# One immediate retry, on connection errors only: a pooled connection that Redis closed
# (a restart) fails on first use and the retry reconnects. Never on timeouts: the script
# may have run, and running an admission twice would count it twice.
RETRY = Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))
MAX_ORPHANS = 10_000  # slots to free after an outage; past this, their leases free them
KIND_CODE = {"requests": "r", "tokens": "t", "budget": "b"}


class RedisStore:
    __slots__ = (
        "_admit",
        "_deadline_s",
        "_job_create",
        "_job_update",
        "_jobs",
        "_key_by_hash",
        "_key_create",
        "_key_delete",
        "_key_put",
        "_keys",
        "_lease_ms",
        "_orphans",
        "_prefix",
        "_r",
        "_responses",
        "_secrets",
        "_settle",
    )

    def __init__(
        self, url: str, *, prefix: str = "gw:", timeout_s: float = 0.25, inflight_lease_s: float = INFLIGHT_LEASE_S
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"store prefix {prefix!r}: braces would break the keys' cluster hash tags")
        parts = urlsplit(url)
        # What must never appear in an error message: the password, raw and decoded.
        self._secrets = tuple(s for p in (parts.password or "",) for s in (p, unquote(p)) if s)
        try:
            self._r = Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=RETRY, decode_responses=False
            )
        except ValueError as e:
            raise ValueError(self._scrub(f"store URL: {e}")) from None
        self._prefix = prefix
        self._deadline_s = 2 * timeout_s
        self._lease_ms = str(max(1, round(inflight_lease_s * 1000)))
        self._orphans: list[tuple[str, str]] = []  # (in-flight key, slot) perhaps taken, never settled
        self._jobs = f"{prefix}{{jobs}}:"
        self._responses = f"{prefix}resp:"
        self._keys = [f"{prefix}{{keys}}:records", f"{prefix}{{keys}}:by_hash", f"{prefix}{{keys}}:hash_of"]
        reg = self._r.register_script
        self._admit = reg(scripts.ADMIT)
        self._settle = reg(scripts.SETTLE)
        self._job_create = reg(scripts.JOB_CREATE)
        self._job_update = reg(scripts.JOB_UPDATE)
        self._key_put = reg(scripts.KEY_PUT)
        self._key_create = reg(scripts.KEY_CREATE)
        self._key_by_hash = reg(scripts.KEY_BY_HASH)
        self._key_delete = reg(scripts.KEY_DELETE)

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    async def _run(self, op: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._deadline_s):
                return await call
        except (TimeoutError, RedisError, OSError) as e:  # asyncio.TimeoutError is TimeoutError
            detail = str(e) or "no answer in time"
            raise StoreUnavailable(self._scrub(f"redis {op} failed: {type(e).__name__}: {detail}")) from None

    def _counter(self, principal: str, name: str) -> str:
        return f"{self._prefix}{{{principal}}}:c:{name}"

    def _inflight(self, principal: str) -> str:
        return f"{self._prefix}{{{principal}}}:inflight"

    async def admit(self, limits: Limits, *, now: float, tokens: int, cost: int) -> Ticket | Refusal:
        tokens, cost = clamp(tokens), clamp(cost)
        plan = Plan(limits, now=now)
        cap = limits.max_concurrency
        if cap is None and not plan.names:
            return Ticket((), tokens, cost, "")
        slot = os.urandom(9).hex() if cap is not None else ""
        principal = limits.principal
        keys = [self._inflight(principal), *(self._counter(principal, n) for n in plan.names)]
        args: list[str | bytes | int] = [
            -1 if cap is None else cap,
            self._lease_ms,
            slot,
            tokens,
            cost,
            len(limits.limits),
        ]
        args.extend(math.ceil((end - now + GRACE_S) * 1000) for end in plan.ends)
        for limit, i in zip(limits.limits, plan.index, strict=True):
            args += (i + 1, KIND_CODE[limit.kind], limit.amount)
        try:
            failed: list[int] = await self._run("admit", self._admit(keys=keys, args=args))
        except (StoreUnavailable, asyncio.CancelledError):
            self._orphan(keys[0], slot)
            raise
        if self._orphans:
            await self._free_orphans()
        if failed:
            return refusal(limits, plan, [n - 1 for n in failed], now=now)
        return Ticket(tuple(plan.names), tokens, cost, slot)

    async def settle(self, limits: Limits, ticket: Ticket, *, tokens: int, cost: int) -> None:
        if ticket.settled:
            return
        if ticket.slot or ticket.counters:
            principal = limits.principal
            keys = [self._inflight(principal), *(self._counter(principal, n) for n in ticket.counters)]
            args: list[str | bytes | int] = [ticket.slot, ticket.tokens, ticket.cost, clamp(tokens), clamp(cost)]
            try:
                await self._run("settle", self._settle(keys=keys, args=args))
            except (StoreUnavailable, asyncio.CancelledError):
                self._orphan(keys[0], ticket.slot)
                raise
        ticket.settled = True

    def _orphan(self, key: str, slot: str) -> None:
        if slot and len(self._orphans) < MAX_ORPHANS:
            self._orphans.append((key, slot))

    async def _free_orphans(self) -> None:
        """Removes slots whose admission or settle failed half-way (ZREM of a slot that
        was never taken does nothing), once Redis answers again."""
        orphans, self._orphans = self._orphans, []
        pipe = self._r.pipeline(transaction=False)
        for key, slot in orphans:
            pipe.zrem(key, slot)
        try:
            await self._run("free slots", pipe.execute())
        except StoreUnavailable:
            self._orphans = (orphans + self._orphans)[:MAX_ORPHANS]

    async def usage(self, limits: Limits, *, now: float) -> list[tuple[Limit, int, float]]:
        plan = Plan(limits, now=now)
        if not plan.names:
            return []
        pipe = self._r.pipeline(transaction=False)
        for name in plan.names:
            pipe.hmget(self._counter(limits.principal, name), ["req", "tok", "tok_r", "usd", "usd_r"])
        rows: list[list[bytes | None]] = await self._run("usage", pipe.execute())
        out: list[tuple[Limit, int, float]] = []
        for limit, i in zip(limits.limits, plan.index, strict=True):
            req, tok, tok_r, usd, usd_r = (int(v or 0) for v in rows[i])
            used = req if limit.kind == "requests" else tok + tok_r if limit.kind == "tokens" else usd + usd_r
            out.append((limit, used, plan.ends[i]))
        return out

    def _job_keys(self, job_id: str) -> list[str]:
        return [self._jobs + "pending", f"{self._jobs}j:{job_id}"]

    async def job_create(self, job_id: str, owner: str, record: bytes, *, ttl_s: float, max_pending: int) -> bool:
        args: list[str | bytes | int] = [job_id, owner, record, _ms(ttl_s), max_pending]
        created: int = await self._run("job_create", self._job_create(keys=self._job_keys(job_id), args=args))
        return created == 1

    async def job_update(self, job_id: str, record: bytes, *, ttl_s: float, finished: bool) -> None:
        args: list[str | bytes | int] = [job_id, record, _ms(ttl_s), 1 if finished else 0]
        await self._run("job_update", self._job_update(keys=self._job_keys(job_id), args=args))

    async def job_get(self, job_id: str) -> tuple[str, bytes] | None:
        call: Awaitable[list[bytes | str | None]] = self._r.hmget(self._job_keys(job_id)[1], ["owner", "record"])
        owner, record = await self._run("job_get", call)
        if not isinstance(owner, bytes) or not isinstance(record, bytes):
            return None  # unknown or expired (responses are bytes: decode_responses=False)
        return owner.decode(), record

    async def response_put(self, response_id: str, owner: str, record: bytes, *, ttl_s: float) -> None:
        call: Awaitable[object] = self._r.set(self._responses + response_id, _pack(owner, record), px=_ms(ttl_s))
        await self._run("response_put", call)

    async def response_get(self, response_id: str) -> tuple[str, bytes] | None:
        call: Awaitable[bytes | str | None] = self._r.get(self._responses + response_id)
        value = await self._run("response_get", call)
        return _unpack(value) if isinstance(value, bytes) else None

    async def response_delete(self, response_id: str) -> bool:
        call: Awaitable[int] = self._r.delete(self._responses + response_id)
        return await self._run("response_delete", call) == 1

    async def key_put(self, key_id: str, secret_hash: str, record: bytes) -> None:
        await self._run("key_put", self._key_put(keys=self._keys, args=[key_id, secret_hash, record]))

    async def key_create(self, key_id: str, secret_hash: str, record: bytes) -> bool:
        args: list[str | bytes | int] = [key_id, secret_hash, record]
        created: int = await self._run("key_create", self._key_create(keys=self._keys, args=args))
        return created == 1

    async def key_by_hash(self, secret_hash: str) -> bytes | None:
        record: bytes | None = await self._run("key_by_hash", self._key_by_hash(keys=self._keys, args=[secret_hash]))
        return record

    async def key_get(self, key_id: str) -> bytes | None:
        call: Awaitable[bytes | str | None] = self._r.hget(self._keys[0], key_id)
        record = await self._run("key_get", call)
        return record if isinstance(record, bytes) else None

    async def key_list(self) -> list[bytes]:
        call: Awaitable[list[bytes | str]] = self._r.hvals(self._keys[0])
        return [r for r in await self._run("key_list", call) if isinstance(r, bytes)]

    async def key_delete(self, key_id: str) -> bool:
        deleted: int = await self._run("key_delete", self._key_delete(keys=self._keys, args=[key_id]))
        return deleted == 1

    async def close(self) -> None:
        await self._r.aclose()


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _pack(owner: str, record: bytes) -> bytes:
    """One string for a kept response: the owner's length, its bytes, the record."""
    o = owner.encode()
    return b"%d:%b%b" % (len(o), o, record)


def _unpack(value: bytes) -> tuple[str, bytes] | None:
    size, colon, rest = value.partition(b":")
    if not colon or not size.isdigit() or int(size) > len(rest):
        return None  # not a value this store wrote
    n = int(size)
    return rest[:n].decode(), rest[n:]
