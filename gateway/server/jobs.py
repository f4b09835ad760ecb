"""Async inference: a chat or text completion accepted at once, relayed in the
background, its answer kept in the state store for the client to fetch later.

Two ways in, one kind of job:

- on the OpenAI completion routes (every prefix), ``x-bf-async: true`` submits the
  request and ``x-bf-async-id: <id>`` polls it. The answers are completion-shaped, so an
  OpenAI SDK parses them: 202 with ``choices: []`` and the job in
  ``extra_fields.async_job`` while it is pending or processing; once it ended, the
  answer exactly as the synchronous route would have served it (status, body, headers),
  an error included.
- ``POST /v1/async/chat/completions`` and ``/v1/async/completions`` submit, ``GET
  .../{job_id}`` polls, with the reference API's job object: 202 while pending or
  processing, 200 with ``status_code`` and ``result`` or ``error`` once it ended.
- on the SDK drop-in chat routes (Anthropic's ``/v1/messages``, Gemini's
  ``:generateContent``, under every prefix), the same headers; the answers are in the
  SDK's shape: 202 with a message without content (Anthropic) or a response without
  candidates (Gemini), the job in ``extra_fields.async_job``; once it ended, the answer
  the synchronous route would have served.

Whatever can refuse a request refuses it at submit, before a job exists: the body,
``stream``, the headers, credentials, model lists, limits, the pending cap. The job
runs in the submitting process; its record lives in the store (in memory, or in Redis
shared by every process), owned by the submitting credential: anyone else polling gets
the 404 of an unknown job. A process that dies leaves its unfinished jobs as they are:
they are not resumed, and their records expire after PENDING_TTL_S.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import msgspec
from aiohttp import web
from msgspec import UNSET, Raw, Struct, UnsetType
from msgspec.structs import replace

from gateway import codec
from gateway.config import JobsConfig
from gateway.errors import GatewayError, InvalidRequest, NotFound, RateLimited, StoreUnavailable, render_unexpected
from gateway.governance import Grant
from gateway.metrics import Metrics
from gateway.providers import Endpoint
from gateway.relay.call import Call, answer_headers
from gateway.relay.unary import unary
from gateway.schemas.chat import ChatCompletionRequest
from gateway.schemas.completions import CompletionRequest
from gateway.schemas.embeddings import EmbeddingsRequest
from gateway.server.body import read_bounded
from gateway.server.dispatch import JSON, Routes, error_response
from gateway.server.dropin import DropIn
from gateway.server.dropin import error_response as dropin_error
from gateway.server.handlers import Handlers, owner_of
from gateway.server.options import ASYNC_ID_HEADER, header_seconds
from gateway.state import Store
from gateway.state import StoreUnavailable as StoreDown

log = logging.getLogger("gateway.jobs")

RESULT_TTL_HEADER = "x-bf-async-job-result-ttl"
# An unfinished job's record lives this long: a job ends well within it (an attempt
# times out after at most 30 min), and the record of one whose process died expires.
PENDING_TTL_S = 86400.0
# Results sit in the store's memory (Redis RAM when shared): a week at most.
MAX_RESULT_TTL_S = 7 * 86400.0
# The routes the submit and poll paths live under ("/openai/v1/async/..." too).
ASYNC_PREFIXES = ("", "/openai")
ASYNC_PATHS: tuple[tuple[str, Endpoint], ...] = (
    ("/chat/completions", "chat"),
    ("/completions", "text"),
    ("/embeddings", "embeddings"),
)
_OBJECT = {"chat": "chat.completion", "text": "text_completion"}
_ID = re.compile(r"job-[0-9a-f]{32}")  # 128 random bits: unguessable
UNFINISHED = frozenset({"pending", "processing"})
# A submitted body -> the call to run, the model as requested, its max output tokens.
Prepare = Callable[[bytes], "tuple[Call, str, int]"]


class JobRecord(Struct, kw_only=True, omit_defaults=True):
    """A job as the store keeps it (msgspec JSON)."""

    # "chat", "text", "embeddings", or a drop-in's dialect ("anthropic"): a job is polled on its own
    # kind of route only.
    endpoint: str
    model: str  # as requested
    status: str  # pending, processing, completed, failed
    created_at: float  # Unix seconds
    result_ttl_s: float
    completed_at: float | UnsetType = UNSET
    status_code: int | UnsetType = UNSET
    headers: list[tuple[str, str]] = []
    body: Raw | UnsetType = UNSET  # the answer (JSON) as the synchronous route serves it


class JobObject(Struct, kw_only=True, omit_defaults=True):
    """The reference API's job object."""

    id: str
    status: str
    created_at: datetime
    completed_at: datetime | UnsetType = UNSET
    expires_at: datetime | UnsetType = UNSET
    status_code: int | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: Raw | UnsetType = UNSET  # the OpenAI error body: {"error": {...}}


