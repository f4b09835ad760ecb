"""``Call.plain_extra_fields`` (a cached prefix and the latency appended) gives exactly
the bytes of ``encode(Call.extra_fields(target))``, the general path it stands in for:
for every model and provider name, and every latency, roundings at half a microsecond
included. The clock both read is held still so the two see the same elapsed time."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from gateway.relay import call as call_module
from gateway.upstream.client import Timeouts
from tests.unit.relay.calls import make_call

_encode = msgspec.json.Encoder().encode

# Seconds since the call began.
ELAPSED = [
    0.0,
    1e-9,
    4.999e-7,
    5e-7,  # 0.0005 ms: half of the last digit kept
    1.5e-6,
    2.5e-6,
    5.5e-6,
    6.5e-6,
    0.0123455,
    1.0005,
    59.9999995,
    300.0,
    1234.5678905,
    *(k * 0.5e-6 for k in range(1, 4001, 2)),  # every half microsecond tie up to 2 ms
    *(k / 2e6 for k in range(1, 4001, 2)),
]
NAMES = [
    ("chat_completion", "up", "up/gpt-x", "gpt-x"),
    ("text_completion", "up", "gpt-x", "gpt-x"),
    ("chat_completion", "プロバイダ", "プロバイダ/モデル-ü", "モデル-ü"),
    ("chat_completion", "up", 'odd "name"\\ \x01 \u2028 😀', "m/with/slashes"),
]


def target(provider: str, model: str) -> Any:
    return SimpleNamespace(provider=SimpleNamespace(name=provider), model=model, rewrite=False, native=False)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The call module's clock, held at ``clock.now``."""
    held = SimpleNamespace(now=0.0)
    monkeypatch.setattr(call_module, "time", SimpleNamespace(perf_counter=lambda: held.now))
    return held


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("t0", [0.0, 1000.0, 98765.4321])
def test_plain_extra_fields_equals_extra_fields(clock: SimpleNamespace, names: tuple[str, ...], t0: float) -> None:
    request_type, provider, requested, model = names
    t = target(provider, model)
    call = make_call([(t, b"{}")], request_type=request_type, requested=requested, t0=t0)
    for elapsed in ELAPSED:
        clock.now = t0 + elapsed
        assert call.plain_extra_fields(t) == _encode(call.extra_fields(t)), elapsed


def test_plain_extra_fields_equal_at_random_times(clock: SimpleNamespace) -> None:
    rng = random.Random(5)
    t = target("up", "gpt-x")
    for _ in range(20_000):
        t0 = rng.uniform(0, 1e6)
        call = make_call([(t, b"{}")], t0=t0)
        clock.now = t0 + rng.choice((rng.uniform(0, 1e-4), rng.uniform(0, 10), rng.uniform(0, 3600)))
        assert call.plain_extra_fields(t) == _encode(call.extra_fields(t))


def test_latency_ms_rounds_half_microseconds_up(clock: SimpleNamespace) -> None:
    call = make_call([(target("up", "m"), b"{}")], t0=0.0)
    for elapsed, ms in [(5e-7, 0.001), (5.5e-6, 0.006), (4.999e-7, 0.0), (1.0005, 1000.5), (2.0, 2000.0)]:
        clock.now = elapsed
        assert call.latency_ms() == ms


def test_plain_extra_fields_after_the_prefix_cache_is_cleared(clock: SimpleNamespace) -> None:
    clock.now = 1.25
    t = target("up", "m")
    for i in range(call_module._MAX_EXTRA_PREFIXES + 3):
        call = make_call([(t, b"{}")], requested=f"model-{i}", t0=0.0)
        assert call.plain_extra_fields(t) == _encode(call.extra_fields(t))
    assert len(call_module._EXTRA_PREFIXES) <= call_module._MAX_EXTRA_PREFIXES


@pytest.mark.parametrize(
    ("request_s", "idle_s", "elapsed", "sent"),
    [
        (None, None, 5.0, None),  # no override: the provider's own timeouts
        (None, 3.0, 5.0, Timeouts(None, 3.0)),
        (10.0, None, 4.0, Timeouts(6.0, None)),  # what is left of the client's deadline
        (10.0, 2.0, 9.5, Timeouts(0.5, 2.0)),
        (10.0, None, 10.0, Timeouts(call_module.MIN_ATTEMPT_S, None)),  # past it: a prompt 504
        (10.0, None, 60.0, Timeouts(call_module.MIN_ATTEMPT_S, None)),
    ],
)
def test_call_send_passes_what_is_left_of_the_request_timeout(
    clock: SimpleNamespace, request_s: float | None, idle_s: float | None, elapsed: float, sent: Timeouts | None
) -> None:
    asked: list[dict[str, Any]] = []

    def send(endpoint: str, body: bytes, **kw: Any) -> None:
        asked.append({"endpoint": endpoint, "body": body, **kw})

    t = SimpleNamespace(provider=SimpleNamespace(name="up", send=send), model="gpt-x", rewrite=False, native=False)
    timeouts = None if request_s is None and idle_s is None else Timeouts(request_s, idle_s)
    call = make_call(
        [(t, b"{}")], t0=100.0, timeouts=timeouts, extra_headers=(("x-a", "1"),), direct_key="sk-client-key"
    )
    clock.now = 100.0 + elapsed
    call.send(t, b'{"m":1}', 2, stream=True)
    assert asked == [
        {
            "endpoint": "chat",
            "body": b'{"m":1}',
            "stream": True,
            "timeouts": sent,
            "key": 2,
            "model": "gpt-x",
            "extra": (("x-a", "1"),),
            "secret": "sk-client-key",
        }
    ]
