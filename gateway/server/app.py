"""The gateway process: built from config, started, drained, stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.web import BaseRequest, RequestHandler

from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices
from gateway.accounting.tokens import Tokenizers
from gateway.config import ConfigError, GatewayConfig, from_env, load, reloadable
from gateway.config.proxy import Proxy
from gateway.governance import Governor, digest
from gateway.metrics import ConnectionStats, Metrics, Mirror
from gateway.relay.cache import Cache
from gateway.relay.cachekey import EXCLUDED
from gateway.relay.semantic import Embedder, Semantic
from gateway.relay.shutdown import LiveStreams
from gateway.routing.providers import build
from gateway.routing.table import ModelTable
from gateway.server import admin, cache_api, logs_api
from gateway.server.access import AccessLogger, AccessSink
from gateway.server.admin import Admin
from gateway.server.body import BodyLimits
from gateway.server.dispatch import Dispatcher, route_of
from gateway.server.handlers import Handlers, routes
from gateway.server.health import Health
from gateway.server.jobs import PENDING_TTL_S, Jobs
from gateway.server.jobs import routes as job_routes
from gateway.server.plan import Planner
from gateway.server.protocol import (
    FD_RESERVE,
    ConnectionLimits,
    Server,
    default_max_connections,
    descriptor_limit,
    raise_descriptor_limit,
    settle_heap,
)
from gateway.server.responses_routes import StoredResponses
from gateway.server.responses_routes import routes as response_routes
from gateway.server.responses_state import ResponseStates
from gateway.server.routes import inference as inference_routes
from gateway.server.workers import READY
from gateway.state import MemoryStore, Store
from gateway.state.cache import CacheStore, MemoryCache
from gateway.state.sqlite import LogStore
from gateway.upstream.client import new_session
from gateway.upstream.http import HTTPTransport
from gateway.upstream.origin import limit_origins
from gateway.upstream.pool import Pool

if TYPE_CHECKING:
    from gateway.state.vectors import VectorIndex

log = logging.getLogger("gateway")

# Queue of not-yet-accepted connections; a burst of new clients waits here instead
# of being refused.
BACKLOG = 2048
# A reload's old routes: how often to look whether their last requests have ended.
RETIRE_POLL_S = 1.0
# The graceful drain: how often to look whether requests in flight have ended, and how
# long aiohttp may take, once the grace is over, to cancel what is left.
SHUTDOWN_POLL_S = 0.05
FINAL_SHUTDOWN_S = 0.25
# Multiprocess metrics: how stale another worker's view of this one's counters may be.
MIRROR_FLUSH_S = 1.0


def low_level_server(
    handler: Dispatcher, *, cfg: GatewayConfig, access: AccessSink | None = None, stats: ConnectionStats | None = None
) -> Server:
    s = cfg.server
    stats = ConnectionStats() if stats is None else stats
    nofile = descriptor_limit()
    limits = ConnectionLimits(
        header_timeout_s=s.header_timeout_s,
        body=BodyLimits(timeout_s=s.body_timeout_s, min_bytes_per_s=s.body_min_bytes_per_s, stats=stats),
        max_connections=s.max_connections or default_max_connections(nofile),
        nofile=nofile,
        stats=stats,
    )
    if limits.max_connections * 2 + FD_RESERVE > nofile:
        log.warning(
            "server.max_connections %d with a descriptor limit of %d: connections that each hold an "
            "upstream connection could run the process out of descriptors",
            limits.max_connections,
            nofile,
        )
    return Server(
        handler,
        limits=limits,
        handler_cancellation=True,
        # aiohttp hands every answered request to the access logger: metrics and the
        # access log line are recorded there, after the answer is written.
        access_log=access,  # passed through to AccessLogger as its "logger"
        access_log_class=AccessLogger,
        max_line_size=s.max_header_bytes,
        max_field_size=s.max_header_bytes,
        max_headers=s.max_headers,
        keepalive_timeout=s.keepalive_timeout_s,
    )


class _Generation:
    """What one config built: the routes, and what must drain once they are replaced."""

    __slots__ = ("dispatcher", "governor", "jobs", "table")

    def __init__(self, dispatcher: Dispatcher, governor: Governor | None, jobs: Jobs, table: ModelTable) -> None:
        self.dispatcher = dispatcher
        self.governor = governor
        self.jobs = jobs
        self.table = table


class Gateway:
    """Every component, wired from one config; nothing module-level.

    A process has one upstream session and pool, store, metrics, access log and listener;
    a config (``reload``) decides everything else: providers, routes, auth, async jobs."""

    def __init__(self, cfg: GatewayConfig, *, store_socket: str | None = None) -> None:
        self.cfg = cfg
        # Under the supervisor without Redis: where its shared MemoryStore listens.
        self._store_socket = store_socket
        self._session: aiohttp.ClientSession | None = None
        self._server: Server | None = None
        self._listener: asyncio.base_events.Server | None = None
        self._pool: Pool | None = None
        self._store: Store | None = None
        # The response cache's store, made with the first config that turns the cache on.
        self._cache_store: CacheStore | None = None
        # Its vector index (semantic lookup), made with the first config that asks for one.
        self._vectors: VectorIndex | None = None
        self._access: AccessSink | None = None
        self._logs: LogStore | None = None  # the request log store (logs.enabled)
        self._flusher: asyncio.Task[None] | None = None
        self._metrics: Metrics | None = None
        self._ledger: Ledger | None = None
        self._genai = GenaiPrices()
        self._health = Health()
        # Streams being relayed, whatever config they began on: a shutdown ends them.
        self._streams = LiveStreams()
        # The dispatcher the server calls; a reload swaps its route tables.
        self._dispatcher: Dispatcher | None = None
        self._current: _Generation | None = None
        # Replaced by a reload, still finishing requests, jobs or charges.
        self._retired: dict[_Generation, asyncio.Task[None]] = {}

    def _new_store(self) -> Store:
        s = self.cfg.store
        if self._store_socket is not None:
            from gateway.state.local import LocalStore

            return LocalStore(self._store_socket, timeout_s=s.timeout_s)
        if s.redis_url:
            from gateway.state.redis import RedisStore  # redis-py: ~0.15 s and ~7 MB, only when used

            return RedisStore(s.redis_url, prefix=s.prefix, timeout_s=s.timeout_s)
        return MemoryStore(max_response_bytes=self.cfg.responses.max_memory_bytes)

    @staticmethod
    def _new_cache_store(cfg: GatewayConfig) -> CacheStore:
        c, s = cfg.cache, cfg.store
        if c.store == "auto" and s.redis_url:
            from gateway.state.cache_redis import RedisCache  # redis-py, only when used

            return RedisCache(s.redis_url, prefix=s.prefix, timeout_s=s.timeout_s)
        return MemoryCache(max_bytes=c.max_bytes)

    def _cache(self, cfg: GatewayConfig, metrics: Metrics, planner: Planner) -> Cache | None:
        """The response cache ``cfg`` asks for, on the process's cache store; with its
        semantic lookup when it names an embedding model (on the process's vector index:
        shared through Redis when the entries are, else this process's)."""
        c = cfg.cache
        if not Cache.wanted(c):
            return None
        if self._cache_store is None:
            self._cache_store = self._new_cache_store(cfg)
        semantic = None
        model = c.embedding_model
        if model is not None:
            # numpy and the index: imported when semantic lookup is configured, not at start.
            from gateway.state.vectors import EmbeddedVectorIndex, vector_index

            if self._vectors is None:
                if self._cache_store.inline:
                    self._vectors = EmbeddedVectorIndex()
                else:
                    self._vectors = vector_index(cfg.store, metrics=metrics)
                    start = getattr(self._vectors, "start", None)
                    if start is not None:  # shared: loading from Redis now; lookups answered once loaded
                        start()
            embedder = Embedder(model, lambda body: planner.internal_embeddings(body, model=model))
            semantic = Semantic(
                embedder,
                self._vectors,
                mode=c.semantic_input,
                excluded=EXCLUDED,
                meters=metrics.cache,
                timeout_s=c.embedding_timeout_s,
            )
        # The index too, semantic lookup on or not: invalidation removes its vectors.
        return Cache(c, self._cache_store, meters=metrics.cache, semantic=semantic, vectors=self._vectors)

    def _build(self, cfg: GatewayConfig) -> _Generation:
        """Everything ``cfg`` decides, on the process's session, pool, store and ledger."""
        session, ledger, store = self._session, self._ledger, self._store
        assert session is not None and ledger is not None and store is not None
        providers = {
            name: build(name, p, session=session, genai=self._genai, ledger=ledger, pool=self._pool)
            for name, p in cfg.providers.items()
        }
        table = ModelTable(providers, default=cfg.default_provider, aliases=cfg.aliases)
        governor = None
        if Governor.enabled(cfg.auth):
            governor = Governor(cfg.auth, store, fail_open=cfg.store.fail_open, metrics=ledger.metrics)
        handlers = Handlers(
            table,
            max_body_bytes=cfg.server.max_body_bytes,
            ledger=ledger,
            governor=governor,
            direct_keys=cfg.auth.client_provider_keys,
            streams=self._streams,
        )
        handlers.cache = cache = self._cache(cfg, ledger.metrics, handlers.planner)
        jobs = Jobs(handlers, store, cfg=cfg.jobs, max_body_bytes=cfg.server.max_body_bytes, metrics=ledger.metrics)
        handlers.jobs = jobs.route
        exact, prefixes, drop_ins = inference_routes(handlers, table, max_body_bytes=cfg.server.max_body_bytes)
        for dropin in drop_ins.values():
            dropin.jobs = jobs.dropin
        if cfg.auth.admin_token and governor is not None:  # else /api/keys is a 404
            more, more_prefixes = admin.routes(Admin(cfg, governor=governor, metrics=ledger.metrics))
            exact, prefixes = {**exact, **more}, {**prefixes, **more_prefixes}
        if cfg.auth.admin_token and cache is not None:  # else /api/cache is a 404
            more, more_prefixes = cache_api.routes(cache_api.CacheApi(admin_token=cfg.auth.admin_token, cache=cache))
            exact, prefixes = {**exact, **more}, {**prefixes, **more_prefixes}
        if cfg.auth.admin_token:  # else /api/logs is a 404; with the store off, logs_disabled
            exact = {**exact, **logs_api.routes(logs_api.LogsApi(admin_token=cfg.auth.admin_token, store=self._logs))}
        jobs_exact, jobs_prefixes = job_routes(jobs)
        exact, prefixes = {**exact, **jobs_exact}, {**prefixes, **jobs_prefixes}
        # Responses kept for the Responses API: read and deleted here; POST /v1/responses
        # keeps them (save) and continues them (conversation) through the same object.
        c = cfg.responses
        states = ResponseStates(
            store,
            ttl_s=c.store_ttl_s,
            max_record_bytes=c.max_record_bytes,
            max_conversation_bytes=c.max_conversation_bytes,
            metrics=ledger.metrics,
        )
        prefixes = {**prefixes, **response_routes(StoredResponses(handlers, states, providers=providers))}
        for dropin in drop_ins.values():
            # Used by a dialect whose requests name a stored conversation or ask to be
            # kept (InboundHead.previous, .keep): the Responses API's.
            dropin.states = states
        dispatcher = Dispatcher({**routes(handlers, health=self._health), **exact}, prefixes=prefixes)
        # Last: a config that could not be built leaves the pool's caps as they were.
        limit_origins(
            t.pool_limit for p in providers.values() if isinstance(t := p.transport, HTTPTransport) and t.pool_limit
        )
        return _Generation(dispatcher, governor, jobs, table)

    async def start(self, *, host: str | None = None, port: int | None = None, reuse_port: bool = False) -> int:
        """Listen; returns the bound port (useful with port 0). ``reuse_port``: share the
        port with the other workers (SO_REUSEPORT)."""
        self._session = new_session()
        self._pool = Pool()
        self._metrics = Metrics()
        self._ledger = Ledger(metrics=self._metrics, tokenizers=Tokenizers())
        self._genai.warm()
        self._store = self._new_store()
        if self.cfg.logs.enabled:
            c = self.cfg.logs
            self._logs = LogStore(
                c.path,
                retention_days=c.retention_days,
                max_mb=c.max_mb,
                flush_s=c.flush_s,
                max_queued_rows=c.max_queued_rows,
                metrics=self._metrics,
            )
            await self._logs.start()  # a file that cannot be opened stops the start here
        self._current = self._build(self.cfg)
        self._health.providers = self._current.table.providers
        self._health.admin_digest = admin_digest(self.cfg)
        dispatcher = self._dispatcher = self._current.dispatcher
        self._access = AccessSink(
            self._metrics,
            route_of(dispatcher),
            log_lines=self.cfg.server.access_log,
            store=self._logs,
            content=self.cfg.server.access_log_content,
        )
        server = self._server = low_level_server(
            dispatcher, cfg=self.cfg, access=self._access, stats=self._metrics.connections
        )
        self._metrics.in_flight_source = server.in_flight
        mirror = self._metrics.mirror
        if mirror is not None:  # multiprocess mode: other workers' scrapes read our files
            self._flusher = asyncio.get_running_loop().create_task(_flush_every(mirror, MIRROR_FLUSH_S))
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._server,
            host=host or self.cfg.server.host,
            port=self.cfg.server.port if port is None else port,
            backlog=BACKLOG,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        sock: socket.socket = self._listener.sockets[0]
        return int(sock.getsockname()[1])

    def reload(self, cfg: GatewayConfig) -> bool:
        """Serves ``cfg`` to requests that arrive from now on; those already running finish
        on the config they began with. The listener and its connections, the upstream
        session and pool, the store and the metrics stay; settings only a restart can
        change are logged and kept. False, and nothing changed, when ``cfg`` cannot be built."""
        dispatcher, server, old = self._dispatcher, self._server, self._current
        if dispatcher is None or server is None or old is None or self._health.draining:
            log.warning("config reload ignored: the gateway is not serving")
            return False
        cfg, ignored = reloadable(self.cfg, cfg)
        try:
            new = self._build(cfg)
        except Exception:  # whatever it is, the config that serves now goes on serving
            log.exception("config reload refused, the current config keeps serving: it could not be built")
            return False
        # Requests being handled now hold the old handlers; they are the old routes' last.
        # RequestHandler's ``_current_request``: aiohttp has no public view of it (pinned
        # by tests/unit/server/test_aiohttp_pins.py).
        running = [(c, c._current_request) for c in server.connections if c._current_request is not None]
        dispatcher.swap(new.dispatcher)
        self._health.providers = new.table.providers
        self._health.admin_digest = admin_digest(cfg)
        self._current, self.cfg = new, cfg
        if ignored:
            log.warning("config reload: %s changed, ignored until the gateway restarts", ", ".join(ignored))
        task = asyncio.get_running_loop().create_task(self._retire(old, running))
        self._retired[old] = task
        task.add_done_callback(lambda _: self._retired.pop(old, None))
        return True

    async def _retire(self, old: _Generation, running: list[tuple[RequestHandler, BaseRequest]]) -> None:
        """Once the requests that began on ``old`` have ended, waits for its async jobs and
        charges; then nothing refers to it."""
        while any(conn._current_request is request for conn, request in running):
            await asyncio.sleep(RETIRE_POLL_S)
        await old.jobs.stop(grace_s=PENDING_TTL_S)  # a job ends well within its record's TTL
        if old.governor is not None:
            await old.governor.drain()

    async def stop(self) -> None:
        """The graceful drain: /health says "draining" at once; after ``drain_delay_s`` the
        listener closes and idle connections with it; requests, streams and async jobs
        have ``shutdown_grace_s`` to finish, then are cancelled; then everything closes."""
        loop = asyncio.get_running_loop()
        s = self.cfg.server
        self._health.draining = True
        if self._listener is not None and s.drain_delay_s > 0:
            log.info("draining: /health answers 503, the listener closes in %g s", s.drain_delay_s)
            await asyncio.sleep(s.drain_delay_s)
        deadline = loop.time() + s.shutdown_grace_s  # requests and async jobs share the grace
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            server = self._server
            server.pre_shutdown()  # idle keep-alive connections close now
            # Requests and streams in flight have until the grace ends...
            while server.in_flight() and loop.time() < deadline:
                await asyncio.sleep(SHUTDOWN_POLL_S)
            # ...then a stream still running ends with an error frame and a clean end of
            # its body (server_shutting_down), and what is left is cancelled at once:
            # the process is done about a second after the grace, never twice it.
            # The handlers of the requests still in flight (aiohttp's per-connection task,
            # which awaits the request's own: a cancel with a message reaches it).
            # Private names, with no public equivalent: pinned by
            # tests/unit/server/test_aiohttp_pins.py (the behaviour by tests/integration/test_shutdown.py).
            handlers = [
                c._task_handler
                for c in server.connections
                if c._current_request is not None and c._task_handler is not None
            ]
            ended = await self._streams.end_all(handlers)
            if ended:
                log.warning("shutdown grace ended: %d request(s) ended with server_shutting_down", ended)
            await server.shutdown(FINAL_SHUTDOWN_S)
        if self._listener is not None:
            await self._listener.wait_closed()
        generations = [g for g in (self._current, *self._retired) if g is not None]
        # Before the session closes: jobs relay through it.
        await asyncio.gather(*(g.jobs.stop(grace_s=deadline - loop.time()) for g in generations))
        for task in list(self._retired.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self._pool is not None:
            self._pool.close()
        for g in generations:
            if g.governor is not None:
                await g.governor.drain()  # charges of the last requests
        if self._access is not None:
            self._access.close()  # the last access log lines
        if self._logs is not None:
            await self._logs.close()  # the last requests' rows
        if self._flusher is not None:
            self._flusher.cancel()
        if self._metrics is not None and self._metrics.mirror is not None:
            self._metrics.mirror.flush()  # the last requests' counts stay in the sum
        if self._store is not None:
            await self._store.close()
        if self._cache_store is not None:
            await self._cache_store.close()
        if self._vectors is not None:
            await self._vectors.close()


async def _flush_every(mirror: Mirror, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            mirror.flush()
        except Exception:
            log.exception("writing metrics for other workers failed")


async def wait_for_signal() -> None:
    """Until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(
    cfg: GatewayConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    config_path: str | None = None,
    supervisor: socket.socket | None = None,
    store_socket: str | None = None,
) -> None:
    """One gateway process, until SIGTERM or SIGINT (then the graceful drain, ``stop``).
    SIGHUP reloads ``config_path`` (without one: the environment). Under the supervisor
    (``server.workers``): ``supervisor`` is this worker's end of a socket pair, the port
    is shared with SO_REUSEPORT, and ``store_socket`` is the supervisor's shared store."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    gateway = Gateway(cfg, store_socket=store_socket)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    # Before start-up: SIGHUP's default action would end the process.
    loop.add_signal_handler(signal.SIGHUP, reload_config, gateway, config_path)
    nofile = raise_descriptor_limit()
    bound = await gateway.start(host=host, port=port, reuse_port=supervisor is not None or cfg.server.reuse_port)
    settle_heap()
    providers = ", ".join(f"{n} ({p.dialect}{_via(p.proxy)})" for n, p in cfg.providers.items())
    log.info(
        "gateway listening on http://%s:%d; providers: %s; default: %s; auth: %s; "
        "at most %d connections (descriptor limit %d)",
        host or cfg.server.host,
        bound,
        providers or "none",
        cfg.default_provider,
        auth_mode(cfg),
        cfg.server.max_connections or default_max_connections(nofile),
        nofile,
    )
    if supervisor is not None:
        _report_to(supervisor, stopping)
    try:
        await stopping.wait()
    finally:
        log.info("gateway stopping")
        await gateway.stop()


def _via(proxy: str) -> str:
    """The proxy as logs may show it: scheme://host:port, never its credentials."""
    return "" if proxy == "none" else f" via proxy {Proxy(proxy).name}"


def admin_digest(cfg: GatewayConfig) -> bytes | None:
    return digest(cfg.auth.admin_token) if cfg.auth.admin_token else None


def auth_mode(cfg: GatewayConfig) -> str:
    """The access control in force, as the start-up line says it."""
    if not Governor.enabled(cfg.auth):
        return "off (no auth section: every request is served, nothing is counted)"
    if cfg.auth.required:
        return "required (a gateway token or virtual key on every request)"
    return "optional (callers without a gateway credential are served anonymously; gateway keys are checked)"


def reload_config(gateway: Gateway, path: str | None) -> None:
    """SIGHUP: the config file read and checked again; a config that fails is logged
    and the one serving now goes on."""
    try:
        cfg = load(path) if path else from_env()
    except ConfigError as e:
        log.error("config reload refused, the current config keeps serving: %s", e)
        return
    if gateway.reload(cfg):
        log.info("config reloaded from %s; providers: %s", path or "the environment", ", ".join(cfg.providers))


def _report_to(supervisor: socket.socket, stopping: asyncio.Event) -> None:
    """Tells the supervisor this worker serves; its end of the pair closing (it died,
    even by SIGKILL) stops the worker, which drains as for SIGTERM."""
    loop = asyncio.get_running_loop()
    supervisor.setblocking(False)
    try:
        supervisor.send(READY)
    except OSError:  # it died while this worker was starting
        log.warning("the supervisor is gone: stopping")
        stopping.set()
        return

    def readable() -> None:
        try:
            if supervisor.recv(64):
                return  # nothing is sent this way yet
        except BlockingIOError:
            return
        except OSError:
            pass
        loop.remove_reader(supervisor.fileno())
        if not stopping.is_set():
            log.warning("the supervisor is gone: stopping")
            stopping.set()

    loop.add_reader(supervisor.fileno(), readable)
