"""The gateway process: built from config, started, drained, stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import aiohttp
from aiohttp import web

from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import GenaiPrices
from gateway.accounting.tokens import Tokenizers
from gateway.config import GatewayConfig
from gateway.governance import Governor
from gateway.metrics import Metrics
from gateway.pool import Pool
from gateway.routing.providers import build
from gateway.routing.table import ModelTable
from gateway.server import admin, dropin
from gateway.server.admin import Admin
from gateway.server.dispatch import Dispatcher
from gateway.server.dropin import DropIns
from gateway.server.handlers import Handlers, routes
from gateway.server.jobs import Jobs
from gateway.server.jobs import routes as job_routes
from gateway.server.protocol import Server
from gateway.state import MemoryStore, Store
from gateway.upstream import new_session

log = logging.getLogger("gateway")

# Queue of not-yet-accepted connections; a burst of new clients waits here instead
# of being refused.
BACKLOG = 2048
SHUTDOWN_GRACE_S = 10.0


def low_level_server(handler: Dispatcher, *, cfg: GatewayConfig) -> web.Server:
    s = cfg.server
    return Server(
        handler,
        handler_cancellation=True,
        access_log=None,
        max_line_size=s.max_header_bytes,
        max_field_size=s.max_header_bytes,
        max_headers=s.max_headers,
    )


class Gateway:
    """Every component, wired from one config; nothing module-level."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._server: web.Server | None = None
        self._listener: asyncio.base_events.Server | None = None
        self._pool: Pool | None = None
        self._store: Store | None = None
        self._governor: Governor | None = None
        self._jobs: Jobs | None = None

    def build_dispatcher(self, session: aiohttp.ClientSession) -> Dispatcher:
        cfg = self.cfg
        genai = GenaiPrices()
        genai.warm()
        ledger = Ledger(metrics=Metrics(), tokenizers=Tokenizers())
        self._pool = Pool()
        providers = {
            name: build(name, p, session=session, genai=genai, ledger=ledger, pool=self._pool)
            for name, p in cfg.providers.items()
        }
        table = ModelTable(providers, default=cfg.default_provider, aliases=cfg.aliases)
        store: Store = MemoryStore()
        if cfg.store.redis_url:
            from gateway.state.redis import RedisStore  # redis-py: ~0.15 s and ~7 MB, only when used

            store = RedisStore(cfg.store.redis_url, prefix=cfg.store.prefix, timeout_s=cfg.store.timeout_s)
        self._store = store
        if Governor.enabled(cfg.auth):
            self._governor = Governor(cfg.auth, store, fail_open=cfg.store.fail_open, metrics=ledger.metrics)
        handlers = Handlers(table, max_body_bytes=cfg.server.max_body_bytes, ledger=ledger, governor=self._governor)
        self._jobs = Jobs(
            handlers, store, cfg=cfg.jobs, max_body_bytes=cfg.server.max_body_bytes, metrics=ledger.metrics
        )
        handlers.jobs = self._jobs.route
        exact, prefixes = dropin.routes(
            DropIns(handlers, table, ledger=ledger, max_body_bytes=cfg.server.max_body_bytes)
        )
        if cfg.auth.admin_token and self._governor is not None:  # else /api/keys is a 404
            more, more_prefixes = admin.routes(Admin(cfg, governor=self._governor, metrics=ledger.metrics))
            exact, prefixes = {**exact, **more}, {**prefixes, **more_prefixes}
        jobs_exact, jobs_prefixes = job_routes(self._jobs)
        exact, prefixes = {**exact, **jobs_exact}, {**prefixes, **jobs_prefixes}
        return Dispatcher({**routes(handlers), **exact}, prefixes=prefixes)

    async def start(self, *, host: str | None = None, port: int | None = None) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._session = new_session()
        self._server = low_level_server(self.build_dispatcher(self._session), cfg=self.cfg)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._server,
            host=host or self.cfg.server.host,
            port=self.cfg.server.port if port is None else port,
            backlog=BACKLOG,
            reuse_address=True,
        )
        sock: socket.socket = self._listener.sockets[0]
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_S  # requests and async jobs share the grace
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            self._server.pre_shutdown()  # idle keep-alive connections close now
            await self._server.shutdown(SHUTDOWN_GRACE_S)
        if self._listener is not None:
            await self._listener.wait_closed()
        if self._jobs is not None:  # before the session closes: jobs relay through it
            await self._jobs.stop(grace_s=deadline - loop.time())
        if self._session is not None:
            await self._session.close()
        if self._pool is not None:
            self._pool.close()
        if self._governor is not None:
            await self._governor.drain()  # charges of the last requests
        if self._store is not None:
            await self._store.close()


async def wait_for_signal() -> None:
    """Until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(cfg: GatewayConfig, *, host: str | None = None, port: int | None = None) -> None:
    gateway = Gateway(cfg)
    bound = await gateway.start(host=host, port=port)
    providers = ", ".join(f"{n} ({p.dialect})" for n, p in cfg.providers.items())
    log.info(
        "gateway listening on http://%s:%d; providers: %s; default: %s",
        host or cfg.server.host,
        bound,
        providers or "none",
        cfg.default_provider,
    )
    try:
        await wait_for_signal()
    finally:
        log.info("gateway stopping")
        await gateway.stop()
