"""The contract the stores keep: in memory for one process (``MemoryStore``), the
supervisor's memory for its workers (``LocalStore``), Redis for many processes and
replicas (``RedisStore``). The request log store (``sqlite.LogStore``) is not one: it
keeps rows of finished requests for ``/api/logs`` and holds none of this state."""

from __future__ import annotations

from typing import Protocol

from gateway.state.limits import Limit, Limits, Refusal, Ticket


class StoreUnavailable(Exception):
    """The shared store could not be reached or answered with an error; the message
    names the operation and never carries the store's password."""


class Store(Protocol):
    async def admit(self, limits: Limits, *, now: float, tokens: int, cost: int) -> Ticket | Refusal:
        """All or nothing: either every limit and the concurrency cap pass and the request
        is counted (in flight, requests, reserved tokens and cost), or nothing changes."""
        ...

    async def settle(self, limits: Limits, ticket: Ticket, *, tokens: int, cost: int) -> None:
        """Frees the in-flight slot and replaces the reservations with what was used, in
        the periods charged at admission. A second settle of one ticket does nothing."""
        ...

    async def usage(self, limits: Limits, *, now: float) -> list[tuple[Limit, int, float]]:
        """Per limit: used in the current period (reservations included) and its end."""
        ...

    async def job_create(self, job_id: str, owner: str, record: bytes, *, ttl_s: float, max_pending: int) -> bool:
        """False when ``max_pending`` jobs are unfinished, or ``job_id`` exists."""
        ...

    async def job_update(self, job_id: str, record: bytes, *, ttl_s: float, finished: bool) -> None:
        """Replaces the record and its TTL; a finished job stops counting as pending."""
        ...

    async def job_get(self, job_id: str) -> tuple[str, bytes] | None:
        """(owner, record); None when unknown or expired."""
        ...

    async def response_put(self, response_id: str, owner: str, record: bytes, *, ttl_s: float) -> None:
        """Stores (or replaces) a kept response for ``ttl_s``. The memory stores are
        bounded by bytes: past their cap they forget the least recently used first."""
        ...

    async def response_get(self, response_id: str) -> tuple[str, bytes] | None:
        """(owner, record); None when unknown, expired, deleted or forgotten."""
        ...

    async def response_delete(self, response_id: str) -> bool:
        """False when there was nothing to delete."""
        ...

    async def key_put(self, key_id: str, secret_hash: str, record: bytes) -> None: ...

    async def key_create(self, key_id: str, secret_hash: str, record: bytes) -> bool:
        """``key_put`` unless ``key_id`` exists (then False, nothing changes): one of two
        concurrent creations of one id wins, on any number of processes."""
        ...

    async def key_by_hash(self, secret_hash: str) -> bytes | None: ...

    async def key_get(self, key_id: str) -> bytes | None: ...

    async def key_list(self) -> list[bytes]: ...

    async def key_delete(self, key_id: str) -> bool: ...

    async def close(self) -> None: ...
