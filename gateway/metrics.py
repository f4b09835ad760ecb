"""Prometheus metrics, one registry per gateway (no global state).

Hot counters are plain attributes bumped on the event loop thread (``+=``, ~30 ns,
where a prometheus_client ``inc()`` takes a lock and ~0.6 µs) and read by a collector
when ``/metrics`` is scraped; prometheus_client does the exposition format.
Names follow ``gateway_<noun>_<unit>``. Labels are bounded: provider names come from
config; client-chosen model names are never labels.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
STREAM_OUTCOMES = ("completed", "client_gone", "upstream_error")
# Why governance refused a request (gateway_refused_requests_total{reason}).
REFUSALS = ("unauthorized", "forbidden", "rate_limited", "concurrency", "budget", "store_unavailable")
# Async jobs (gateway_async_jobs_total{event}): accepted, ended with an answer or an
# error, or refused at the pending cap.
JOB_EVENTS = ("submitted", "completed", "failed", "refused")


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


class Metrics(Collector):
    def __init__(self) -> None:
        self._providers: dict[str, ProviderMeters] = {}
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.store_errors = 0  # state store (Redis) operations that failed
        self.jobs = dict.fromkeys(JOB_EVENTS, 0)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def for_provider(self, provider: str) -> ProviderMeters:
        meters = self._providers.get(provider)
        if meters is None:
            meters = self._providers[provider] = ProviderMeters()
        return meters

    def collect(self) -> Iterator[Metric]:
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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
