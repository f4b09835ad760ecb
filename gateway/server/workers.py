"""``gateway serve --workers N``: N processes serve one port, under a supervisor.

Each worker is ``python -m gateway serve`` in a process of its own, with its own event
loop, upstream session and pool, listening on the same host and port with SO_REUSEPORT:
the kernel spreads new connections among the workers. The supervisor listens on nothing
(with port 0 it holds the port it picked bound, not listening). It:

- starts the workers and replaces one that exits while the gateway runs: at once when it
  had run STABLE_S, else after 0.5 s, doubling while replacements keep failing quickly; a
  worker that cannot start when the gateway starts (the port is taken, ...), or
  MAX_QUICK_FAILURES quick failures in a row, make it stop the others and exit 1 rather
  than restart forever;
- turns SIGTERM and SIGINT into SIGTERM for every worker (each drains: ``server.app``),
  waits for them within drain_delay_s + shutdown_grace_s (then SIGKILL), and exits;
- on SIGHUP reads and checks the config file and, when it is valid, hands it to the
  workers and signals them. Workers read a copy in the supervisor's private directory
  (written back with the ``env.`` references, never a secret, and the settings that need
  a restart kept as they started), so a worker restarted later serves the same config
  as the others even if the file has been edited since;
- without Redis, holds the one MemoryStore every worker uses (``state.local``): limits,
  budgets and async jobs count once for the machine, not once per worker.

A worker reports that it serves over a socket pair (``--supervisor-fd``); the pair's
other end closing tells the worker its supervisor died, even by SIGKILL, and it drains
and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

import msgspec
from prometheus_client.multiprocess import mark_process_dead

from gateway.config import ConfigError, GatewayConfig, load_written, reloadable
from gateway.metrics import MULTIPROC_DIR_ENV
from gateway.state import MemoryStore
from gateway.state.local import LocalStoreServer

log = logging.getLogger("gateway.workers")

READY = b"r"  # what a worker sends once it listens
# A worker that lived less than this failed quickly: restarting it at once could spin.
STABLE_S = 10.0
MAX_QUICK_FAILURES = 5
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
# Importing, building and listening take about a second; a worker silent this long is
# killed and counts as a failure.
START_TIMEOUT_S = 60.0
# After SIGTERM, beyond drain_delay_s + shutdown_grace_s: a worker's own closing (the
# last access log lines, charges, metrics).
STOP_MARGIN_S = 5.0


class Restarts:
    """When to restart one worker slot's process after it exited, or give up."""

    __slots__ = ("quick",)

    def __init__(self) -> None:
        self.quick = 0  # failures within STABLE_S of starting, in a row

    def after(self, lived_s: float) -> float | None:
        """Seconds to wait before starting it again; None: give up."""
        if lived_s >= STABLE_S:
            self.quick = 0
            return 0.0
        self.quick += 1
        if self.quick >= MAX_QUICK_FAILURES:
            return None
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** (self.quick - 1))


def exit_status(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _Worker:
    __slots__ = ("generation", "link", "process", "serving", "started")

    def __init__(self, process: asyncio.subprocess.Process, link: socket.socket, *, generation: int) -> None:
        self.process = process
        self.link = link  # closing it stops the worker
        self.generation = generation  # the config it serves (Supervisor._generation)
        self.started = asyncio.get_running_loop().time()
        self.serving = False

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self) -> bool | None:
        """True once it reported serving; False when it is exiting without having done
        so; None when it stayed silent for START_TIMEOUT_S."""
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                return await asyncio.get_running_loop().sock_recv(self.link, 1) == READY
        except TimeoutError:
            return None
        except OSError:
            return False

    def signal(self, sig: signal.Signals) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it exited since
                self.process.send_signal(sig)


