"""Prometheus metrics, one registry per gateway (no global state).

Hot counters are plain attributes bumped on the event loop thread (``+=``, ~30 ns,
where a prometheus_client ``inc()`` takes a lock and ~0.6 µs) and read by a collector
when ``/metrics`` is scraped; prometheus_client does the exposition format.
Names follow ``gateway_<noun>_<unit>``. Labels are bounded: provider names come from
config; client-chosen model names are never labels.
"""

from __future__ import annotations

import os
import platform
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway import __version__

STREAM_OUTCOMES = ("completed", "client_gone", "upstream_error", "shutdown")
# Why governance refused a request (gateway_refused_requests_total{reason}).
REFUSALS = ("unauthorized", "forbidden", "rate_limited", "concurrency", "budget", "store_unavailable")
# Async jobs (gateway_async_jobs_total{event}): accepted, ended with an answer or an
# error, or refused at the pending cap.
JOB_EVENTS = ("submitted", "completed", "failed", "refused")
# Seconds. Whole requests and the upstream's part: from sub-millisecond mock answers to
# minutes-long generations; the gateway's own part: tens of microseconds up.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
# Distinct model label values kept per provider; more are counted as "other" (clients
# choose model names: an unbounded label would grow every scrape without limit).
MAX_MODELS_PER_PROVIDER = 64
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Multiprocess mode: how the workers' gauges combine (default: the sum over live workers).
_GAUGE_MODES = {
    "process_start_time_seconds": "livemin",  # the oldest live worker
    "process_max_fds": "livemax",
    "gateway_build_info": "livemax",
}


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and a sum: an observation
    is a bisect and two additions (~0.2 µs), exposed cumulatively at scrape time."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += n
            out.append((floatToGoString(bound), acc))  # type: ignore[no-untyped-call]
        return out


class _Answered:
    """One (route, provider, model) label set's answers: counts by status, and the
    histograms its requests are observed into (shared with the other label sets of the
    same route and provider)."""

    __slots__ = ("duration", "overhead", "statuses", "upstream")

    def __init__(self, duration: Histogram, overhead: Histogram) -> None:
        self.statuses: dict[int, int] = {}
        self.duration = duration  # whole requests, per (route, provider)
        self.upstream: Histogram | None = None  # waiting on the upstream, per provider
        self.overhead = overhead  # the gateway's own part, per route


class ProviderMeters:
    """One provider's counters."""

    __slots__ = (
        "busy",
        "cost_usd",
        "estimated",
        "fallbacks",
        "retries",
        "streams",
        "tokens_in",
        "tokens_out",
        "unpriced",
    )

    def __init__(self) -> None:
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost_usd = 0.0
        self.unpriced = 0
        self.estimated = 0
        self.streams = dict.fromkeys(STREAM_OUTCOMES, 0)
        self.retries = 0  # another try on this provider after a failure
        self.fallbacks = 0  # requests this provider served as a fallback
        self.busy = 0  # refused at its concurrency limit


# The response cache's lookup latency: an in-process hit takes microseconds, a Redis one
# a round trip (~0.1-1 ms), a store at its deadline up to 2 x store.timeout_s.
CACHE_LOOKUP_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.5)
# Why an answer was not kept (gateway_cache_skipped_total{reason}).
CACHE_SKIPS = ("error", "incomplete", "length", "oversize", "no_store", "store_error", "busy")


