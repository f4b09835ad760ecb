"""Who is calling, what they may use, and how much: credentials to principals, model
allow/deny lists, and admission against rate limits, concurrency caps and budgets kept
in the state store (``gateway.state``: in memory, or Redis shared by every process).

A request's order: identify (401), validate (400), authorize its targets (403), admit
(429 with Retry-After, 402 for a budget), relay, settle (the real tokens and cost
replace the admission's estimates, streams included, a cut stream for what passed).

Credentials: ``x-bf-vk``, ``Authorization: Bearer``, ``x-api-key``, ``api-key``,
``x-goog-api-key``, first found. Secrets are looked up by their SHA-256 (a dict lookup
on a digest leaks nothing useful by timing) and the match confirmed with
``hmac.compare_digest``. Keys of the config file are found in a dict, without an await;
keys created through the admin API (``server/admin``) are found in the store by the hex
digest, and what was found (or not) is cached for ``auth.key_cache_s``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

import msgspec

from gateway.config import AuthConfig, KeySpecConfig
from gateway.errors import BudgetExceeded, Forbidden, GatewayError, RateLimited, StoreUnavailable, Unauthorized
from gateway.metrics import Metrics
from gateway.routing.table import Target
from gateway.state import Limit, Limits, Refusal, Store, Ticket, parse_window
from gateway.state import StoreUnavailable as StoreDown

log = logging.getLogger("gateway.governance")

CREDENTIAL_HEADERS = ("x-bf-vk", "authorization", "x-api-key", "api-key", "x-goog-api-key")
# Where a client's own provider key is read from (x-bf-direct-key): the same, but x-bf-vk,
# which carries the caller's gateway credential then.
PROVIDER_KEY_HEADERS = CREDENTIAL_HEADERS[1:]
DIRECT_KEY_HEADER = "x-bf-direct-key"
# What the admin API's secrets start with; a credential of this shape is meant for the gateway.
VIRTUAL_KEY_PREFIX = "sk-bf-"
NANO = 1_000_000_000  # budgets and costs are counted in nano-USD, integers
# Unknown credentials remembered per process: enough for every SDK placeholder and
# mistyped key in use, bounded so random credentials cannot grow memory (~2 MB full).
MAX_UNKNOWN = 10_000
SWEEP_EVERY_S = 60.0  # cached runtime keys past their time are dropped at most this often


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Principal:
    """A resolved caller. ``limits`` is None when nothing is counted for it."""

    __slots__ = ("deny", "expires_at", "id", "kind", "limits", "models", "name", "providers", "secret_digest")

    def __init__(
        self,
        *,
        id: str,
        name: str,
        kind: str,
        secret_digest: bytes = b"",
        providers: frozenset[str] | None = None,
        models: tuple[str, ...] | None = None,
        deny: tuple[str, ...] = (),
        limits: Limits | None = None,
        expires_at: float | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.kind = kind  # "anonymous", "token", "virtual_key"
        self.secret_digest = secret_digest
        self.providers = providers
        self.models = models
        self.deny = deny
        self.limits = limits
        self.expires_at = expires_at

    def may_use(self, target: Target) -> str | None:
        """Why this principal may not use ``target``; None when it may."""
        provider = target.provider.name
        if self.providers is not None and provider not in self.providers:
            return f"provider '{provider}' is not allowed for key '{self.name}'"
        full = f"{provider}/{target.model}"
        if self.models is not None and not any(fnmatch.fnmatchcase(full, p) for p in self.models):
            return f"model '{full}' is not allowed for key '{self.name}'"
        if any(fnmatch.fnmatchcase(full, p) for p in self.deny):
            return f"model '{full}' is denied for key '{self.name}'"
        return None


ANONYMOUS = Principal(id="anonymous", name="anonymous", kind="anonymous")


class KeyRecord(KeySpecConfig, frozen=True, forbid_unknown_fields=False, kw_only=True):
    """A key created through the admin API, as the store keeps it (msgspec JSON): its
    spec, without the secret or its hash. Unknown fields are ignored, so a record
    written by a newer gateway still reads during a rolling upgrade."""

    created_at: datetime
    # The counters' owner: "key:<name>:<random>", so a name revoked and created again
    # starts with fresh counters, and never meets a config key's "vk:<name>".
    principal: str


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(KeyRecord).decode


def limits_of(vk: KeySpecConfig, *, principal: str, anchor: float) -> Limits | None:
    out: list[Limit] = []
    for b in vk.budgets:
        out.append(Limit(kind="budget", amount=round(b.usd * NANO), window=parse_window(b.window, calendar=b.calendar)))
    for r in vk.rate_limits:
        w = parse_window(r.window, calendar=r.calendar)
        if r.requests is not None:
            out.append(Limit(kind="requests", amount=r.requests, window=w))
        if r.tokens is not None:
            out.append(Limit(kind="tokens", amount=r.tokens, window=w))
    if not out and vk.max_concurrency is None:
        return None
    return Limits(principal=principal, anchor=anchor, limits=tuple(out), max_concurrency=vk.max_concurrency)


def config_principal_id(name: str) -> str:
    """The counters' owner of a config file's key."""
    return f"vk:{name}"


def principal_of(vk: KeySpecConfig, *, id: str, secret_digest: bytes, anchor: float) -> Principal:
    return Principal(
        id=id,
        name=vk.name,
        kind="virtual_key",
        secret_digest=secret_digest,
        providers=frozenset(vk.providers) if vk.providers is not None else None,
        models=vk.models,
        deny=vk.deny_models,
        limits=limits_of(vk, principal=id, anchor=anchor),
        expires_at=vk.expires_at.timestamp() if vk.expires_at is not None else None,
    )


class Inactive(NamedTuple):
    """A key that exists but is refused: why, and whose (its principal id, for the log)."""

    why: str
    principal: str


def runtime_principal(record: KeyRecord, *, secret_digest: bytes) -> Principal | Inactive:
    """A runtime key's principal, or why it is refused."""
    if not record.active:
        return Inactive(f"virtual key '{record.name}' is not active", record.principal)
    return principal_of(record, id=record.principal, secret_digest=secret_digest, anchor=0.0)


