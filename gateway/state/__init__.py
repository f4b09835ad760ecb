"""Shared state behind virtual keys: rate limits (requests and tokens per window), budgets
(nano-USD per window), concurrency caps, async jobs and runtime-managed keys.

``MemoryStore`` serves one process; ``RedisStore`` shares one truth between processes
and replicas, with the same semantics. RedisStore is imported on first use: redis-py
costs ~0.15 s to import, which a gateway without Redis does not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.state.limits import Limit, Limits, Refusal, Ticket
from gateway.state.memory import MemoryStore
from gateway.state.store import Store, StoreUnavailable
from gateway.state.window import Window, parse_window, period

if TYPE_CHECKING:
    from gateway.state.redis import RedisStore

__all__ = [
    "Limit",
    "Limits",
    "MemoryStore",
    "RedisStore",
    "Refusal",
    "Store",
    "StoreUnavailable",
    "Ticket",
    "Window",
    "parse_window",
    "period",
]


def __getattr__(name: str) -> object:
    if name == "RedisStore":
        from gateway.state.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