class AsyncExtraFields(Struct):
    async_job: JobObject


class PendingCompletion(Struct, kw_only=True):
    """An unfinished job as a completion without choices, which an OpenAI SDK parses."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Raw]
    extra_fields: AsyncExtraFields


class PendingList(Struct, kw_only=True):
    """An unfinished embeddings job as a list without data, which an OpenAI SDK parses."""

    object: str
    data: list[Raw]
    model: str
    extra_fields: AsyncExtraFields


_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(JobRecord).decode


def result_ttl(request: web.BaseRequest, *, default: float) -> float:
    s = header_seconds(request, RESULT_TTL_HEADER, max_s=MAX_RESULT_TTL_S)
    return default if s is None else s


def max_out(req: ChatCompletionRequest | CompletionRequest | EmbeddingsRequest) -> int:
    if isinstance(req, EmbeddingsRequest):
        return 0
    out = req.max_completion_tokens if isinstance(req, ChatCompletionRequest) else None
    return out or req.max_tokens or 0


def job_object(job_id: str, record: JobRecord) -> JobObject:
    job = JobObject(id=job_id, status=record.status, created_at=_time(record.created_at))
    if record.completed_at is not UNSET:
        job.completed_at = _time(record.completed_at)
        job.expires_at = _time(record.completed_at + record.result_ttl_s)
        job.status_code = record.status_code
        if record.status == "completed":
            job.result = record.body
        else:
            job.error = record.body
    return job


def _time(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON)


class JobAborted(GatewayError):
    """A job the gateway's shutdown cut short (its grace ran out)."""

    status = 503
    type = "server_error"
    code = "gateway_shutdown"


class _Job:
    """A submitted job on its way: what the background task needs."""

    __slots__ = ("call", "grant", "id", "owner", "record")

    def __init__(self, job_id: str, owner: str, record: JobRecord, call: Call, grant: Grant | None) -> None:
        self.id = job_id
        self.owner = owner
        self.record = record
        self.call = call
        self.grant = grant


