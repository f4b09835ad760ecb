"""Prices per model, resolved once and cached; cost arithmetic in plain floats.

Source: the ``genai-prices`` package's data (maintained by Pydantic, updated with
each release), looked up by the provider's genai-prices id (``pricing_provider`` in
config, else matched from its base URL) or, for the mock provider, by model name alone.
Config ``prices`` override it, for self-hosted models. A model with no price gets no
cost (never a silent 0) and is counted by ``gateway_unpriced_requests_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from msgspec import UNSET

from gateway.accounting.usage import Cost, Usage
from gateway.config import PriceConfig

log = logging.getLogger("gateway.pricing")

PER_MTOK = 1e-6
# Model names come from clients; the mock provider accepts any. Bounds the cache (its
# keys are bounded too: routing.table.MAX_MODEL_CHARS).
MAX_CACHED_MODELS = 4096
# The unpriced-model warning: once per (provider, model), and at most this many a
# window across all providers, so a client cycling through names cannot flood the log;
# those left out are counted in the next warning.
UNPRICED_WARNINGS_PER_WINDOW = 10
UNPRICED_WINDOW_S = 60.0
MAX_WARNED_MODELS = 4096
# (threshold in prompt tokens, USD per token); the last threshold reached applies to
# every token (the "cliff" model providers use).
Tiers = tuple[tuple[int, float], ...]


def _per_token(value: Any) -> tuple[float, Tiers]:
    """A genai-prices price (Decimal per MTok, or TieredPrices) as floats per token."""
    if value is None:
        return 0.0, ()
    base = getattr(value, "base", None)
    if base is None:
        return float(value) * PER_MTOK, ()
    return float(base) * PER_MTOK, tuple((t.start, float(t.price) * PER_MTOK) for t in value.tiers)


def _at(base: float, tiers: Tiers, prompt_tokens: int) -> float:
    price = base
    for start, tier_price in tiers:
        if prompt_tokens >= start:
            price = tier_price
    return price


class Price:
    """One model's prices, in USD per token (per request for ``request``)."""

    __slots__ = ("cache_read", "input", "output", "request", "tiers")

    def __init__(
        self,
        *,
        input: float,
        output: float,
        cache_read: float | None,
        request: float,
        tiers: dict[str, Tiers] | None = None,
    ) -> None:
        self.input = input
        self.output = output
        # Unpriced cache reads are billed as ordinary input.
        self.cache_read = input if cache_read is None else cache_read
        self.request = request
        self.tiers = tiers or {}

    @classmethod
    def from_config(cls, p: PriceConfig) -> Price:
        return cls(
            input=p.input_mtok * PER_MTOK,
            output=p.output_mtok * PER_MTOK,
            cache_read=None if p.cache_read_mtok is None else p.cache_read_mtok * PER_MTOK,
            request=p.request_kcount / 1000,
        )

    @classmethod
    def from_genai(cls, mp: Any) -> Price:
        inp, t_in = _per_token(getattr(mp, "input_mtok", None))
        out, t_out = _per_token(getattr(mp, "output_mtok", None))
        raw_read = getattr(mp, "cache_read_mtok", None)
        read, t_read = _per_token(raw_read)
        req = getattr(mp, "requests_kcount", None)
        tiers = {k: v for k, v in (("input", t_in), ("output", t_out), ("cache_read", t_read)) if v}
        return cls(
            input=inp,
            output=out,
            cache_read=None if raw_read is None else read,
            request=float(req) / 1000 if req is not None else 0.0,
            tiers=tiers,
        )

    def cost(self, u: Usage) -> Cost:
        inp, out, read = self.input, self.output, self.cache_read
        if self.tiers:
            t, n = self.tiers, u.prompt_tokens
            inp = _at(inp, t.get("input", ()), n)
            out = _at(out, t.get("output", ()), n)
            read = _at(read, t.get("cache_read", ()), n)
        cached = u.cached_tokens
        reasoning = u.reasoning_tokens
        input_cost = (u.prompt_tokens - cached) * inp
        output_cost = (u.completion_tokens - reasoning) * out
        read_cost = cached * read
        reasoning_cost = reasoning * out
        total = input_cost + output_cost + read_cost + reasoning_cost + self.request
        return Cost(
            input_tokens_cost=input_cost,
            output_tokens_cost=output_cost,
            reasoning_tokens_cost=reasoning_cost if reasoning else UNSET,
            cached_read_tokens_cost=read_cost if cached else UNSET,
            request_cost=self.request,
            total_cost=total,
        )


