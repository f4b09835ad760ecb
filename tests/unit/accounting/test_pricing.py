"""gateway.accounting.pricing: cost arithmetic and price resolution."""

from __future__ import annotations

import pytest
from msgspec import UNSET

from gateway.accounting.pricing import PER_MTOK, GenaiPrices, Price, Pricing
from gateway.accounting.usage import CompletionDetails, Cost, PromptDetails, Usage
from gateway.config import PriceConfig

GENAI = GenaiPrices()  # one snapshot for the module: loading it takes a while
LOCAL_URL = "http://127.0.0.1:8000/v1"


def usage(prompt: int, completion: int, *, cached: int | None = None, reasoning: int | None = None) -> Usage:
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=None if cached is None else PromptDetails(cached_tokens=cached),
        completion_tokens_details=None if reasoning is None else CompletionDetails(reasoning_tokens=reasoning),
    )


def parts_sum(c: Cost) -> float:
    total = c.input_tokens_cost + c.output_tokens_cost + c.request_cost
    if c.reasoning_tokens_cost is not UNSET:
        total += c.reasoning_tokens_cost
    if c.cached_read_tokens_cost is not UNSET:
        total += c.cached_read_tokens_cost
    return total


def pricing(
    *,
    provider_id: str | None = None,
    provider_url: str | None = None,
    overrides: dict[str, PriceConfig] | None = None,
    unpriced: list[str] | None = None,
) -> Pricing:
    sink: list[str] = [] if unpriced is None else unpriced
    return Pricing(
        provider="prov",
        overrides=overrides or {},
        provider_id=provider_id,
        provider_url=provider_url,
        genai=GENAI,
        on_unpriced=sink.append,
    )


# --- Price.cost -------------------------------------------------------------------------


def test_price_cost_plain() -> None:
    p = Price(input=1e-6, output=2e-6, cache_read=None, request=0.0)
    c = p.cost(usage(1000, 500))
    assert c.input_tokens_cost == pytest.approx(1000e-6)
    assert c.output_tokens_cost == pytest.approx(1000e-6)
    assert c.reasoning_tokens_cost is UNSET
    assert c.cached_read_tokens_cost is UNSET
    assert c.request_cost == 0.0
    assert c.total_cost == pytest.approx(2000e-6)


def test_price_cost_zero_usage_is_zero() -> None:
    c = Price(input=1e-6, output=2e-6, cache_read=0.5e-6, request=0.0).cost(usage(0, 0))
    assert c.total_cost == 0.0
    assert c.input_tokens_cost == 0.0
    assert c.output_tokens_cost == 0.0


def test_price_cost_cached_tokens_billed_at_cache_read() -> None:
    p = Price(input=1e-6, output=2e-6, cache_read=0.25e-6, request=0.0)
    c = p.cost(usage(1000, 0, cached=400))
    assert c.input_tokens_cost == pytest.approx(600 * 1e-6)  # the cached part is not input
    assert c.cached_read_tokens_cost == pytest.approx(400 * 0.25e-6)
    assert c.total_cost == pytest.approx(600e-6 + 100e-6)


def test_price_cost_unpriced_cache_read_billed_as_input() -> None:
    p = Price(input=1e-6, output=2e-6, cache_read=None, request=0.0)
    assert p.cache_read == 1e-6
    c = p.cost(usage(1000, 0, cached=400))
    assert c.cached_read_tokens_cost == pytest.approx(400e-6)
    assert c.total_cost == pytest.approx(1000e-6)


def test_price_cost_free_cache_read_is_zero_not_input() -> None:
    p = Price(input=1e-6, output=2e-6, cache_read=0.0, request=0.0)
    c = p.cost(usage(1000, 0, cached=400))
    assert c.cached_read_tokens_cost == 0.0
    assert c.total_cost == pytest.approx(600e-6)


def test_price_cost_reasoning_tokens_partitioned_out_of_output() -> None:
    p = Price(input=1e-6, output=3e-6, cache_read=None, request=0.0)
    c = p.cost(usage(0, 500, reasoning=200))
    assert c.output_tokens_cost == pytest.approx(300 * 3e-6)
    assert c.reasoning_tokens_cost == pytest.approx(200 * 3e-6)
    assert c.total_cost == pytest.approx(500 * 3e-6)


def test_price_cost_zero_details_leave_parts_unset() -> None:
    c = Price(input=1e-6, output=2e-6, cache_read=0.5e-6, request=0.0).cost(usage(10, 10, cached=0, reasoning=0))
    assert c.reasoning_tokens_cost is UNSET
    assert c.cached_read_tokens_cost is UNSET


