"""Who is calling, what they may use, and how much: credentials to principals, model
allow/deny lists, and admission against rate limits, concurrency caps and budgets kept
in the state store (``gateway.state``: in memory, or Redis shared by every process).

A request's order: identify (401), validate (400), authorize its targets (403), admit
(429 with Retry-After, 402 for a budget), relay, settle (the real tokens and cost
replace the admission's estimates, streams included, a cut stream for what passed).

Credentials: ``x-bf-vk``, ``Authorization: Bearer``, ``x-api-key``, ``api-key``,
``x-goog-api-key``, first found. Secrets are looked up by their SHA-256 (a dict lookup
on a digest leaks nothing useful by timing) and the match confirmed with
``hmac.compare_digest``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable

from aiohttp import web

from gateway.config import AuthConfig, VirtualKeyConfig
from gateway.errors import BudgetExceeded, Forbidden, GatewayError, RateLimited, StoreUnavailable, Unauthorized
from gateway.metrics import Metrics
from gateway.routing.table import Target
from gateway.state import Limit, Limits, Refusal, Store, Ticket, parse_window
from gateway.state import StoreUnavailable as StoreDown

log = logging.getLogger("gateway.governance")

CREDENTIAL_HEADERS = ("x-bf-vk", "authorization", "x-api-key", "api-key", "x-goog-api-key")
NANO = 1_000_000_000  # budgets and costs are counted in nano-USD, integers


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


def limits_of(vk: VirtualKeyConfig, *, principal: str, anchor: float) -> Limits | None:
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


def principal_of(vk: VirtualKeyConfig, *, id: str, anchor: float) -> Principal:
    return Principal(
        id=id,
        name=vk.name,
        kind="virtual_key",
        secret_digest=digest(vk.value),
        providers=frozenset(vk.providers) if vk.providers is not None else None,
        models=vk.models,
        deny=vk.deny_models,
        limits=limits_of(vk, principal=id, anchor=anchor),
        expires_at=vk.expires_at.timestamp() if vk.expires_at is not None else None,
    )


class Grant:
    """What an admitted request holds until it ends."""

    __slots__ = ("principal", "ticket")

    def __init__(self, principal: Principal, ticket: Ticket | None) -> None:
        self.principal = principal
        self.ticket = ticket


class Governor:
    __slots__ = ("_by_digest", "_fail_open", "_inactive", "_metrics", "_required", "_settling", "store")

    def __init__(self, cfg: AuthConfig, store: Store, *, fail_open: bool, metrics: Metrics) -> None:
        self.store = store
        self._required = cfg.required
        self._fail_open = fail_open
        self._metrics = metrics
        self._by_digest: dict[bytes, Principal] = {}
        self._inactive: dict[bytes, str] = {}  # digest -> why the key is refused
        for t in cfg.tokens:
            d = digest(t.value)
            self._by_digest[d] = Principal(id=f"token:{t.name}", name=t.name, kind="token", secret_digest=d)
        for vk in cfg.virtual_keys:
            p = principal_of(vk, id=f"vk:{vk.name}", anchor=0.0)
            if vk.active:
                self._by_digest[p.secret_digest] = p
            else:
                self._inactive[p.secret_digest] = f"virtual key '{vk.name}' is not active"
        self._settling: set[asyncio.Task[None]] = set()

    @staticmethod
    def enabled(cfg: AuthConfig) -> bool:
        """Whether requests need a look at all (the default config: no)."""
        return cfg.required or bool(cfg.tokens or cfg.virtual_keys)

    async def identify(self, request: web.BaseRequest) -> Principal:
        secret = _credential(request)
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
            if p.expires_at is not None and time.time() >= p.expires_at:
                raise self._refused(
                    "unauthorized", Unauthorized(f"virtual key '{p.name}' has expired", code="key_expired")
                )
            return p
        why = self._inactive.get(d)
        if why is not None:
            raise self._refused("unauthorized", Unauthorized(why, code="key_inactive"))
        if self._required:
            raise self._refused(
                "unauthorized", Unauthorized("invalid credentials: not a gateway token or virtual key of this gateway")
            )
        return ANONYMOUS  # an SDK's placeholder key, with auth off

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
            raise self._refused(reason, _refusal(principal, out))
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


def _credential(request: web.BaseRequest) -> str | None:
    h = request.headers
    for name in CREDENTIAL_HEADERS:
        value = h.get(name)
        if value:
            if name == "authorization":
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    continue
                return token.strip()
            return value.strip()
    return None


def _refusal(principal: Principal, r: Refusal) -> GatewayError:
    retry = max(1, round(r.retry_after_s))
    if r.kind == "concurrency":
        err: GatewayError = RateLimited(
            f"virtual key '{principal.name}' has too many requests in flight; retry shortly",
            code="concurrency_limit_exceeded",
        )
    elif r.kind == "budget":
        assert r.limit is not None
        err = BudgetExceeded(
            f"virtual key '{principal.name}' has spent its budget of ${r.limit.amount / NANO:g} per "
            f"{r.limit.window.text}; it renews in {retry} s"
        )
    else:
        assert r.limit is not None
        err = RateLimited(
            f"virtual key '{principal.name}' is over its limit of {r.limit.amount} {r.kind} per "
            f"{r.limit.window.text}; retry in {retry} s"
        )
    err.headers = (("Retry-After", str(retry)),)
    return err
