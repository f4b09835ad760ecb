"""One MemoryStore shared by the worker processes of one machine.

``gateway serve --workers N`` without Redis: the supervisor holds the MemoryStore and
serves it on a Unix socket in its private directory (``LocalStoreServer``); each worker
talks to it through ``LocalStore``, which keeps the Store contract. Limits, budgets,
concurrency caps, async jobs, kept responses and runtime keys are then counted once for the machine, not
once per worker.

Wire: frames of a 4-byte big-endian length and a msgpack body. A request is
``[id, [op, args...]]``, a reply ``[id, error, value]`` (``error`` empty on success). One
connection per worker, opened on first use; requests carry ids, so concurrent calls
share it and their replies may come in any order. The server runs one operation at a
time per connection, each atomic (MemoryStore never awaits inside one).

A worker that goes away (crash, kill -9) closes its connection: the server settles what
it had admitted and not settled, charged at the estimates, so its concurrency slots are
freed at once and its requests stay counted (on the safe side, as with Redis). Every
failure to reach the server or to get an answer within ``timeout_s`` is StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec
from msgspec import Raw, Struct

from gateway.state.limits import Limit, Limits, Refusal, Ticket
from gateway.state.memory import MemoryStore
from gateway.state.store import StoreUnavailable

log = logging.getLogger("gateway.state")

T = TypeVar("T")

HEADER_BYTES = 4
READ_BYTES = 256 * 1024
# A job record holds a whole answer; anything near this size is a corrupt length.
MAX_FRAME_BYTES = 256 * 1024 * 1024


class _Admit(Struct, array_like=True, tag="admit"):
    limits: Limits
    now: float
    tokens: int
    cost: int


class _Settle(Struct, array_like=True, tag="settle"):
    limits: Limits
    ticket: Ticket
    tokens: int
    cost: int


class _Usage(Struct, array_like=True, tag="usage"):
    limits: Limits
    now: float


class _JobCreate(Struct, array_like=True, tag="job_create"):
    job_id: str
    owner: str
    record: bytes
    ttl_s: float
    max_pending: int


class _JobUpdate(Struct, array_like=True, tag="job_update"):
    job_id: str
    record: bytes
    ttl_s: float
    finished: bool


class _JobGet(Struct, array_like=True, tag="job_get"):
    job_id: str


class _ResponsePut(Struct, array_like=True, tag="response_put"):
    response_id: str
    owner: str
    record: bytes
    ttl_s: float


class _ResponseGet(Struct, array_like=True, tag="response_get"):
    response_id: str


class _ResponseDelete(Struct, array_like=True, tag="response_delete"):
    response_id: str


class _KeyPut(Struct, array_like=True, tag="key_put"):
    key_id: str
    secret_hash: str
    record: bytes


class _KeyCreate(Struct, array_like=True, tag="key_create"):
    key_id: str
    secret_hash: str
    record: bytes


class _KeyByHash(Struct, array_like=True, tag="key_by_hash"):
    secret_hash: str


class _KeyGet(Struct, array_like=True, tag="key_get"):
    key_id: str


class _KeyList(Struct, array_like=True, tag="key_list"):
    pass


class _KeyDelete(Struct, array_like=True, tag="key_delete"):
    key_id: str


_Op = (
    _Admit
    | _Settle
    | _Usage
    | _JobCreate
    | _JobUpdate
    | _JobGet
    | _ResponsePut
    | _ResponseGet
    | _ResponseDelete
    | _KeyPut
    | _KeyCreate
    | _KeyByHash
    | _KeyGet
    | _KeyList
    | _KeyDelete
)


class _Request(Struct, array_like=True):
    id: int
    op: _Op


class _Reply(Struct, array_like=True):
    id: int
    error: str
    value: Raw


class _Admitted(Struct, array_like=True):
    """admit's answer: Ticket and Refusal are untagged Structs, so not one union."""

    ticket: Ticket | None
    refusal: Refusal | None


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(_Request).decode
_decode_reply = msgspec.msgpack.Decoder(_Reply).decode
_admitted = msgspec.msgpack.Decoder(_Admitted).decode
_none = msgspec.msgpack.Decoder(type(None)).decode
_bool = msgspec.msgpack.Decoder(bool).decode
_usage = msgspec.msgpack.Decoder(list[tuple[Limit, int, float]]).decode
_job = msgspec.msgpack.Decoder(tuple[str, bytes] | None).decode  # job_get's and response_get's
_record = msgspec.msgpack.Decoder(bytes | None).decode
_records = msgspec.msgpack.Decoder(list[bytes]).decode


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(HEADER_BYTES, "big") + body