class CacheMeters:
    """The response cache's counters (``relay.cache``); exposed once a cache is configured."""

    __slots__ = ("active", "errors", "lookup", "lookups", "skipped", "stats_source", "stored")

    def __init__(self) -> None:
        self.active = False
        self.lookups: dict[tuple[str, str], int] = {}  # (hit type, "hit" | "miss")
        self.stored = 0
        self.skipped = dict.fromkeys(CACHE_SKIPS, 0)
        self.errors = 0  # store operations that failed (each a miss or an answer not kept)
        self.lookup = Histogram(CACHE_LOOKUP_BUCKETS)
        # (entries, bytes, evictions) of the in-process store; None: kept elsewhere (Redis).
        self.stats_source: Callable[[], tuple[int, int, int] | None] | None = None

    def looked_up(self, kind: str, result: str, seconds: float) -> None:
        key = (kind, result)
        self.lookups[key] = self.lookups.get(key, 0) + 1
        self.lookup.observe(seconds)

    def families(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "gateway_cache_lookups", "Response cache lookups by hit type and result", labels=["type", "result"]
        )
        for (kind, result), n in sorted(self.lookups.items()):
            lookups.add_metric([kind, result], n)
        yield lookups
        yield CounterMetricFamily("gateway_cache_stored", "Answers kept by the response cache", value=self.stored)
        skipped = CounterMetricFamily(
            "gateway_cache_skipped", "Answers the response cache did not keep, by reason", labels=["reason"]
        )
        for reason, n in self.skipped.items():
            skipped.add_metric([reason], n)
        yield skipped
        yield CounterMetricFamily(
            "gateway_cache_errors", "Response cache store operations that failed", value=self.errors
        )
        lookup = HistogramMetricFamily(
            "gateway_cache_lookup_seconds", "Response cache lookups, key made to entry read", labels=[]
        )
        lookup.add_metric([], self.lookup.buckets(), self.lookup.total)
        yield lookup
        stats = self.stats_source() if self.stats_source is not None else None
        if stats is not None:
            entries, size, evictions = stats
            yield GaugeMetricFamily("gateway_cache_entries", "Entries the in-process cache holds", value=entries)
            yield GaugeMetricFamily("gateway_cache_bytes", "Bytes the in-process cache holds", value=size)
            yield CounterMetricFamily(
                "gateway_cache_evictions", "In-process cache entries forgotten for room", value=evictions
            )


class ConnectionStats:
    """Client connections of one process, kept by the server (``server.protocol``)."""

    __slots__ = ("body_timeouts", "head_timeouts", "open", "refused")

    def __init__(self) -> None:
        self.open = 0
        self.refused = 0  # closed as accepted: the process was at server.max_connections
        self.head_timeouts = 0  # a request head not complete within server.header_timeout_s
        self.body_timeouts = 0  # a request body slower than server.body_* allow


