"""A Call for one fake target, as the relay's unit tests need it."""

from __future__ import annotations

import time
from typing import Any

from gateway.accounting.ledger import Ledger
from gateway.accounting.tokens import Tokenizers
from gateway.metrics import Metrics
from gateway.relay.call import NO_OPTIONS, Call, RequestOptions


def one_target_call(target: Any, *, metrics: Metrics | None = None, direct_key: str | None = None) -> Call:
    return Call(
        endpoint="chat",
        request_type="chat_completion",
        requested="up/gpt-x",
        targets=[(target, b"{}")],
        body=b"{}",
        t0=time.perf_counter(),
        client_usage=False,
        ledger=Ledger(metrics=metrics or Metrics(), tokenizers=Tokenizers()),
        options=NO_OPTIONS if direct_key is None else RequestOptions(direct_key=direct_key),
    )