class LocalStoreServer:
    """The supervisor's side: one MemoryStore, served on a Unix socket."""

    def __init__(self, path: str, *, store: MemoryStore | None = None) -> None:
        self.path = path
        self.store = store if store is not None else MemoryStore()
        self._server: asyncio.AbstractServer | None = None
        self._slots = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, 0o600)  # the workers run as the supervisor's user

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()  # its reader sees the end: the connection's task ends
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        # What this connection admitted and has not settled, by the id its tickets carry
        # instead of MemoryStore's slot: (limits, MemoryStore's own ticket).
        held: dict[str, tuple[Limits, Ticket]] = {}
        buf = bytearray()
        try:
            while True:
                # Whatever has arrived: under load, many requests in one read, answered
                # with one write.
                data = await reader.read(READ_BYTES)
                if not data:
                    return
                buf += data
                replies = []
                start = 0
                while len(buf) - start >= HEADER_BYTES:
                    size = int.from_bytes(buf[start : start + HEADER_BYTES], "big")
                    if size > MAX_FRAME_BYTES:
                        log.error("local store: a %d-byte frame from a worker; connection closed", size)
                        return
                    end = start + HEADER_BYTES + size
                    if len(buf) < end:
                        break
                    request = _decode_request(buf[start + HEADER_BYTES : end])
                    start = end
                    try:
                        value, error = await self._run(request.op, held), ""
                    except Exception as e:  # the worker gets the reason as StoreUnavailable
                        log.exception("local store: %s failed", type(request.op).__name__)
                        value, error = None, f"{type(e).__name__}: {e}"
                    replies.append(_frame(_encode((request.id, error, value))))
                del buf[:start]
                if replies:
                    writer.write(b"".join(replies))
                    await writer.drain()
        except (ConnectionError, msgspec.DecodeError):
            pass  # the worker went away, or spoke garbage: either way this connection ends
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            # Charged at their estimates; the slots free now, not never.
            for limits, ticket in held.values():
                await self.store.settle(limits, ticket, tokens=ticket.tokens, cost=ticket.cost)
            writer.close()

    async def _run(self, op: _Op, held: dict[str, tuple[Limits, Ticket]]) -> Any:
        s = self.store
        match op:
            case _Admit(limits, now, tokens, cost):
                out = await s.admit(limits, now=now, tokens=tokens, cost=cost)
                if isinstance(out, Refusal):
                    return _Admitted(None, out)
                slot = str(next(self._slots))
                held[slot] = (limits, out)
                return _Admitted(Ticket(out.counters, out.tokens, out.cost, slot), None)
            case _Settle(limits, ticket, tokens, cost):
                # The ticket as sent, with MemoryStore's slot if this connection holds it
                # (a ticket it does not hold frees no slot).
                found = held.pop(ticket.slot, None)
                slot = found[1].slot if found is not None else ""
                await s.settle(
                    limits, Ticket(ticket.counters, ticket.tokens, ticket.cost, slot), tokens=tokens, cost=cost
                )
                return None
            case _Usage(limits, now):
                return await s.usage(limits, now=now)
            case _JobCreate(job_id, owner, record, ttl_s, max_pending):
                return await s.job_create(job_id, owner, record, ttl_s=ttl_s, max_pending=max_pending)
            case _JobUpdate(job_id, record, ttl_s, finished):
                return await s.job_update(job_id, record, ttl_s=ttl_s, finished=finished)
            case _JobGet(job_id):
                return await s.job_get(job_id)
            case _ResponsePut(response_id, owner, record, ttl_s):
                return await s.response_put(response_id, owner, record, ttl_s=ttl_s)
            case _ResponseGet(response_id):
                return await s.response_get(response_id)
            case _ResponseDelete(response_id):
                return await s.response_delete(response_id)
            case _KeyPut(key_id, secret_hash, record):
                return await s.key_put(key_id, secret_hash, record)
            case _KeyCreate(key_id, secret_hash, record):
                return await s.key_create(key_id, secret_hash, record)
            case _KeyByHash(secret_hash):
                return await s.key_by_hash(secret_hash)
            case _KeyGet(key_id):
                return await s.key_get(key_id)
            case _KeyList():
                return await s.key_list()
            case _KeyDelete(key_id):
                return await s.key_delete(key_id)
        raise TypeError(f"unknown operation {op!r}")


