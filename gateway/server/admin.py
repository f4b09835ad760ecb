"""The admin API of virtual keys, guarded by ``Authorization: Bearer <auth.admin_token>``:

  POST   /api/keys        create: 201 with the key's secret, shown this once
  GET    /api/keys        list every key, the config file's and the runtime ones
  GET    /api/keys/{id}   one key, with its usage per limit in the current period
  DELETE /api/keys/{id}   revoke a runtime key

A key's id is its name, unique across the config file's keys and the runtime ones, so
one URL scheme addresses both (a config key is shown, not revoked: 409). The secret is
made here (``sk-bf-`` + 32 random bytes, URL-safe base64); the store keeps its hex
SHA-256 and the spec (``governance.KeyRecord``), never the secret. Without an admin
token the routes are not served at all (404).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway import codec
from gateway.config import GatewayConfig, KeySpecConfig, key_problem
from gateway.errors import GatewayError, InvalidRequest, NotFound, StoreUnavailable, Unauthorized
from gateway.governance import (
    NANO,
    Governor,
    KeyRecord,
    config_principal_id,
    decode_record,
    digest,
    encode_record,
    limits_of,
    runtime_principal,
)
from gateway.metrics import Metrics
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, Routes
from gateway.state import Limits
from gateway.state import StoreUnavailable as StoreDown

log = logging.getLogger("gateway.admin")

T = TypeVar("T")

KEYS_PATH = "/api/keys"
KEY_PREFIX = "/api/keys/"
SECRET_PREFIX = "sk-bf-"
SECRET_BYTES = 32  # 256 bits: not guessable, and the hash alone cannot be reversed
# A key's spec is well under 1 KiB; this leaves room for long model lists.
MAX_BODY_BYTES = 64 * 1024
# Names travel in URLs (/api/keys/{id}) and in store keys: no escaping ever needed.
KeyName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
_UNKNOWN_FIELD = re.compile(r"unknown field `(?P<field>[^`]+)`")


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class KeyCreate(KeySpecConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The body of POST /api/keys: a config key's fields, without ``value``."""

    name: KeyName


class LimitUsage(Struct, kw_only=True):
    kind: str  # requests, tokens, budget
    window: str
    calendar: bool
    limit: int | float  # requests, tokens, or USD for a budget
    used: int | float  # in the current period, requests in flight included
    resets_at: datetime


class KeyView(KeySpecConfig, frozen=True, kw_only=True):
    """A key as the admin API shows it: never its secret, except ``value`` once, at creation."""

    id: str
    source: Literal["api", "config"]
    # Who its requests are logged as: the access log's "principal", /api/logs?key=.
    principal: str
    created_at: datetime | UnsetType = UNSET  # config keys: unset
    value: str | UnsetType = UNSET
    usage: list[LimitUsage] | UnsetType = UNSET


class KeyList(Struct, kw_only=True):
    data: list[KeyView]
    object: str = "list"


class Revoked(Struct, kw_only=True):
    id: str
    deleted: bool = True


_create = msgspec.json.Decoder(KeyCreate)
_encode = msgspec.json.Encoder().encode


def view(
    spec: KeySpecConfig,
    *,
    source: Literal["api", "config"],
    created_at: datetime | UnsetType = UNSET,
    value: str | UnsetType = UNSET,
    usage: list[LimitUsage] | UnsetType = UNSET,
) -> KeyView:
    """Copies the spec's fields only: a config key's ``value`` and a record's internals stay out."""
    fields = {f: getattr(spec, f) for f in KeySpecConfig.__struct_fields__}
    principal = spec.principal if isinstance(spec, KeyRecord) else config_principal_id(spec.name)
    return KeyView(
        **fields, id=spec.name, source=source, principal=principal, created_at=created_at, value=value, usage=usage
    )


def decode_spec(body: bytes) -> KeyCreate:
    try:
        return codec.decode_request(_create, body)
    except InvalidRequest as e:
        m = _UNKNOWN_FIELD.search(e.message)
        if e.param is None and m is not None:
            e.param = m.group("field")
            if e.param == "value":
                e.message += ": the gateway makes the secret and returns it once, in the answer"
        raise