def test_price_cost_request_price() -> None:
    p = Price(input=0.0, output=0.0, cache_read=None, request=0.002)
    c = p.cost(usage(0, 0))
    assert c.request_cost == 0.002
    assert c.total_cost == 0.002


@pytest.mark.parametrize(
    ("prompt", "completion", "cached", "reasoning"),
    [(0, 0, None, None), (1000, 500, None, None), (1000, 500, 200, 100), (7, 3, 7, 3), (123456, 7890, 1, 7889)],
)
def test_price_cost_total_is_sum_of_parts(
    prompt: int, completion: int, cached: int | None, reasoning: int | None
) -> None:
    p = Price(input=1.1e-6, output=4.4e-6, cache_read=0.3e-6, request=0.01)
    c = p.cost(usage(prompt, completion, cached=cached, reasoning=reasoning))
    assert c.total_cost == pytest.approx(parts_sum(c))
    expected = (
        (prompt - (cached or 0)) * 1.1e-6 + (cached or 0) * 0.3e-6 + completion * 4.4e-6 + 0.01
    )  # reasoning is output, at the output price
    assert c.total_cost == pytest.approx(expected)


def test_price_cost_tiered_switches_at_threshold_for_all_tokens() -> None:
    p = Price(
        input=3e-6,
        output=15e-6,
        cache_read=0.3e-6,
        request=0.0,
        tiers={"input": ((200_000, 6e-6),), "output": ((200_000, 22.5e-6),), "cache_read": ((200_000, 0.6e-6),)},
    )
    below = p.cost(usage(199_999, 1000, cached=1000))
    assert below.input_tokens_cost == pytest.approx(198_999 * 3e-6)
    assert below.output_tokens_cost == pytest.approx(1000 * 15e-6)
    assert below.cached_read_tokens_cost == pytest.approx(1000 * 0.3e-6)
    at = p.cost(usage(200_000, 1000, cached=1000))
    # Every token, not only those past the threshold, takes the tier's price.
    assert at.input_tokens_cost == pytest.approx(199_000 * 6e-6)
    assert at.output_tokens_cost == pytest.approx(1000 * 22.5e-6)
    assert at.cached_read_tokens_cost == pytest.approx(1000 * 0.6e-6)
    assert at.total_cost == pytest.approx(parts_sum(at))


def test_price_cost_tier_for_one_kind_only() -> None:
    p = Price(input=1e-6, output=2e-6, cache_read=None, request=0.0, tiers={"input": ((100, 5e-6),)})
    c = p.cost(usage(100, 10))
    assert c.input_tokens_cost == pytest.approx(100 * 5e-6)
    assert c.output_tokens_cost == pytest.approx(10 * 2e-6)  # no output tier: base price


def test_price_cost_last_tier_reached_applies() -> None:
    p = Price(input=1e-6, output=0.0, cache_read=None, request=0.0, tiers={"input": ((100, 2e-6), (1000, 3e-6))})
    assert p.cost(usage(99, 0)).input_tokens_cost == pytest.approx(99 * 1e-6)
    assert p.cost(usage(100, 0)).input_tokens_cost == pytest.approx(100 * 2e-6)
    assert p.cost(usage(999, 0)).input_tokens_cost == pytest.approx(999 * 2e-6)
    assert p.cost(usage(1000, 0)).input_tokens_cost == pytest.approx(1000 * 3e-6)


# --- Price.from_config ------------------------------------------------------------------


def test_price_from_config_per_token() -> None:
    p = Price.from_config(PriceConfig(input_mtok=1.0, output_mtok=2.0, request_kcount=0.5))
    assert p.input == pytest.approx(1e-6)
    assert p.output == pytest.approx(2e-6)
    assert p.cache_read == pytest.approx(1e-6)  # unpriced cache reads: as input
    assert p.request == pytest.approx(0.0005)
    assert p.tiers == {}


def test_price_from_config_cache_read() -> None:
    assert Price.from_config(PriceConfig(input_mtok=1.0, cache_read_mtok=0.25)).cache_read == pytest.approx(0.25e-6)
    assert Price.from_config(PriceConfig(input_mtok=1.0, cache_read_mtok=0.0)).cache_read == 0.0


def test_price_from_config_default_is_free() -> None:
    c = Price.from_config(PriceConfig()).cost(usage(1000, 1000))
    assert c.total_cost == 0.0


# --- Pricing with genai-prices ----------------------------------------------------------


def test_pricing_openai_by_provider_id() -> None:
    p = pricing(provider_id="openai").lookup("gpt-4o-mini")
    assert p is not None
    assert p.input == pytest.approx(0.15e-6)
    assert p.output == pytest.approx(0.6e-6)
    assert p.input == pytest.approx(0.15 * PER_MTOK)


