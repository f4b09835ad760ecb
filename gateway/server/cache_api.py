"""Invalidating the response cache, guarded by ``Authorization: Bearer <auth.admin_token>``:

  DELETE /api/cache/{cache_id}     one entry (the id ``extra_fields.cache_debug.cache_id`` reports)
  DELETE /api/cache?key=<namespace>  every entry made under that ``x-bf-cache-key``, any caller's

Served when an admin token and the cache are both configured; else 404.
"""

from __future__ import annotations

import logging
import re

import msgspec
from aiohttp import web
from msgspec import Struct

from gateway.errors import InvalidRequest, NotFound, StoreUnavailable
from gateway.governance import digest
from gateway.relay.cache import Cache
from gateway.server.admin import check_admin
from gateway.server.dispatch import JSON, Routes
from gateway.server.options import MAX_CACHE_KEY_CHARS
from gateway.state import StoreUnavailable as StoreDown

log = logging.getLogger("gateway.admin")

CACHE_PATH = "/api/cache"
ENTRY_PREFIX = "/api/cache/"
_ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")
_encode = msgspec.json.Encoder().encode


class Deleted(Struct, kw_only=True, omit_defaults=True):
    id: str | None = None
    key: str | None = None
    deleted: int


class CacheApi:
    __slots__ = ("_cache", "_token_digest")

    def __init__(self, *, admin_token: str, cache: Cache) -> None:
        self._token_digest = digest(admin_token)
        self._cache = cache

    async def delete_entry(self, request: web.BaseRequest) -> web.StreamResponse:
        check_admin(request, self._token_digest)
        entry_id = request.path[len(ENTRY_PREFIX) :]
        if not _ENTRY_ID.match(entry_id):
            raise NotFound(f"no cache entry with id {entry_id[:64]!r}", param="id", code="cache_entry_not_found")
        try:
            deleted = await self._cache.delete(entry_id)
        except StoreDown as e:
            raise _unavailable(e) from None
        if not deleted:
            raise NotFound(f"no cache entry with id '{entry_id}'", param="id", code="cache_entry_not_found")
        return web.Response(body=_encode(Deleted(id=entry_id, deleted=1)), content_type=JSON)

    async def delete_namespace(self, request: web.BaseRequest) -> web.StreamResponse:
        check_admin(request, self._token_digest)
        key = request.query.get("key")
        if key is None or not 0 < len(key) <= MAX_CACHE_KEY_CHARS:
            raise InvalidRequest(
                f"give the namespace to delete as ?key=<x-bf-cache-key> (1 to {MAX_CACHE_KEY_CHARS} characters)",
                param="key",
                code="invalid_value",
            )
        try:
            n = await self._cache.delete_namespace(key)
        except StoreDown as e:
            raise _unavailable(e) from None
        log.info("response cache: %d entries of a namespace deleted through the admin API", n)
        return web.Response(body=_encode(Deleted(key=key, deleted=n)), content_type=JSON)


def _unavailable(e: StoreDown) -> StoreUnavailable:
    log.error("response cache store unavailable: admin API: %s", e)
    return StoreUnavailable("the response cache's store is unavailable; try again shortly")


def routes(api: CacheApi) -> tuple[Routes, Routes]:
    """(exact routes, prefix routes)."""
    return {CACHE_PATH: {"DELETE": api.delete_namespace}}, {ENTRY_PREFIX: {"DELETE": api.delete_entry}}