class GenaiPrices:
    """The genai-prices snapshot, imported off the request path (it takes ~0.25 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Any = None

    def warm(self) -> None:
        """Load in a thread at start-up so the first priced request does not wait."""
        threading.Thread(target=self.snapshot, name="genai-prices", daemon=True).start()

    def snapshot(self) -> Any:
        with self._lock:
            if self._snapshot is None:
                from genai_prices import data_snapshot

                self._snapshot = data_snapshot.get_snapshot()
            return self._snapshot


class UnpricedLog:
    """The warning for a model with no price, bounded (see UNPRICED_WARNINGS_PER_WINDOW).
    One per process, shared by every provider's ``Pricing``."""

    __slots__ = ("_clock", "_in_window", "_left_out", "_warned", "_window_start")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._warned: set[tuple[str, str]] = set()
        self._window_start = float("-inf")
        self._in_window = 0
        self._left_out = 0

    def warn(self, provider: str, model: str) -> None:
        key = (provider, model)
        if key in self._warned:
            return
        if len(self._warned) >= MAX_WARNED_MODELS:
            self._warned.clear()
        self._warned.add(key)
        now = self._clock()
        if now - self._window_start >= UNPRICED_WINDOW_S:
            self._window_start, self._in_window = now, 0
        if self._in_window >= UNPRICED_WARNINGS_PER_WINDOW:
            self._left_out += 1
            return
        self._in_window += 1
        left_out, self._left_out = self._left_out, 0
        more = f" ({left_out} more unpriced models not logged)" if left_out else ""
        log.warning(
            "no price known for model %r of provider '%s': its cost is left out (give the provider "
            "'pricing_provider' if it serves a known provider's models, or 'prices' for this model)%s",
            model,
            provider,
            more,
        )


class Pricing:
    """Per provider: config overrides, then genai-prices, cached per model.

    ``lookup`` returns None for an unpriced model; each unpriced model is logged once
    (``UnpricedLog``).
    """

    __slots__ = (
        "_cache",
        "_genai",
        "_on_unpriced",
        "_overrides",
        "_provider_id",
        "_provider_url",
        "_warn",
        "provider",
    )

    def __init__(
        self,
        *,
        provider: str,
        overrides: dict[str, PriceConfig],
        provider_id: str | None,
        provider_url: str | None,
        genai: GenaiPrices,
        on_unpriced: Callable[[str], None],
        unpriced_log: UnpricedLog | None = None,
    ) -> None:
        self.provider = provider
        self._overrides = {m: Price.from_config(p) for m, p in overrides.items()}
        self._provider_id = provider_id
        self._provider_url = provider_url
        self._genai = genai
        self._on_unpriced = on_unpriced  # per request priced at nothing (a metric)
        self._warn = (unpriced_log or UnpricedLog()).warn
        self._cache: dict[str, Price | None] = {}

    def lookup(self, model: str) -> Price | None:
        try:
            price = self._cache[model]
        except KeyError:
            if len(self._cache) >= MAX_CACHED_MODELS:
                self._cache.clear()
            price = self._cache[model] = self._resolve(model)
            if price is None:
                self._warn(self.provider, model)
        if price is None:
            self._on_unpriced(self.provider)
        return price

    def _resolve(self, model: str) -> Price | None:
        if model in self._overrides:
            return self._overrides[model]
        snap = self._genai.snapshot()
        try:
            _, info = snap.find_provider_model(model, None, self._provider_id, self._provider_url)
        except LookupError:
            if self._provider_id is not None or self._provider_url is not None:
                return None
            # Neither names a provider (the built-in mock): genai-prices infers one from
            # the model's name only for chat models (gpt-*, claude-*, ...); an exact model
            # id of any provider prices the rest (text-embedding-3-small) too.
            found = next((m for p in snap.providers if (m := p.find_model(model)) is not None), None)
            if found is None:
                return None
            info = found
        return Price.from_genai(info.get_prices(datetime.now(UTC)))