def test_pricing_openai_by_provider_url() -> None:
    p = pricing(provider_url="https://api.openai.com/v1").lookup("gpt-4o-mini")
    assert p is not None
    assert p.input == pytest.approx(0.15e-6)
    assert p.output == pytest.approx(0.6e-6)


def test_pricing_override_wins() -> None:
    calls: list[str] = []
    pr = pricing(
        provider_id="openai",
        overrides={"gpt-4o-mini": PriceConfig(input_mtok=9.0, output_mtok=11.0, request_kcount=1.0)},
        unpriced=calls,
    )
    p = pr.lookup("gpt-4o-mini")
    assert p is not None
    assert p.input == pytest.approx(9e-6)
    assert p.output == pytest.approx(11e-6)
    assert p.request == pytest.approx(0.001)
    assert calls == []


def test_pricing_override_for_self_hosted_model() -> None:
    calls: list[str] = []
    pr = pricing(provider_url=LOCAL_URL, overrides={"my-model": PriceConfig(input_mtok=1.0)}, unpriced=calls)
    p = pr.lookup("my-model")
    assert p is not None
    assert p.input == pytest.approx(1e-6)
    assert calls == []


def test_pricing_unknown_model_is_none_and_reported_each_time() -> None:
    calls: list[str] = []
    pr = pricing(provider_id="openai", unpriced=calls)
    assert pr.lookup("no-such-model-xyz") is None
    assert calls == ["prov"]
    assert pr.lookup("no-such-model-xyz") is None  # cached, still reported
    assert calls == ["prov", "prov"]


def test_pricing_priced_model_not_reported() -> None:
    calls: list[str] = []
    pr = pricing(provider_id="openai", unpriced=calls)
    first = pr.lookup("gpt-4o-mini")
    assert first is not None
    assert pr.lookup("gpt-4o-mini") is first  # resolved once, then cached
    assert calls == []


def test_pricing_mock_lookup_by_model_name_alone() -> None:
    p = pricing().lookup("gpt-4o")
    assert p is not None
    assert p.input == pytest.approx(2.5e-6)
    assert p.output == pytest.approx(10e-6)


def test_pricing_mock_embedding_model_by_its_exact_id() -> None:
    # genai-prices infers no provider from "text-embedding-3-small"; its exact id prices it.
    p = pricing().lookup("text-embedding-3-small")
    assert p is not None
    assert p.input == pytest.approx(0.02e-6)
    assert pricing().lookup("made-up-embedding-9") is None


def test_pricing_local_url_made_up_model_is_none() -> None:
    calls: list[str] = []
    assert pricing(provider_url=LOCAL_URL, unpriced=calls).lookup("made-up-model-7b") is None
    assert calls == ["prov"]


def test_pricing_genai_tiered_model() -> None:
    p = pricing(provider_id="google").lookup("gemini-2.5-pro")
    assert p is not None
    assert p.tiers  # priced by prompt size
    below = p.cost(usage(100_000, 0)).input_tokens_cost / 100_000
    above = p.cost(usage(300_000, 0)).input_tokens_cost / 300_000
    assert above > below


def test_unpriced_log_once_per_model_and_a_bounded_number_a_window(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.accounting.pricing import UNPRICED_WARNINGS_PER_WINDOW, UNPRICED_WINDOW_S, UnpricedLog

    now = [0.0]
    warned = UnpricedLog(clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="gateway.pricing"):
        for _ in range(3):
            warned.warn("prov", "same")
        assert len(caplog.records) == 1
        for i in range(100):
            warned.warn("prov", f"model-{i}")
        assert len(caplog.records) == UNPRICED_WARNINGS_PER_WINDOW
        now[0] += UNPRICED_WINDOW_S
        warned.warn("prov", "next-window")
    assert len(caplog.records) == UNPRICED_WARNINGS_PER_WINDOW + 1
    # The names left out are counted, not lost silently.
    assert f"({100 - UNPRICED_WARNINGS_PER_WINDOW + 1} more unpriced models not logged)" in caplog.messages[-1]


def test_pricing_warns_once_through_a_shared_log(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.accounting.pricing import UnpricedLog

    shared = UnpricedLog()
    a = Pricing(provider="a", overrides={}, provider_id=None, provider_url=LOCAL_URL, genai=GENAI,
                on_unpriced=lambda _: None, unpriced_log=shared)  # fmt: skip
    with caplog.at_level("WARNING", logger="gateway.pricing"):
        for _ in range(3):
            assert a.lookup("made-up-model-9b") is None
    assert len(caplog.records) == 1 and "'made-up-model-9b'" in caplog.messages[0]