class Jobs:
    """Submits, runs and serves async jobs; one per process, built by the app."""

    __slots__ = ("_cfg", "_handlers", "_max_body", "_metrics", "_store", "_tasks")

    def __init__(
        self, handlers: Handlers, store: Store, *, cfg: JobsConfig, max_body_bytes: int, metrics: Metrics
    ) -> None:
        self._handlers = handlers
        self._store = store
        self._cfg = cfg
        self._max_body = max_body_bytes
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    async def route(self, request: web.BaseRequest, endpoint: Endpoint) -> web.StreamResponse:
        """``x-bf-async: true`` or ``x-bf-async-id`` on an OpenAI completion route."""
        found = await self._found_or_submitted(request, endpoint, lambda body: self._openai(request, body, endpoint))
        if isinstance(found, web.StreamResponse):
            return found
        job_id, record = found
        extra = AsyncExtraFields(job_object(job_id, record))
        if endpoint == "embeddings":
            return _json(202, _encode(PendingList(object="list", data=[], model=record.model, extra_fields=extra)))
        pending = PendingCompletion(
            id=job_id,
            object=_OBJECT[endpoint],
            created=int(record.created_at),
            model=record.model,
            choices=[],
            extra_fields=extra,
        )
        return _json(202, _encode(pending))

    async def dropin(
        self, request: web.BaseRequest, dropin: DropIn, *, model: str | None, stream: bool
    ) -> web.StreamResponse:
        """``x-bf-async: true`` or ``x-bf-async-id`` on a drop-in's chat route: the job's
        kind is the SDK's dialect, its answers in the SDK's shape (an unfinished one as
        ``Inbound.pending``); ``model``, ``stream``: the URL's, for a dialect naming them."""
        client = dropin.client
        found = await self._found_or_submitted(
            request, client.name, lambda body: dropin.prepare(request, body, model=model, stream=stream)
        )
        if isinstance(found, web.StreamResponse):
            return found
        job_id, record = found
        assert client.inbound is not None
        job = _encode(job_object(job_id, record))
        pending = client.inbound.pending(job_id=job_id, model=record.model, job=job, created=int(record.created_at))
        return _json(202, pending)

    async def _found_or_submitted(
        self, request: web.BaseRequest, kind: str, prepare: Prepare
    ) -> tuple[str, JobRecord] | web.StreamResponse:
        """A poll's job (its stored answer once it ended) or a new job."""
        job_id = request.headers.get(ASYNC_ID_HEADER)
        if job_id is None:
            return await self._submit(request, kind, prepare)
        job_id = job_id.strip()
        record = await self._find(request, kind, job_id, param=ASYNC_ID_HEADER)
        if record.status in UNFINISHED:
            return job_id, record
        headers = [("Content-Type", JSON), *record.headers]
        assert record.body is not UNSET and record.status_code is not UNSET
        return web.Response(status=record.status_code, body=bytes(record.body), headers=headers)

    def _openai(self, request: web.BaseRequest, body: bytes, endpoint: Endpoint) -> tuple[Call, str, int]:
        strict = self._handlers.strict
        req: ChatCompletionRequest | CompletionRequest | EmbeddingsRequest
        if endpoint == "embeddings":
            req = codec.decode_embeddings(body, strict=strict)
        elif endpoint == "chat":
            req = codec.decode_chat(body, strict=strict)
        else:
            req = codec.decode_completion(body, strict=strict)
        if not isinstance(req, EmbeddingsRequest) and req.stream:
            raise InvalidRequest(
                'an async job cannot stream: send it without "stream": true, or without x-bf-async',
                param="stream",
                code="unsupported_parameter",
            )
        return self._handlers.prepare(request, body, req, endpoint=endpoint), req.model, max_out(req)

    async def submit(self, request: web.BaseRequest, *, endpoint: Endpoint) -> web.StreamResponse:
        """``POST /v1/async/...``."""
        job_id, record = await self._submit(request, endpoint, lambda body: self._openai(request, body, endpoint))
        return _json(202, _encode(job_object(job_id, record)))

    async def poll(self, request: web.BaseRequest, *, endpoint: Endpoint, id_at: int) -> web.StreamResponse:
        """``GET /v1/async/.../{job_id}``; the id starts at ``id_at`` in the path."""
        job_id = request.path[id_at:]
        record = await self._find(request, endpoint, job_id, param=None)
        return _json(202 if record.status in UNFINISHED else 200, _encode(job_object(job_id, record)))

    async def stop(self, *, grace_s: float) -> None:
        """Waits up to ``grace_s`` for running jobs, then cancels the rest; a cancelled
        job is recorded failed (503) if the store can still be written."""
        if not self._tasks:
            return
        _, running = await asyncio.wait(set(self._tasks), timeout=max(0.0, grace_s))
        if running:
            log.warning("%d async jobs still running at shutdown: cancelled", len(running))
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _submit(self, request: web.BaseRequest, kind: str, prepare: Prepare) -> tuple[str, JobRecord]:
        principal = await self._handlers.identify(request)
        owner = owner_of(request, principal)
        body = await read_bounded(request, limit=self._max_body)
        call, model, out = prepare(body)
        ttl_s = result_ttl(request, default=self._cfg.result_ttl_s)
        grant = await self._handlers.admit(call, principal, max_out=out)
        record = JobRecord(endpoint=kind, model=model, status="pending", created_at=time.time(), result_ttl_s=ttl_s)
        job = _Job("job-" + secrets.token_hex(16), owner, record, call, grant)
        # The job's task creates its record and runs it: a client that goes away
        # meanwhile (the handler is cancelled) cannot leave a record no task runs.
        created: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._run(job, created))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        ok = await asyncio.shield(created)
        if ok is None:
            raise StoreUnavailable("the gateway's state store is unavailable; try again shortly")
        if not ok:
            self._metrics.jobs["refused"] += 1
            raise RateLimited(
                f"too many async jobs pending (at most {self._cfg.max_pending}); retry when some have finished",
                code="too_many_pending_jobs",
            )
        return job.id, record

    async def _find(self, request: web.BaseRequest, endpoint: str, job_id: str, *, param: str | None) -> JobRecord:
        """The caller's job of this kind, or the same 404 whether it is unknown,
        expired, another credential's or of another kind."""
        owner = owner_of(request, await self._handlers.identify(request))
        missing = NotFound(
            "no such async job: unknown, expired, or submitted with another credential or to another endpoint",
            param=param,
            code="job_not_found",
        )
        if not _ID.fullmatch(job_id):
            raise missing
        try:
            found = await self._store.job_get(job_id)
        except StoreDown as e:
            self._store_error("read", e)
            raise StoreUnavailable("the gateway's state store is unavailable; try again shortly") from None
        if found is None or not hmac.compare_digest(found[0].encode(), owner.encode()):
            raise missing
        record = _decode_record(found[1])
        if record.endpoint != endpoint:
            raise missing
        return record

    async def _run(self, job: _Job, created: asyncio.Future[bool | None]) -> None:
        ok: bool | None = None
        try:
            ok = await self._store.job_create(
                job.id, job.owner, _encode(job.record), ttl_s=PENDING_TTL_S, max_pending=self._cfg.max_pending
            )
        except StoreDown as e:
            self._store_error("create", e)
        finally:
            if not created.done():
                created.set_result(ok)
            if not ok and job.grant is not None:
                self._handlers.settle(job.grant, job.call)  # nothing used
        if not ok:
            return
        self._metrics.jobs["submitted"] += 1
        cancelled = False
        try:
            # A new record each time: the submit answer still holds the first ("pending").
            job.record = replace(job.record, status="processing")
            await self._write(job, finished=False)
            status, headers, body = await self._relay(job.call)
        except asyncio.CancelledError:
            cancelled = True
            err = JobAborted("gateway shut down before the job finished; submit it again")
            status, headers, body = err.status, [], err.body()
        if job.grant is not None:
            self._handlers.settle(job.grant, job.call)
        job.record = replace(
            job.record,
            status="completed" if status < 400 else "failed",
            completed_at=time.time(),
            status_code=status,
            headers=headers,
            body=Raw(body),
        )
        self._metrics.jobs[job.record.status] += 1
        await self._write(job, finished=True)
        if cancelled:
            raise asyncio.CancelledError

    async def _relay(self, call: Call) -> tuple[int, list[tuple[str, str]], bytes]:
        """The answer the synchronous route would send: status, headers, body."""
        try:
            data, index, relayed = await unary(call)
        except GatewayError as e:
            resp = error_response(e) if call.client is None else dropin_error(call.client, e)
            body = resp.body
            assert isinstance(body, bytes)
            headers = [(str(k), v) for k, v in resp.headers.items() if k.lower() != "content-type"]  # str, not istr
            return e.status, headers, body
        except Exception:
            log.exception("unexpected error running an async job")
            status, body = render_unexpected()
            return status, [], body
        return 200, answer_headers(call.targets[index][0].provider.name, index, relayed), data

    async def _write(self, job: _Job, *, finished: bool) -> None:
        """Stores the job's record; a failure is logged, never raised (the job goes on,
        or its result is lost: a poll then answers 404 or still 202)."""
        ttl_s = job.record.result_ttl_s if finished else PENDING_TTL_S
        try:
            await self._store.job_update(job.id, _encode(job.record), ttl_s=ttl_s, finished=finished)
        except StoreDown as e:
            self._store_error("write", e)
        except Exception:
            log.exception("async job %s: record not written", job.id)

    def _store_error(self, what: str, e: Exception) -> None:
        self._metrics.store_errors += 1
        log.error("state store unavailable: async job %s failed: %s", what, e)


def routes(jobs: Jobs) -> tuple[Routes, Routes]:
    """(exact routes, prefix routes): submit at ``{prefix}/v1/async{path}``, poll at
    ``{prefix}/v1/async{path}/{job_id}``."""
    exact: Routes = {}
    by_prefix: Routes = {}
    for prefix in ASYNC_PREFIXES:
        for path, endpoint in ASYNC_PATHS:
            base = f"{prefix}/v1/async{path}"
            exact[base] = {"POST": partial(jobs.submit, endpoint=endpoint)}
            by_prefix[base + "/"] = {"GET": partial(jobs.poll, endpoint=endpoint, id_at=len(base) + 1)}
    return exact, by_prefix
