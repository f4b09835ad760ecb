"""A TCP server of the test suite's own on 127.0.0.1, running its asyncio loop in a
background thread of the test process: the base of the suite's scripted upstream
(``tests.faulty``) and forward proxy (``tests.proxy``). The gateway under test is a
separate process and reaches it over a real socket."""

from __future__ import annotations

import asyncio
import ssl
import threading

MAX_HEAD = 64 * 1024


class LoopServer:
    """Subclasses define ``_handle(reader, writer)``; ``port`` is set once it listens."""

    name = "loop-server"

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=MAX_HEAD, ssl=self._ssl)
            self.port = int(self._server.sockets[0].getsockname()[1])

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            # Handlers still running (a silent upstream, an open tunnel) end now.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.05)  # the closed transports' connection_lost callbacks

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()  # an unclosed loop is a ResourceWarning (an error in this suite)