class Metrics(Collector):
    def __init__(self) -> None:
        self.connections = ConnectionStats()
        self._providers: dict[str, ProviderMeters] = {}
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.store_errors = 0  # state store (Redis) operations that failed
        self.vector_errors = 0  # semantic cache vector index: Redis writes and stream reads that failed
        self.log_rows_dropped = 0  # request log store rows lost (its queue full, or unwritable)
        self.jobs = dict.fromkeys(JOB_EVENTS, 0)
        self.cache = CacheMeters()
        # Per request, recorded when its answer is written (see ``request``).
        self._answered: dict[tuple[str, str, str], _Answered] = {}  # (route, provider, model)
        self.durations: dict[tuple[str, str], Histogram] = {}  # (route, provider): the whole request
        self.upstream: dict[str, Histogram] = {}  # provider: waiting on the upstream
        self.overhead: dict[str, Histogram] = {}  # route: the whole request minus the upstream's part
        self.ttft: dict[str, Histogram] = {}  # provider: streams, request start to first chunk out
        self.errors: dict[str, int] = {}  # error answers by class (the OpenAI error type)
        self.in_flight = 0  # requests being served (or read from in_flight_source)
        self.in_flight_source: Callable[[], int] | None = None
        self.streams_in_flight = 0
        self._models: dict[str, set[str]] = {}
        # The standard process_* families (CPU, memory, descriptors, start time), from /proc.
        self._process = ProcessCollector(registry=None)
        self._build = GaugeMetricFamily(
            "gateway_build_info",
            "The running gateway's version and Python (always 1)",
            labels=["version", "python"],
        )
        self._build.add_metric([__version__, platform.python_version()], 1)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.mirror = Mirror(self) if os.environ.get(MULTIPROC_DIR_ENV) else None

    def request(self, route: str, provider: str, model: str, status: int, total_s: float, upstream_s: float) -> None:
        """One answered request: counted, its latency and the gateway's own part observed.
        ``upstream_s`` 0 when no upstream was reached (refused, or served by the gateway).
        One dict lookup for the label set, the histograms' observations inlined (~0.8 µs)."""
        entry = self._answered.get((route, provider, model))
        if entry is None:
            entry = self._answered_entry(route, provider, model)
        statuses = entry.statuses
        statuses[status] = statuses.get(status, 0) + 1
        h = entry.duration
        h.counts[bisect_left(h.bounds, total_s)] += 1
        h.total += total_s
        if upstream_s:
            h = entry.upstream or self._upstream_of(entry, provider)
            h.counts[bisect_left(h.bounds, upstream_s)] += 1
            h.total += upstream_s
            total_s = total_s - upstream_s if total_s > upstream_s else 0.0
        h = entry.overhead
        h.counts[bisect_left(h.bounds, total_s)] += 1
        h.total += total_s

    def _answered_entry(self, route: str, provider: str, model: str) -> _Answered:
        """The counters for a label set seen the first time (or a model over the bound:
        then the provider's "other" entry, looked up again each time, never cached under
        the client's string)."""
        models = self._models.get(provider)
        if models is None:
            models = self._models[provider] = set()
        if model not in models:
            if len(models) >= MAX_MODELS_PER_PROVIDER:
                model = "other"
                entry = self._answered.get((route, provider, model))
                if entry is not None:
                    return entry
            else:
                models.add(model)
        duration = self.durations.get((route, provider))
        if duration is None:
            duration = self.durations[(route, provider)] = Histogram(LATENCY_BUCKETS)
        overhead = self.overhead.get(route)
        if overhead is None:
            overhead = self.overhead[route] = Histogram(OVERHEAD_BUCKETS)
        entry = self._answered[(route, provider, model)] = _Answered(duration, overhead)
        return entry

    def _upstream_of(self, entry: _Answered, provider: str) -> Histogram:
        """The provider's upstream histogram, made when an upstream is first reached
        (refusals never do: no empty series for them)."""
        h = self.upstream.get(provider)
        if h is None:
            h = self.upstream[provider] = Histogram(LATENCY_BUCKETS)
        entry.upstream = h
        return h

    @property
    def requests(self) -> dict[tuple[str, str, str, int], int]:
        """Answered requests by (route, provider, model, status)."""
        return {
            (*labels, status): n for labels, entry in self._answered.items() for status, n in entry.statuses.items()
        }

    def first_token(self, provider: str, seconds: float) -> None:
        h = self.ttft.get(provider)
        if h is None:
            h = self.ttft[provider] = Histogram(LATENCY_BUCKETS)
        h.observe(seconds)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def for_provider(self, provider: str) -> ProviderMeters:
        meters = self._providers.get(provider)
        if meters is None:
            meters = self._providers[provider] = ProviderMeters()
        return meters

    def collect(self) -> Iterator[Metric]:
        yield self._build
        yield from self._process.collect()
        tokens = CounterMetricFamily("gateway_tokens", "Tokens accounted", labels=["provider", "direction"])
        cost = CounterMetricFamily("gateway_cost_usd", "Cost accounted, USD", labels=["provider"])
        unpriced = CounterMetricFamily(
            "gateway_unpriced_requests", "Requests whose model has no known price", labels=["provider"]
        )
        estimated = CounterMetricFamily(
            "gateway_usage_estimated_requests", "Requests whose usage the gateway counted itself", labels=["provider"]
        )
        streams = CounterMetricFamily("gateway_streams", "Streams by how they ended", labels=["provider", "outcome"])
        retries = CounterMetricFamily("gateway_upstream_retries", "Retries on a provider", labels=["provider"])
        fallbacks = CounterMetricFamily(
            "gateway_fallback_requests", "Requests a fallback provider served", labels=["provider"]
        )
        busy = CounterMetricFamily(
            "gateway_provider_busy_requests", "Requests refused at a provider's concurrency limit", labels=["provider"]
        )
        for name, m in sorted(self._providers.items()):
            tokens.add_metric([name, "input"], m.tokens_in)
            tokens.add_metric([name, "output"], m.tokens_out)
            cost.add_metric([name], m.cost_usd)
            unpriced.add_metric([name], m.unpriced)
            estimated.add_metric([name], m.estimated)
            for outcome, n in m.streams.items():
                streams.add_metric([name, outcome], n)
            retries.add_metric([name], m.retries)
            fallbacks.add_metric([name], m.fallbacks)
            busy.add_metric([name], m.busy)
        yield from (tokens, cost, unpriced, estimated, streams, retries, fallbacks, busy)
        refused = CounterMetricFamily("gateway_refused_requests", "Requests governance refused", labels=["reason"])
        for reason, n in self.refused.items():
            refused.add_metric([reason], n)
        yield refused
        jobs = CounterMetricFamily("gateway_async_jobs", "Async jobs by event", labels=["event"])
        for event, n in self.jobs.items():
            jobs.add_metric([event], n)
        yield jobs
        yield CounterMetricFamily(
            "gateway_store_errors", "State store operations that failed (Redis unreachable)", value=self.store_errors
        )
        yield CounterMetricFamily(
            "gateway_cache_vector_errors",
            "Semantic cache vector index operations on Redis that failed (lookups miss meanwhile)",
            value=self.vector_errors,
        )
        yield CounterMetricFamily(
            "gateway_log_rows_dropped",
            "Request log rows not stored (queue full, or a write failed)",
            value=self.log_rows_dropped,
        )
        if self.cache.active:
            yield from self.cache.families()
        yield from self._request_families()

    def _request_families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gateway_requests", "Requests answered", labels=["route", "provider", "model", "status"]
        )
        for (route, provider, model, status), n in sorted(self.requests.items()):
            requests.add_metric([route, provider, model, str(status)], n)
        yield requests
        errors = CounterMetricFamily("gateway_errors", "Error answers by class", labels=["class"])
        for kind, n in sorted(self.errors.items()):
            errors.add_metric([kind], n)
        yield errors
        for name, doc, labels, table in (
            (
                "gateway_request_duration_seconds",
                "Whole requests, first byte in to answer out",
                ["route", "provider"],
                {k: v for k, v in self.durations.items()},
            ),
            (
                "gateway_upstream_duration_seconds",
                "Time waiting on the upstream",
                ["provider"],
                {(k,): v for k, v in self.upstream.items()},
            ),
            (
                "gateway_overhead_seconds",
                "The gateway's own part: whole request minus upstream wait",
                ["route"],
                {(k,): v for k, v in self.overhead.items()},
            ),
            (
                "gateway_time_to_first_token_seconds",
                "Streams: request start to the first chunk out",
                ["provider"],
                {(k,): v for k, v in self.ttft.items()},
            ),
        ):
            family = HistogramMetricFamily(name, doc, labels=labels)
            for key, h in sorted(table.items()):
                family.add_metric(list(key), h.buckets(), h.total)
            yield family
        in_flight = self.in_flight_source() if self.in_flight_source is not None else self.in_flight
        yield GaugeMetricFamily("gateway_in_flight_requests", "Requests being served", value=in_flight)
        yield GaugeMetricFamily("gateway_in_flight_streams", "Streams being relayed", value=self.streams_in_flight)
        c = self.connections
        yield GaugeMetricFamily("gateway_open_connections", "Client connections open", value=c.open)
        yield CounterMetricFamily(
            "gateway_connections_refused",
            "Client connections closed as accepted: the process was at server.max_connections",
            value=c.refused,
        )
        timeouts = CounterMetricFamily(
            "gateway_request_read_timeouts",
            "Requests whose head or body did not arrive in time (answered 408)",
            labels=["phase"],
        )
        timeouts.add_metric(["head"], c.head_timeouts)
        timeouts.add_metric(["body"], c.body_timeouts)
        yield timeouts

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape's body and content type: Prometheus text, or OpenMetrics when the
        scraper's ``Accept`` asks for it."""
        encode, content_type = choose_encoder(accept or "")
        if self.mirror is not None:
            self.mirror.flush()
            return encode(self.mirror.registry), content_type
        return encode(self.registry), content_type


