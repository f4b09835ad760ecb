"""The one failure policy (gateway.errors.classify), as a table: every decision about a
failed attempt (retry, key rotation and cool-down, fallback) comes from here."""

from __future__ import annotations

import pytest

from gateway.errors import (
    Failure,
    GatewayError,
    InvalidRequest,
    PoolExhausted,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    classify,
)
from gateway.routing.limits import ProviderBusy

COOL = 30.0


def status(code: int, retry_after_s: float | None = None) -> UpstreamStatusError:
    return UpstreamStatusError("x", status=code, body=None, retry_after_s=retry_after_s)


PROVIDER_FAULT = Failure(retry=True, rotate_key=False, fall_back=True, cooldown_s=None, strike=True)
FINAL = Failure(retry=False, rotate_key=False, fall_back=False, cooldown_s=None, strike=False)

TABLE: list[tuple[str, GatewayError, Failure]] = [
    *[(f"{s}", status(s), PROVIDER_FAULT) for s in (500, 501, 502, 503, 504, 505, 520, 529, 599)],
    ("408", status(408), PROVIDER_FAULT),
    ("timeout", UpstreamTimeout("t"), PROVIDER_FAULT),
    ("connect", UpstreamConnectError("c"), PROVIDER_FAULT),
    ("garbage", UpstreamProtocolError("p"), PROVIDER_FAULT),
    ("429", status(429), Failure(retry=True, rotate_key=True, fall_back=True, cooldown_s=1.0, strike=False)),
    (
        "429 retry-after 7",
        status(429, 7.0),
        Failure(retry=True, rotate_key=True, fall_back=True, cooldown_s=7.0, strike=False),
    ),
    (
        "429 retry-after past the cool-down",
        status(429, 999.0),
        Failure(retry=True, rotate_key=True, fall_back=True, cooldown_s=COOL, strike=False),
    ),
    ("401", status(401), Failure(retry=False, rotate_key=True, fall_back=False, cooldown_s=COOL, strike=False)),
    ("403", status(403), Failure(retry=False, rotate_key=True, fall_back=False, cooldown_s=COOL, strike=False)),
    ("409", status(409), Failure(retry=False, rotate_key=False, fall_back=True, cooldown_s=None, strike=False)),
    *[(f"{s}", status(s), FINAL) for s in (400, 404, 405, 413, 415, 422)],
    (
        "busy",
        ProviderBusy("busy"),
        Failure(retry=False, rotate_key=False, fall_back=True, cooldown_s=None, strike=False),
    ),
    (
        "pool exhausted",
        PoolExhausted("p"),
        Failure(retry=False, rotate_key=False, fall_back=True, cooldown_s=None, strike=False),
    ),
    (
        "untranslatable",
        InvalidRequest("no", code="unsupported_parameter"),
        Failure(retry=False, rotate_key=False, fall_back=True, cooldown_s=None, strike=False),
    ),
]


@pytest.mark.parametrize(("err", "expected"), [(e, f) for _, e, f in TABLE], ids=[n for n, _, _ in TABLE])
def test_classify(err: GatewayError, expected: Failure) -> None:
    assert classify(err, key_cooldown_s=COOL) == expected
