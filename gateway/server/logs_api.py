"""``GET /api/logs``: the request log store, filtered and paged, newest first.

Guarded as the admin API of keys: ``Authorization: Bearer <auth.admin_token>``; without
an admin token the route is not served (404). With the store off (``logs.enabled``
false) an authorised call is a 404 ``logs_disabled`` saying how to turn it on.

Query parameters, every one optional, each at most once; anything else is a 400 naming it:

  from, to   RFC 3339 with a zone, or Unix seconds; from <= ts < to
  model      the model as served (without the "provider/" prefix), exact
  provider   the provider that answered, exact
  status     an HTTP status (429) or a class (4xx)
  key        the caller's principal id: vk:<name> (config keys), key:<name>:<id> (admin
             API keys), token:<name>, anonymous
  limit      rows per page, 1-1000 (default 100)
  cursor     ``next_cursor`` of the previous page

Pages are keyset pages on (ts, rowid), not offsets: a deep page costs what the first
does, and rows written meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime

import msgspec
from aiohttp import web
from msgspec import Struct

from gateway.errors import InvalidRequest, NotFound, StoreUnavailable
from gateway.governance import digest
from gateway.server.admin import check_admin
from gateway.server.dispatch import JSON, Routes
from gateway.state.sqlite import LogEntry, LogQuery, LogStore, LogStoreError

log = logging.getLogger("gateway.logs")

LOGS_PATH = "/api/logs"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # ~0.4 MB of JSON, a few ms of SQLite
MAX_VALUE_CHARS = 512
PARAMS = ("from", "to", "model", "provider", "status", "key", "limit", "cursor")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_STATUS_CLASS = re.compile(r"([1-5])xx", re.IGNORECASE)
# An unescaped "+" in a query string arrives as a space: "...T12:00:00 02:00".
_LOST_PLUS = re.compile(r"(T[\d:.]+) (\d\d:?\d\d)$")


class LogList(Struct, kw_only=True):
    object: str = "list"
    data: list[LogEntry]
    next_cursor: str | None


_encode = msgspec.json.Encoder().encode
_cursor_decode = msgspec.json.Decoder(tuple[float, int]).decode


def cursor_of(position: tuple[float, int]) -> str:
    return base64.urlsafe_b64encode(_encode(position)).rstrip(b"=").decode()


def position_of(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, rowid = _cursor_decode(raw)
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise bad("cursor", "not a cursor this API returned") from None
    if not math.isfinite(ts):
        raise bad("cursor", "not a cursor this API returned")
    return ts, rowid


def bad(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"invalid query parameter '{param}': {why}", param=param, code="invalid_value")


def timestamp(param: str, value: str) -> float:
    """RFC 3339 with a zone, or Unix seconds."""
    if _NUMBER.fullmatch(value):
        return float(value)
    try:
        t = datetime.fromisoformat(_LOST_PLUS.sub(r"\1+\2", value))
    except ValueError:
        raise bad(param, f"expected RFC 3339 (2025-06-01T12:00:00Z) or Unix seconds, got {value!r}") from None
    if t.tzinfo is None:
        raise bad(param, f"give a time zone (2025-06-01T12:00:00Z), got {value!r}")
    return t.timestamp()


def parse(query: Mapping[str, str]) -> LogQuery:
    """The query parameters as a LogQuery; every problem is a 400 naming the parameter."""
    values: dict[str, str] = {}
    for name, value in query.items():
        if name not in PARAMS:
            raise InvalidRequest(
                f"unknown query parameter '{name}'; known: {', '.join(PARAMS)}", param=name, code="unknown_parameter"
            )
        if name in values:
            raise bad(name, "given more than once")
        if not value or len(value) > MAX_VALUE_CHARS:
            raise bad(name, f"expected 1-{MAX_VALUE_CHARS} characters")
        values[name] = value
    since = timestamp("from", values["from"]) if "from" in values else None
    until = timestamp("to", values["to"]) if "to" in values else None
    if since is not None and until is not None and until <= since:
        raise bad("to", "must be later than 'from'")
    status = status_class = None
    if "status" in values:
        s = values["status"]
        m = _STATUS_CLASS.fullmatch(s)
        if m is not None:
            status_class = int(m.group(1))
        elif s.isdigit() and 100 <= int(s) <= 599:
            status = int(s)
        else:
            raise bad("status", f"expected an HTTP status (429) or a class (4xx), got {s!r}")
    limit = DEFAULT_LIMIT
    if "limit" in values:
        if not values["limit"].isdigit() or not 1 <= int(values["limit"]) <= MAX_LIMIT:
            raise bad("limit", f"expected an integer from 1 to {MAX_LIMIT}, got {values['limit']!r}")
        limit = int(values["limit"])
    return LogQuery(
        since=since,
        until=until,
        model=values.get("model"),
        provider=values.get("provider"),
        status=status,
        status_class=status_class,
        principal=values.get("key"),
        before=position_of(values["cursor"]) if "cursor" in values else None,
        limit=limit,
    )


class LogsApi:
    __slots__ = ("_store", "_token_digest")

    def __init__(self, *, admin_token: str, store: LogStore | None) -> None:
        self._token_digest = digest(admin_token)
        self._store = store

    def _guard(self, request: web.BaseRequest) -> None:
        check_admin(request, self._token_digest)

    async def listing(self, request: web.BaseRequest) -> web.StreamResponse:
        self._guard(request)
        if self._store is None:
            raise NotFound(
                "the request log store is off; enable it with logs.enabled: true (or GATEWAY_LOGS_PATH)",
                code="logs_disabled",
            )
        q = parse(request.query)
        try:
            page = await self._store.query(q)
        except LogStoreError as e:
            log.error("GET /api/logs: %s", e)
            raise StoreUnavailable(str(e), code="logs_unavailable") from None
        cursor = cursor_of(page.next) if page.next is not None else None
        return web.Response(body=_encode(LogList(data=page.entries, next_cursor=cursor)), content_type=JSON)


def routes(api: LogsApi) -> Routes:
    return {LOGS_PATH: {"GET": api.listing}}
