"""``GET /health`` (and ``HEAD``): liveness, draining, and each provider's state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from gateway import codec
from gateway.routing.providers import Provider
from gateway.server.dispatch import JSON

_HEALTH = b'{"status":"ok"}'
_DRAINING = b'{"status":"draining"}'


class _KeyState(msgspec.Struct):
    name: str
    cooling_down: bool
    cooldown_remaining_s: float


class _ProviderState(msgspec.Struct):
    dialect: str
    last_success: str | None  # RFC 3339, UTC; None: none since start-up or the last reload
    last_failure: str | None
    last_failure_status: int | None  # None: a network failure or timeout (or no failure)
    keys: list[_KeyState]


class _HealthReport(msgspec.Struct):
    status: str
    providers: dict[str, _ProviderState]


def _rfc3339(t: float) -> str | None:
    if not t:
        return None
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Health:
    """``GET /health`` (and ``HEAD``): 200 ``{"status":"ok"}``, then 503
    ``{"status":"draining"}`` from the moment the process begins to shut down, so a load
    balancer stops sending it traffic. ``?providers=1`` adds each provider's last success
    and failure and its keys' cool-downs (with an admin token configured, for it only).
    One per process: it outlives config reloads, which hand it the providers they built
    (``providers``)."""

    __slots__ = ("admin_digest", "draining", "providers")

    def __init__(self) -> None:
        self.draining = False
        self.providers: Mapping[str, Provider] = {}
        # With an admin token configured, the providers' state (key names, failures) is
        # shown only to it; without one it is as open as /metrics.
        self.admin_digest: bytes | None = None

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        status = 503 if self.draining else 200
        if request.query_string and request.query.get("providers") in ("1", "true"):
            if self.admin_digest is not None:
                from gateway.server.admin import check_admin  # only for this rare query

                check_admin(request, self.admin_digest)
            report = _HealthReport(status="draining" if self.draining else "ok", providers=self._states())
            return web.Response(status=status, body=codec.encode(report), content_type=JSON)
        return web.Response(status=status, body=_DRAINING if self.draining else _HEALTH, content_type=JSON)

    def _states(self) -> dict[str, _ProviderState]:
        states = {}
        for name, p in self.providers.items():
            ring = p.keys
            keys = [
                _KeyState(name=key, cooling_down=left > 0, cooldown_remaining_s=round(left, 3))
                for key, left in zip(ring.names, ring.cooling(), strict=True)
            ]
            states[name] = _ProviderState(
                dialect=p.dialect,
                last_success=_rfc3339(ring.last_success),
                last_failure=_rfc3339(ring.last_failure),
                last_failure_status=ring.last_failure_status,
                keys=keys,
            )
        return states
