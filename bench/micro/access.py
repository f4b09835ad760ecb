"""After every answer: metrics and the access log line (``server.access.AccessSink``),
for a relayed 200 with its Call, with the line off and on; and for a refused request."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import uvloop
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bench.micro import Cases, main_for
from bench.micro.fixtures import LEDGER, REQUEST, TABLE
from gateway.metrics import Metrics
from gateway.relay.call import Call
from gateway.server.access import AccessSink, GatewayRequest
from gateway.server.answer import Answer
from gateway.server.dispatch import route_of


def _request() -> GatewayRequest:
    base = make_mocked_request(
        "POST", "/v1/chat/completions", headers={"Content-Type": "application/json", "Host": "127.0.0.1"}
    )
    return GatewayRequest(base._message, base._payload, base._protocol, base._payload_writer, base._task, base._loop)


def _call() -> Call:
    target = TABLE.resolve("mock/gpt-4o-mini")
    call = Call(
        endpoint="chat",
        request_type="chat_completion",
        requested="mock/gpt-4o-mini",
        targets=[(target, REQUEST)],
        body=REQUEST,
        t0=time.perf_counter(),
        client_usage=False,
        ledger=LEDGER,
    )
    call.served_index = 0
    call.upstream_s = 0.0004
    call.used_in, call.used_out, call.used_cost = 250, 90, 0.0000915
    return call


_NULL = os.open(os.devnull, os.O_WRONLY)
# The sink arms its flush timer on this loop, which never runs: flushes go by count, as
# under load, where the 0.1 s timer rarely fires first.
_LOOP = uvloop.new_event_loop()
# What a handler leaves on its request: the relayed call, or an error answer's class.
RELAYED = _request()
RELAYED.call = _call()
REFUSED = _request()
REFUSED.error_type = "rate_limit_exceeded"
ANSWER = Answer(b"content-type: application/json\r\n", b"{}")
REFUSAL = web.Response(status=429)


def _sink(*, lines: bool) -> AccessSink:
    routes = SimpleNamespace(_routes={"/v1/chat/completions": {}}, _prefixes=())  # a Dispatcher's tables
    return AccessSink(Metrics(), route_of(routes), log_lines=lines, fd=_NULL, loop=_LOOP)  # type: ignore[arg-type]


METRICS_ONLY = _sink(lines=False)
WITH_LINE = _sink(lines=True)

CASES: Cases = {
    "relayed 200, metrics only": lambda: METRICS_ONLY.record(RELAYED, ANSWER, 0.001),
    "relayed 200, metrics and line": lambda: WITH_LINE.record(RELAYED, ANSWER, 0.001),
    "refused 429, metrics and line": lambda: WITH_LINE.record(REFUSED, REFUSAL, 0.001),
}

if __name__ == "__main__":
    main_for("access: metrics and log line per answer", CASES)