class Supervisor:
    def __init__(
        self,
        cfg: GatewayConfig,
        *,
        workers: int,
        host: str | None,
        port: int | None,
        config_path: str | None,
        log_level: str,
    ) -> None:
        self.cfg = cfg
        self._count = workers
        self._host = host or cfg.server.host
        self._port = cfg.server.port if port is None else port
        self._config_path = config_path
        self._log_level = log_level
        self._dir = ""  # private (0700), made by run
        self._snapshot: str | None = None  # the workers' copy of the config file
        self._written: GatewayConfig | None = None  # that copy's content
        self._generation = 0  # configs accepted so far
        self._workers: dict[int, _Worker] = {}  # slot -> its current process
        self._started = False  # every slot has served once
        self._ready_slots: set[int] = set()
        self._stopping = False
        self._failure: str | None = None
        self._done = asyncio.Event()
        self._reservation: socket.socket | None = None
        self._store: LocalStoreServer | None = None
        self._metrics_dir = ""

    async def run(self) -> int:
        """Until SIGTERM or SIGINT, or giving up; the exit code."""
        self._dir = tempfile.mkdtemp(prefix="gateway-")
        try:
            try:
                self._reserve()
            except OSError as e:
                print(
                    f"gateway: cannot listen on {self._host}:{self._port}: {e.strerror}{listen_hint(e)}",
                    file=sys.stderr,
                )
                return 1
            if self._config_path is not None:
                try:
                    self._written = load_written(self._config_path)[0]
                except ConfigError as e:  # changed since the CLI read it
                    print(f"gateway: {e}", file=sys.stderr)
                    return 1
                self._write_snapshot()
            # Metrics: every worker writes prometheus-client's multiprocess files here and
            # a scrape of any worker sums them (gateway.metrics.Mirror).
            self._metrics_dir = os.environ.get(MULTIPROC_DIR_ENV) or os.path.join(self._dir, "metrics")
            os.makedirs(self._metrics_dir, exist_ok=True)
            os.environ[MULTIPROC_DIR_ENV] = self._metrics_dir  # inherited by the workers
            if not self.cfg.store.redis_url:
                memory = MemoryStore(max_response_bytes=self.cfg.responses.max_memory_bytes)
                self._store = LocalStoreServer(os.path.join(self._dir, "store.sock"), store=memory)
                await self._store.start()
            await self._supervise()
        finally:
            if self._store is not None:
                await self._store.close()
            if self._reservation is not None:
                self._reservation.close()
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._failure is not None:
            log.error("gave up: %s", self._failure)
            return 1
        log.info("gateway stopped")
        return 0

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        log.info(
            "gateway on http://%s:%d: %d workers sharing the port; state: %s",
            self._host,
            self._port,
            self._count,
            "Redis" if self._store is None else "this supervisor's memory",
        )
        slots = [loop.create_task(self._keep(slot)) for slot in range(self._count)]
        await self._done.wait()
        await self._stop_all(slots)

    def _reserve(self) -> None:
        """The port is held here, bound (not listening: connections go to the workers
        only), so that nothing else takes it; with port 0 it is chosen here, once for
        every worker. Unless ``server.reuse_port``, a port another process listens on is
        refused first: the workers' SO_REUSEPORT would otherwise join it silently."""
        family, kind, _, _, address = socket.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        if self._port and not self.cfg.server.reuse_port:
            with socket.socket(family, kind) as probe:  # without SO_REUSEPORT: fails on a listener
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        self._reservation = sock
        self._port = int(sock.getsockname()[1])

    def _write_snapshot(self) -> None:
        assert self._written is not None
        path = os.path.join(self._dir, "config.json")
        with open(path + ".new", "wb") as f:
            f.write(msgspec.json.encode(self._written))
        os.replace(path + ".new", path)  # a worker reads the old copy or the new, never half
        self._snapshot = path

    async def _keep(self, slot: int) -> None:
        """Keeps one worker running in ``slot`` until the gateway stops."""
        loop = asyncio.get_running_loop()
        restarts = Restarts()
        while not self._stopping:
            try:
                worker = self._workers[slot] = await self._spawn()
            except OSError as e:  # out of processes or descriptors: as a worker that failed at once
                why, lived = f"cannot start a worker: {e}", 0.0
                ready: bool | None = False
            else:
                if self._stopping:  # stopped while it was starting
                    worker.signal(signal.SIGTERM)
                ready = await worker.ready()
                if ready:
                    self._serving(slot, worker)
                elif ready is None:
                    log.error("worker %d did not start within %g s: killed", worker.pid, START_TIMEOUT_S)
                    worker.signal(signal.SIGKILL)
                code = await worker.process.wait()
                worker.link.close()
                # Its gauges leave the sum; its counters stay counted, as counters must.
                mark_process_dead(worker.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
                lived = loop.time() - worker.started
                why = f"worker {worker.pid} exited ({exit_status(code)}) after {lived:.1f} s"
            if self._stopping:
                return
            if not ready and not self._started:  # the gateway is starting: it cannot
                self._give_up(f"{why}, before it could serve")
                return
            delay = restarts.after(lived)
            if delay is None:
                self._give_up(f"{why}; {MAX_QUICK_FAILURES} quick failures in a row")
                return
            log.warning("%s; starting another in %.1f s", why, delay)
            with contextlib.suppress(TimeoutError):  # the wait ends early if the gateway stops
                await asyncio.wait_for(self._done.wait(), delay)

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        args = [
            *(sys.executable, "-m", "gateway", "--log-level", self._log_level, "serve"),
            *("--supervisor-fd", str(theirs.fileno()), "--host", self._host, "--port", str(self._port)),
        ]
        if self._snapshot is not None:
            args += ["--config", self._snapshot]
        if self._store is not None:
            args += ["--store-socket", self._store.path]
        try:
            process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),)
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return _Worker(process, ours, generation=self._generation)

    def _serving(self, slot: int, worker: _Worker) -> None:
        worker.serving = True
        if worker.generation < self._generation:  # started before a reload, read the old copy
            worker.generation = self._generation
            worker.signal(signal.SIGHUP)
        if self._started:
            log.info("worker %d serving (replaced one that exited)", worker.pid)
            return
        self._ready_slots.add(slot)
        log.info("worker %d serving (%d of %d)", worker.pid, len(self._ready_slots), self._count)
        self._started = len(self._ready_slots) == self._count

    def _give_up(self, why: str) -> None:
        if self._failure is None:
            self._failure = why
        self._stopping = True
        self._done.set()

    def _stop(self, sig: signal.Signals) -> None:
        if self._stopping:
            if sig == signal.SIGINT:  # a second Ctrl-C: no more waiting
                log.warning("%s again: killing the workers", sig.name)
                for worker in self._workers.values():
                    worker.signal(signal.SIGKILL)
            return
        log.info("%s: stopping the workers (each drains its requests)", sig.name)
        self._stopping = True
        self._done.set()

    async def _stop_all(self, slots: list[asyncio.Task[None]]) -> None:
        for worker in self._workers.values():
            worker.signal(signal.SIGTERM)
        s = self.cfg.server
        try:
            async with asyncio.timeout(s.drain_delay_s + s.shutdown_grace_s + STOP_MARGIN_S):
                await asyncio.gather(*slots)
        except TimeoutError:
            for worker in self._workers.values():
                if worker.process.returncode is None:
                    log.warning("worker %d still running after its grace: killed", worker.pid)
                    worker.signal(signal.SIGKILL)
            await asyncio.gather(*slots, return_exceptions=True)

    def _reload(self) -> None:
        if self._stopping:
            return
        if self._config_path is not None:
            try:
                written, cfg = load_written(self._config_path)
            except ConfigError as e:
                log.error("config reload refused, the current config keeps serving: %s", e)
                return
            assert self._written is not None
            cfg, ignored = reloadable(self.cfg, cfg)
            self.cfg, self._written = cfg, reloadable(self._written, written)[0]
            self._write_snapshot()
            if ignored:
                log.warning("config reload: %s changed, ignored until the gateway restarts", ", ".join(ignored))
        self._generation += 1
        # The others get it once they serve (``_serving``): before, SIGHUP would end them.
        ready = [w for w in self._workers.values() if w.serving and w.process.returncode is None]
        for worker in ready:
            worker.generation = self._generation
            worker.signal(signal.SIGHUP)
        log.info("config reloaded from %s; %d workers signalled", self._config_path or "the environment", len(ready))


def listen_hint(e: OSError) -> str:
    """What to do about a listen failure, when there is something to say."""
    if e.errno == errno.EADDRINUSE:
        return " (another process serves this port; server.reuse_port: true joins another gateway on it)"
    return ""


def supervise(
    cfg: GatewayConfig, *, workers: int, host: str | None, port: int | None, config_path: str | None, log_level: str
) -> int:
    """Runs the supervisor until the gateway stops; the process's exit code."""
    import uvloop

    supervisor = Supervisor(cfg, workers=workers, host=host, port=port, config_path=config_path, log_level=log_level)
    return uvloop.run(supervisor.run())
