"""Calls as the relay's unit tests need them, built in one place: a change to how a
``Call`` is constructed is adapted here, not in every test."""

from __future__ import annotations

import time
from typing import Any

from gateway.accounting.ledger import Ledger
from gateway.accounting.tokens import Tokenizers
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.relay.call import NO_OPTIONS, Call, RequestOptions
from gateway.upstream.client import Timeouts


def make_call(
    targets: list[tuple[Any, bytes | GatewayError]],
    *,
    body: bytes = b"{}",
    requested: str = "up/gpt-x",
    request_type: str = "chat_completion",
    metrics: Metrics | None = None,
    t0: float | None = None,
    raw_request: bool = False,
    raw_response: bool = False,
    timeouts: Timeouts | None = None,
    pinned_key: str | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
    direct_key: str | None = None,
) -> Call:
    return Call(
        endpoint="chat",
        request_type=request_type,
        requested=requested,
        targets=targets,
        body=body,
        t0=time.perf_counter() if t0 is None else t0,
        client_usage=False,
        ledger=Ledger(metrics=metrics or Metrics(), tokenizers=Tokenizers()),
        options=RequestOptions(
            raw_request=raw_request,
            raw_response=raw_response,
            timeouts=timeouts,
            pinned_key=pinned_key,
            extra_headers=extra_headers,
            direct_key=direct_key,
        )
        if (raw_request or raw_response or timeouts or pinned_key or extra_headers or direct_key)
        else NO_OPTIONS,
    )


def one_target_call(target: Any, *, metrics: Metrics | None = None, direct_key: str | None = None) -> Call:
    return make_call([(target, b"{}")], metrics=metrics, direct_key=direct_key)