class _Client(asyncio.Protocol):
    """The worker's end of one connection: replies matched to their requests by id."""

    def __init__(self, on_orphan: Callable[[Limits, Raw], None]) -> None:
        self.transport: asyncio.Transport | None = None
        # id -> (its answer, the limits when it is an admission)
        self.pending: dict[int, tuple[asyncio.Future[_Reply], Limits | None]] = {}
        self._buffer = bytearray()
        self._on_orphan = on_orphan

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        start = 0
        while len(buf) - start >= HEADER_BYTES:
            end = start + HEADER_BYTES + int.from_bytes(buf[start : start + HEADER_BYTES], "big")
            if len(buf) < end:
                break
            reply = _decode_reply(buf[start + HEADER_BYTES : end])
            start = end
            entry = self.pending.pop(reply.id, None)
            if entry is None:
                continue
            future, limits = entry
            if not future.done():
                future.set_result(reply)
            elif limits is not None and not reply.error:  # an admission whose caller gave up
                self._on_orphan(limits, reply.value)
        del buf[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(StoreUnavailable("connection to the supervisor lost"))
        self.pending.clear()


class LocalStore:
    """A worker's Store: every operation a round trip to the supervisor's MemoryStore."""

    __slots__ = ("_client", "_connecting", "_ids", "_path", "_settling", "_timeout_s")

    def __init__(self, path: str, *, timeout_s: float = 0.25) -> None:
        self._path = path
        self._timeout_s = timeout_s
        self._client: _Client | None = None
        self._connecting: asyncio.Future[_Client] | None = None
        self._ids = itertools.count(1)
        self._settling: set[asyncio.Task[None]] = set()

    async def _connection(self) -> _Client:
        client = self._client
        if client is not None and client.transport is not None:
            return client
        if self._connecting is None:  # one connect for every caller waiting on it
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_unix_connection(lambda: _Client(self._orphan), self._path)
        self._client = client
        return client

    async def _call(self, op: _Op, decode: Callable[[Raw], T], *, limits: Limits | None = None) -> T:
        try:
            async with asyncio.timeout(self._timeout_s):
                client = await self._connection()
                if client.transport is None:
                    raise ConnectionResetError("connection to the supervisor lost")
                request_id = next(self._ids)
                future: asyncio.Future[_Reply] = asyncio.get_running_loop().create_future()
                client.pending[request_id] = (future, limits)
                client.transport.write(_frame(_encode(_Request(request_id, op))))
                reply = await future
        except (TimeoutError, OSError, StoreUnavailable) as e:
            detail = str(e) or "no answer in time"
            raise StoreUnavailable(f"local store {op.__struct_config__.tag} failed: {detail}") from None
        if reply.error:
            raise StoreUnavailable(f"local store {op.__struct_config__.tag} failed: {reply.error}")
        return decode(reply.value)

    def _orphan(self, limits: Limits, value: Raw) -> None:
        """An admission answered after its caller gave up (timed out or cancelled): the
        request did not run, so its slot is freed and nothing is charged."""
        ticket = _admitted(value).ticket
        if ticket is None:
            return
        task = asyncio.get_running_loop().create_task(self._free(limits, ticket))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _free(self, limits: Limits, ticket: Ticket) -> None:
        try:
            await self.settle(limits, ticket, tokens=0, cost=0)
        except StoreUnavailable as e:
            log.warning("an admission that timed out stays counted until this worker exits: %s", e)

    async def admit(self, limits: Limits, *, now: float, tokens: int, cost: int) -> Ticket | Refusal:
        out = await self._call(_Admit(limits, now, tokens, cost), _admitted, limits=limits)
        if out.ticket is not None:
            return out.ticket
        assert out.refusal is not None
        return out.refusal

    async def settle(self, limits: Limits, ticket: Ticket, *, tokens: int, cost: int) -> None:
        if ticket.settled:
            return
        await self._call(_Settle(limits, ticket, tokens, cost), _none)
        ticket.settled = True

    async def usage(self, limits: Limits, *, now: float) -> list[tuple[Limit, int, float]]:
        return await self._call(_Usage(limits, now), _usage)

    async def job_create(self, job_id: str, owner: str, record: bytes, *, ttl_s: float, max_pending: int) -> bool:
        return await self._call(_JobCreate(job_id, owner, record, ttl_s, max_pending), _bool)

    async def job_update(self, job_id: str, record: bytes, *, ttl_s: float, finished: bool) -> None:
        await self._call(_JobUpdate(job_id, record, ttl_s, finished), _none)

    async def job_get(self, job_id: str) -> tuple[str, bytes] | None:
        return await self._call(_JobGet(job_id), _job)

    async def response_put(self, response_id: str, owner: str, record: bytes, *, ttl_s: float) -> None:
        await self._call(_ResponsePut(response_id, owner, record, ttl_s), _none)

    async def response_get(self, response_id: str) -> tuple[str, bytes] | None:
        return await self._call(_ResponseGet(response_id), _job)

    async def response_delete(self, response_id: str) -> bool:
        return await self._call(_ResponseDelete(response_id), _bool)

    async def key_put(self, key_id: str, secret_hash: str, record: bytes) -> None:
        await self._call(_KeyPut(key_id, secret_hash, record), _none)

    async def key_create(self, key_id: str, secret_hash: str, record: bytes) -> bool:
        return await self._call(_KeyCreate(key_id, secret_hash, record), _bool)

    async def key_by_hash(self, secret_hash: str) -> bytes | None:
        return await self._call(_KeyByHash(secret_hash), _record)

    async def key_get(self, key_id: str) -> bytes | None:
        return await self._call(_KeyGet(key_id), _record)

    async def key_list(self) -> list[bytes]:
        return await self._call(_KeyList(), _records)

    async def key_delete(self, key_id: str) -> bool:
        return await self._call(_KeyDelete(key_id), _bool)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.transport is not None:
            client.transport.close()
