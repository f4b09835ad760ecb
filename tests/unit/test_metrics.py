"""Request metrics: counts, histograms and gauges read back with prometheus_client's own
parser; multiprocess mode summed across real processes sharing one directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import LATENCY_BUCKETS, MAX_MODELS_PER_PROVIDER, Histogram, Metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0):
        h.observe(v)
    assert h.buckets() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert h.total == 0.05 + 0.1 + 0.5 + 1.0 + 3.0


def test_requests_counted_with_latency_upstream_and_overhead() -> None:
    m = Metrics()
    m.request("/v1/chat/completions", "up", "gpt-x", 200, total_s=0.030, upstream_s=0.025)
    m.request("/v1/chat/completions", "up", "gpt-x", 200, total_s=0.002, upstream_s=0.0)
    m.request("/v1/chat/completions", "up", "gpt-x", 429, total_s=0.001, upstream_s=0.0)
    m.first_token("up", 0.2)
    m.error("rate_limit_error")
    m.in_flight = 3
    got = samples(m.exposition()[0].decode())
    route = ("route", "/v1/chat/completions")
    assert got[("gateway_requests_total", (("model", "gpt-x"), ("provider", "up"), route, ("status", "200")))] == 2
    assert got[("gateway_requests_total", (("model", "gpt-x"), ("provider", "up"), route, ("status", "429")))] == 1
    assert got[("gateway_request_duration_seconds_count", (("provider", "up"), route))] == 3
    assert got[("gateway_request_duration_seconds_bucket", (("le", "0.005"), ("provider", "up"), route))] == 2
    assert got[("gateway_upstream_duration_seconds_count", (("provider", "up"),))] == 1
    overhead_sum = got[("gateway_overhead_seconds_sum", (route,))]
    assert abs(overhead_sum - (0.005 + 0.002 + 0.001)) < 1e-9
    assert got[("gateway_time_to_first_token_seconds_count", (("provider", "up"),))] == 1
    assert got[("gateway_errors_total", (("class", "rate_limit_error"),))] == 1
    assert got[("gateway_in_flight_requests", ())] == 3


def test_model_label_is_bounded_per_provider() -> None:
    m = Metrics()
    for i in range(MAX_MODELS_PER_PROVIDER + 10):
        m.request("/v1/chat/completions", "up", f"m{i}", 200, total_s=0.01, upstream_s=0.005)
    models = {k[2] for k in m.requests}
    assert len(models) == MAX_MODELS_PER_PROVIDER + 1 and "other" in models
    assert m.requests[("/v1/chat/completions", "up", "other", 200)] == 10


WORKER = """
import sys
from gateway.metrics import Metrics
m = Metrics()
assert m.mirror is not None
n = int(sys.argv[1])
for _ in range(n):
    m.request("/v1/chat/completions", "up", "gpt-x", 200, total_s=0.003, upstream_s=0.002)
m.for_provider("up").tokens_in += 10 * n
m.in_flight = n
m.mirror.flush()
m.mirror.flush()  # idempotent: values are written absolute
"""


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for n in (2, 5):
        subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True, timeout=60)
    reader = subprocess.run(
        [sys.executable, "-c", "from gateway.metrics import Metrics; print(Metrics().exposition()[0].decode())"],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    got = samples(reader.stdout)
    route = ("route", "/v1/chat/completions")
    labels = (("model", "gpt-x"), ("provider", "up"), route, ("status", "200"))
    assert got[("gateway_requests_total", labels)] == 7
    assert got[("gateway_tokens_total", (("direction", "input"), ("provider", "up")))] == 70
    assert got[("gateway_request_duration_seconds_count", (("provider", "up"), route))] == 7
    assert got[("gateway_request_duration_seconds_bucket", (("le", "0.005"), ("provider", "up"), route))] == 7
    assert got[("gateway_request_duration_seconds_bucket", (("le", "0.0025"), ("provider", "up"), route))] == 0
    assert abs(got[("gateway_request_duration_seconds_sum", (("provider", "up"), route))] - 7 * 0.003) < 1e-9
    assert len([k for k in got if k[0] == "gateway_request_duration_seconds_bucket"]) == len(LATENCY_BUCKETS) + 1
    # Gauges: live processes only; these two have exited but were not marked dead.
    assert got[("gateway_in_flight_requests", ())] == 7