def check_admin(request: web.BaseRequest, token_digest: bytes) -> None:
    """The admin API's guard: ``Authorization: Bearer <admin token>``, compared as SHA-256
    digests in constant time; anything else a 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the admin API needs 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(digest(token), token_digest):
        raise Unauthorized("invalid admin token")


class Admin:
    __slots__ = ("_by_name", "_governor", "_metrics", "_providers", "_token_digest")

    def __init__(self, cfg: GatewayConfig, *, governor: Governor, metrics: Metrics) -> None:
        if not cfg.auth.admin_token:
            raise ValueError("the admin API needs auth.admin_token")
        self._token_digest = digest(cfg.auth.admin_token)
        self._by_name = {vk.name: vk for vk in cfg.auth.virtual_keys}
        self._providers = frozenset(cfg.providers)
        self._governor = governor
        self._metrics = metrics

    def _guard(self, request: web.BaseRequest) -> None:
        check_admin(request, self._token_digest)

    async def _stored(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except StoreDown as e:
            self._metrics.store_errors += 1
            log.error("state store unavailable: admin API: %s", e)
            raise StoreUnavailable("the gateway's state store is unavailable; try again shortly") from None

    async def create(self, request: web.BaseRequest) -> web.StreamResponse:
        self._guard(request)
        spec = decode_spec(await read_bounded(request, limit=MAX_BODY_BYTES))
        problem = key_problem(spec, providers=self._providers)
        if problem is not None:
            field, why = problem
            raise InvalidRequest(f"invalid request at '{field}': {why}", param=field, code="invalid_value")
        if spec.name in self._by_name:
            raise Conflict(f"a key named '{spec.name}' is defined in the config file", param="name", code="key_exists")
        record = KeyRecord(
            **{f: getattr(spec, f) for f in KeySpecConfig.__struct_fields__},
            created_at=datetime.now(UTC).replace(microsecond=0),
            principal=f"key:{spec.name}:{secrets.token_hex(6)}",
        )
        try:
            runtime_principal(record, secret_digest=b"")  # as on use, where it must not fail
        except ValueError as e:
            raise InvalidRequest(f"invalid key: {e}", code="invalid_value") from None
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        # The store's look-up key: what Governor.identify looks a credential up by.
        secret_hash = digest(secret).hex()
        created = await self._stored(self._governor.store.key_create(spec.name, secret_hash, encode_record(record)))
        if not created:
            raise Conflict(f"a key named '{spec.name}' exists", param="name", code="key_exists")
        log.info("virtual key '%s' created through the admin API", spec.name)
        body = _encode(view(record, source="api", created_at=record.created_at, value=secret))
        return web.Response(status=201, body=body, content_type=JSON)

    async def listing(self, request: web.BaseRequest) -> web.StreamResponse:
        self._guard(request)
        data = [view(vk, source="config") for vk in self._by_name.values()]
        records = []
        for raw in await self._stored(self._governor.store.key_list()):
            try:
                records.append(decode_record(raw))
            except msgspec.MsgspecError as e:
                log.error("runtime key record unreadable, not listed: %s", e)
        records.sort(key=lambda r: (r.created_at, r.name))
        data += (view(r, source="api", created_at=r.created_at) for r in records)
        return web.Response(body=_encode(KeyList(data=data)), content_type=JSON)

    async def show(self, request: web.BaseRequest) -> web.StreamResponse:
        self._guard(request)
        key_id = request.path[len(KEY_PREFIX) :]
        config_key = self._by_name.get(key_id)
        if config_key is not None:
            limits = limits_of(config_key, principal=config_principal_id(key_id), anchor=0.0)
            usage = await self._usage(limits)
            return web.Response(body=_encode(view(config_key, source="config", usage=usage)), content_type=JSON)
        raw = await self._stored(self._governor.store.key_get(key_id))
        if raw is None:
            raise NotFound(f"no key with id '{key_id}'", param="id", code="key_not_found")
        record = decode_record(raw)
        usage = await self._usage(limits_of(record, principal=record.principal, anchor=0.0))
        body = _encode(view(record, source="api", created_at=record.created_at, usage=usage))
        return web.Response(body=body, content_type=JSON)

    async def _usage(self, limits: Limits | None) -> list[LimitUsage]:
        if limits is None:
            return []
        out = []
        for limit, used, end in await self._stored(self._governor.store.usage(limits, now=time.time())):
            usd = limit.kind == "budget"
            out.append(
                LimitUsage(
                    kind=limit.kind,
                    window=limit.window.text,
                    calendar=limit.window.calendar,
                    limit=limit.amount / NANO if usd else limit.amount,
                    used=used / NANO if usd else used,
                    resets_at=datetime.fromtimestamp(end, UTC),
                )
            )
        return out

    async def revoke(self, request: web.BaseRequest) -> web.StreamResponse:
        self._guard(request)
        key_id = request.path[len(KEY_PREFIX) :]
        if key_id in self._by_name:
            raise Conflict(
                f"key '{key_id}' is defined in the config file; remove it there to revoke it",
                param="id",
                code="key_in_config",
            )
        if not await self._stored(self._governor.store.key_delete(key_id)):
            raise NotFound(f"no key with id '{key_id}'", param="id", code="key_not_found")
        self._governor.forget(key_id)
        log.info("virtual key '%s' revoked through the admin API", key_id)
        return web.Response(body=_encode(Revoked(id=key_id)), content_type=JSON)


def routes(a: Admin) -> tuple[Routes, Routes]:
    """(exact routes, prefix routes) of the admin API."""
    return {KEYS_PATH: {"GET": a.listing, "POST": a.create}}, {KEY_PREFIX: {"GET": a.show, "DELETE": a.revoke}}
