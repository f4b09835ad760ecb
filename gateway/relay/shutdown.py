"""How a shutdown whose grace has run out ends the relays still running: streams with an
error frame in the client's dialect and a clean end of their body, non-streaming calls
with a 503 ``server_shutting_down``, rather than their connections being cut
(``relay.stream``, ``relay.native``, ``server.handlers``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from gateway.errors import ServerShuttingDown

# The cancellation message that ends a stream at the shutdown grace (``LiveStreams``).
SHUTDOWN = "gateway shutting down"
# How long a stream ended by the shutdown may take to write its error frame and end.
SHUTDOWN_WRITE_S = 1.0


class LiveStreams:
    """What a shutdown whose grace has run out tells the relays still running: streams end
    with an error frame and a clean end of their body, non-streaming calls are answered
    503 ``server_shutting_down``, rather than their connections being cut. The server
    cancels their tasks with SHUTDOWN (``end_all``); nothing is registered per request."""

    __slots__ = ("stopping",)

    def __init__(self) -> None:
        # The grace has ended: a relay cancelled from now on is the shutdown's, not a
        # client that went away (server.handlers.run).
        self.stopping = False

    async def end_all(self, tasks: Iterable[asyncio.Task[Any]]) -> int:
        """Cancels ``tasks`` (the handlers of the requests in flight) with SHUTDOWN and waits
        at most SHUTDOWN_WRITE_S and a little for them to answer; how many there were."""
        self.stopping = True
        running = [t for t in tasks if not t.done()]
        for task in running:
            task.cancel(SHUTDOWN)
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_WRITE_S + 0.5)
        return len(running)


def is_shutdown(e: asyncio.CancelledError) -> bool:
    if e.args and e.args[0] == SHUTDOWN:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # handled here: later awaits (the error frame's write) may run
        return True
    return False


def shutting_down() -> ServerShuttingDown:
    return ServerShuttingDown("the gateway is shutting down and its grace for running requests has ended")
