"""What a principal may use (Limits), what admission returns (Ticket or Refusal), and the
plan both stores follow: which counters a request touches and which checks it must pass.

Counters live per window period, one set for all limits on that window: requests
counted, tokens used and reserved, nano-USD spent and reserved. A requests limit and a
tokens limit on "1m" read the same period's counters; two limits of one kind on one
window never count a request twice.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.state.window import Window, period

Kind = Literal["requests", "tokens", "budget"]


class Limit(msgspec.Struct, frozen=True):
    kind: Kind
    amount: int  # requests, tokens, or nano-USD (1e-9 USD): integer counters only
    window: Window


class Limits(msgspec.Struct, frozen=True):
    principal: str  # stable id of the virtual key; part of every storage key
    anchor: float  # epoch seconds: where rolling windows start
    limits: tuple[Limit, ...] = ()
    max_concurrency: int | None = None


class Ticket(msgspec.Struct):
    """What an admission reserved, handed back to settle. Opaque to callers.

    ``counters`` name the window periods charged at admission: settle charges the same
    periods, even when a request outlives its period or the key's limits change."""

    counters: tuple[str, ...]
    tokens: int  # estimate reserved in every counter
    cost: int  # nano-USD estimate reserved in every counter
    slot: str  # the in-flight entry's id; "" when concurrency is not counted
    settled: bool = False


class Refusal(msgspec.Struct, frozen=True):
    kind: Literal["concurrency", "requests", "tokens", "budget"]
    limit: Limit | None  # None for concurrency
    retry_after_s: float


CONCURRENCY_RETRY_S = 1.0  # a slot frees when any request ends: no better guess than "soon"


class Plan:
    """The counters of one admission and, per limit, which counter it reads."""

    __slots__ = ("ends", "index", "names")

    def __init__(self, limits: Limits, *, now: float) -> None:
        self.names: list[str] = []  # "<window>:<r|c>:<period id>", unique
        self.ends: list[float] = []  # period end of each counter
        self.index: list[int] = []  # per limit: its counter in names
        seen: dict[str, int] = {}
        anchor = limits.anchor
        for limit in limits.limits:
            w = limit.window
            pid, end = period(w, now=now, anchor=anchor)
            name = f"{w.text}:{'c' if w.calendar else 'r'}:{pid}"
            i = seen.get(name)
            if i is None:
                i = seen[name] = len(self.names)
                self.names.append(name)
                self.ends.append(end)
            self.index.append(i)


def passes(kind: Kind, amount: int, *, requests: int, tokens: int, spent: int, cost: int) -> bool:
    """Whether one more request fits; ``tokens`` and ``spent`` include reservations."""
    if kind == "requests":
        return requests < amount
    if kind == "tokens":
        return tokens < amount
    return spent < amount and spent + cost <= amount


def refusal(limits: Limits, plan: Plan, failed: list[int], *, now: float) -> Refusal:
    """The refusal to report among the failed checks (limit indexes, -1 for concurrency):
    the limit that renews last, since retrying before it renews fails again; concurrency
    only when no limit failed."""
    best: Refusal | None = None
    for i in failed:
        if i < 0:
            continue
        limit = limits.limits[i]
        retry = plan.ends[plan.index[i]] - now
        if best is None or retry > best.retry_after_s:
            best = Refusal(limit.kind, limit, retry)
    return best or Refusal("concurrency", None, CONCURRENCY_RETRY_S)


def clamp(n: int) -> int:
    """Estimates and usage are never negative: a negative one would un-count usage."""
    return n if n > 0 else 0