class Mirror:
    """Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set, as the supervisor does for its
    workers): this process's values are written into prometheus_client's per-process
    files (``flush``: at every scrape and periodically, never per request) and a scrape
    of any worker answers the sum of all of them (``MultiProcessCollector``). Counters and
    histograms of workers that died stay counted, as Prometheus counters must; gauges
    count live processes only (``livesum``; the supervisor marks dead ones)."""

    def __init__(self, metrics: Metrics) -> None:
        from prometheus_client import multiprocess, values

        self._metrics = metrics
        self._value_class: Any = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self._values: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        """Writes every current value (absolute, so a flush is idempotent)."""
        for family in self._metrics.collect():
            typ = family.type
            previous: dict[tuple[str, ...], float] = {}
            for sample in family.samples:
                if typ == "histogram" and sample.name.endswith("_count"):
                    continue  # the collector derives it from the buckets
                names = tuple(sample.labels)
                labels = tuple(sample.labels.values())
                value = sample.value
                if typ == "histogram" and "le" in sample.labels:
                    # Files hold each bucket's own count; the collector accumulates them.
                    base = tuple(v for n, v in sample.labels.items() if n != "le")
                    value, previous[base] = value - previous.get(base, 0.0), value
                key = (sample.name, labels)
                v = self._values.get(key)
                if v is None:
                    v = self._values[key] = self._value_class(
                        typ,
                        family.name,
                        sample.name,
                        names,
                        labels,
                        family.documentation,
                        multiprocess_mode=_GAUGE_MODES.get(family.name, "livesum") if typ == "gauge" else "",
                    )
                v.set(value)