class RuntimeKeys:
    """Keys created through the admin API, found in the store by their secret's hex
    SHA-256. What a look-up finds is cached for ``ttl_s``: a principal or why the key is
    refused, and (at most MAX_UNKNOWN) that no key has this secret."""

    __slots__ = ("_found", "_sweep_at", "_ttl_s", "_unknown", "store")

    def __init__(self, store: Store, *, ttl_s: float) -> None:
        self.store = store
        self._ttl_s = ttl_s
        self._found: dict[bytes, tuple[float, str, Principal | Inactive]] = {}  # digest -> (until, name, found)
        self._unknown: dict[bytes, float] = {}  # digest -> until; oldest first
        self._sweep_at = 0.0

    async def find(self, secret_digest: bytes) -> Principal | Inactive | None:
        """The key's principal, why it is refused, or None: no key has this secret.
        Raises the store's StoreUnavailable."""
        now = time.monotonic()
        hit = self._found.get(secret_digest)
        if hit is not None and hit[0] > now:
            return hit[2]
        until = self._unknown.get(secret_digest)
        if until is not None and until > now:
            return None
        raw = await self.store.key_by_hash(secret_digest.hex())
        now = time.monotonic()
        if now >= self._sweep_at:
            self._sweep(now)
        found: Principal | Inactive | None = None
        if raw is not None:
            try:
                record = decode_record(raw)
                found = runtime_principal(record, secret_digest=secret_digest)
            except (msgspec.MsgspecError, ValueError) as e:
                log.error("runtime key record unreadable, key refused: %s", e)
        self._unknown.pop(secret_digest, None)
        if found is None:
            self._found.pop(secret_digest, None)
            if len(self._unknown) >= MAX_UNKNOWN:
                del self._unknown[next(iter(self._unknown))]
            self._unknown[secret_digest] = now + self._ttl_s
        else:
            self._found[secret_digest] = (now + self._ttl_s, record.name, found)
        return found

    def forget(self, name: str) -> None:
        """Drops what is cached of key ``name``: revoked on this process, refused at once."""
        self._found = {d: e for d, e in self._found.items() if e[1] != name}

    def _sweep(self, now: float) -> None:
        self._sweep_at = now + SWEEP_EVERY_S
        self._found = {d: e for d, e in self._found.items() if e[0] > now}
        self._unknown = {d: t for d, t in self._unknown.items() if t > now}


class Grant:
    """What an admitted request holds until it ends."""

    __slots__ = ("principal", "ticket")

    def __init__(self, principal: Principal, ticket: Ticket | None) -> None:
        self.principal = principal
        self.ticket = ticket


class Governor:
    __slots__ = (
        "_by_digest",
        "_fail_open",
        "_inactive",
        "_metrics",
        "_required",
        "_runtime",
        "_settling",
        "completion_estimate",
        "store",
    )

    def __init__(self, cfg: AuthConfig, store: Store, *, fail_open: bool, metrics: Metrics) -> None:
        self.store = store
        self._required = cfg.required
        # Completion tokens a budget admission assumes for a request without max_tokens.
        self.completion_estimate = cfg.completion_estimate_tokens
        self._fail_open = fail_open
        self._metrics = metrics
        self._by_digest: dict[bytes, Principal] = {}
        self._inactive: dict[bytes, Inactive] = {}  # digest -> why the key is refused
        for t in cfg.tokens:
            d = digest(t.value)
            self._by_digest[d] = Principal(id=f"token:{t.name}", name=t.name, kind="token", secret_digest=d)
        for vk in cfg.virtual_keys:
            p = principal_of(vk, id=config_principal_id(vk.name), secret_digest=digest(vk.value), anchor=0.0)
            if vk.active:
                self._by_digest[p.secret_digest] = p
            else:
                self._inactive[p.secret_digest] = Inactive(f"virtual key '{vk.name}' is not active", p.id)
        # Runtime keys exist only where an admin API can create them.
        self._runtime = RuntimeKeys(store, ttl_s=cfg.key_cache_s) if cfg.admin_token else None
        self._settling: set[asyncio.Task[None]] = set()

    @staticmethod
    def enabled(cfg: AuthConfig) -> bool:
        """Whether requests need a look at all (the default config: no)."""
        return cfg.required or bool(cfg.tokens or cfg.virtual_keys or cfg.admin_token)

    def forget(self, name: str) -> None:
        """Key ``name`` was revoked: this process stops honouring it now, not after the cache time."""
        if self._runtime is not None:
            self._runtime.forget(name)

    async def identify(self, creds: Credentials) -> Principal:
        secret = creds.secret
        if secret is None:
            if self._required:
                raise self._refused(
                    "unauthorized",
                    Unauthorized("no credentials: send a gateway token or virtual key as 'Authorization: Bearer ...'"),
                )
            return ANONYMOUS
        d = digest(secret)
        p = self._by_digest.get(d)
        if p is not None and hmac.compare_digest(d, p.secret_digest):
            return self._unexpired(p)
        why = self._inactive.get(d)
        if why is None and self._runtime is not None:
            found = await self._find(self._runtime, d)
            if isinstance(found, Principal):  # the store matched the digest itself
                return self._unexpired(found)
            why = found
        if why is not None:
            err = Unauthorized(why.why, code="key_inactive")
            err.principal = why.principal  # the refusal is logged as the key's
            raise self._refused("unauthorized", err)
        if self._required or secret.startswith(VIRTUAL_KEY_PREFIX) or creds.in_vk_header:
            # With a client's own provider key, the gateway credential goes in x-bf-vk.
            hint = f" (with {DIRECT_KEY_HEADER}, send it in x-bf-vk)" if creds.with_direct_key else ""
            raise self._refused(
                "unauthorized",
                Unauthorized(f"invalid credentials: not a gateway token or virtual key of this gateway{hint}"),
            )
        # An SDK's placeholder key, with auth optional. A credential that claims to be one of
        # this gateway's (x-bf-vk, or sk-bf-...) is refused above: served anonymously, the
        # caller would believe its key's limits and budget applied.
        return ANONYMOUS

    def _unexpired(self, p: Principal) -> Principal:
        if p.expires_at is not None and time.time() >= p.expires_at:
            err = Unauthorized(f"virtual key '{p.name}' has expired", code="key_expired")
            err.principal = p.id
            raise self._refused("unauthorized", err)
        return p

    async def _find(self, runtime: RuntimeKeys, d: bytes) -> Principal | Inactive | None:
        try:
            return await runtime.find(d)
        except StoreDown as e:
            self._metrics.store_errors += 1
            how = "open" if self._fail_open else "closed"
            log.error("state store unavailable, failing %s: runtime keys cannot be looked up: %s", how, e)
            if self._fail_open and not self._required:
                # Anonymous callers are served here anyway: served, uncounted. With auth
                # required an unchecked credential is never let in, fail_open or not.
                return ANONYMOUS
            raise self._refused(
                "store_unavailable", StoreUnavailable("the gateway's state store is unavailable; try again shortly")
            ) from None

    def authorize(self, principal: Principal, targets: Iterable[tuple[Target, object]]) -> None:
        if principal.kind != "virtual_key":
            return
        for i, (target, _) in enumerate(targets):
            why = principal.may_use(target)
            if why is not None:
                raise self._refused("forbidden", Forbidden(why, param="model" if i == 0 else f"fallbacks[{i - 1}]"))

    async def admit(self, principal: Principal, *, tokens: int, cost_usd: float) -> Grant | None:
        limits = principal.limits
        if limits is None:
            return None
        try:
            out = await self.store.admit(limits, now=time.time(), tokens=tokens, cost=round(cost_usd * NANO))
        except StoreDown as e:
            self._metrics.store_errors += 1
            log.error("state store unavailable, failing %s: %s", "open" if self._fail_open else "closed", e)
            if self._fail_open:
                return None
            raise self._refused(
                "store_unavailable", StoreUnavailable("the gateway's state store is unavailable; try again shortly")
            ) from None
        if isinstance(out, Refusal):
            reason = {"concurrency": "concurrency", "budget": "budget"}.get(out.kind, "rate_limited")
            raise self._refused(reason, _refusal(principal, out, cost_usd=cost_usd))
        return Grant(principal, out)

    def _refused(self, reason: str, err: GatewayError) -> GatewayError:
        self._metrics.refused[reason] += 1
        return err

    def settle(self, grant: Grant, *, tokens: int, cost_usd: float) -> None:
        """Charge what the request used, off the request path."""
        task = asyncio.get_running_loop().create_task(self._settle(grant, tokens, cost_usd))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, grant: Grant, tokens: int, cost_usd: float) -> None:
        limits, ticket = grant.principal.limits, grant.ticket
        if limits is None or ticket is None:
            return
        try:
            await self.store.settle(limits, ticket, tokens=tokens, cost=round(cost_usd * NANO))
        except StoreDown as e:
            self._metrics.store_errors += 1
            log.error("state store unavailable: usage of '%s' not charged: %s", grant.principal.name, e)

    async def drain(self) -> None:
        """Until every pending charge is written (at shutdown)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)


class Credentials(NamedTuple):
    """What a request presents to governance, read from its headers by the server."""

    secret: str | None  # the gateway credential, from the first of CREDENTIAL_HEADERS found
    in_vk_header: bool  # sent in x-bf-vk: it claims to be one of this gateway's keys
    with_direct_key: bool  # x-bf-direct-key came too (the 401 then says where the key goes)


def credentials(headers: Mapping[str, str]) -> Credentials:
    return Credentials(credential(headers), "x-bf-vk" in headers, DIRECT_KEY_HEADER in headers)


def credential(headers: Mapping[str, str], *, names: tuple[str, ...] = CREDENTIAL_HEADERS) -> str | None:
    """The secret the client sent, from the first of ``names`` found (``headers``: the
    request's, case-insensitive)."""
    h = headers
    for name in names:
        value = h.get(name)
        if value:
            if name == "authorization":
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    continue
                return token.strip()
            return value.strip()
    return None


def _refusal(principal: Principal, r: Refusal, *, cost_usd: float) -> GatewayError:
    retry = max(1, round(r.retry_after_s))
    if r.kind == "concurrency":
        err: GatewayError = RateLimited(
            f"virtual key '{principal.name}' has too many requests in flight; retry shortly",
            code="concurrency_limit_exceeded",
        )
    elif r.kind == "budget":
        assert r.limit is not None
        err = BudgetExceeded(
            f"virtual key '{principal.name}' has not enough of its budget of ${r.limit.amount / NANO:g} per "
            f"{r.limit.window.text} left for this request (estimated at ${cost_usd:.6g}; a lower max_tokens "
            f"lowers the estimate); it renews in {retry} s"
        )
    else:
        assert r.limit is not None
        err = RateLimited(
            f"virtual key '{principal.name}' is over its limit of {r.limit.amount} {r.kind} per "
            f"{r.limit.window.text}; retry in {retry} s"
        )
    err.headers = (("Retry-After", str(retry)),)
    return err
