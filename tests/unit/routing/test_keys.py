"""gateway.routing.keys.KeyRing: weighted choice, per-key models, cool-down, strikes."""

from __future__ import annotations

import random
from collections import Counter

from gateway.config import KeyConfig
from gateway.errors import Failure
from gateway.routing.keys import COOLDOWN_AFTER_FAILURES, KeyRing

STRIKE = Failure(retry=True, rotate_key=False, fall_back=True, cooldown_s=None, strike=True)
REFUSED = Failure(retry=False, rotate_key=True, fall_back=False, cooldown_s=30.0, strike=False)


def ring(*keys: KeyConfig) -> KeyRing:
    return KeyRing(keys, cooldown_s=60.0)


def test_no_keys_is_one_default_key() -> None:
    r = ring()
    assert (len(r), r.names, r.choose("any"), r.index("default")) == (1, ["default"], 0, 0)


def test_choose_follows_weights_and_models() -> None:
    r = ring(KeyConfig(value="a", name="a", weight=1), KeyConfig(value="b", name="b", weight=3))
    random.seed(1)
    counts = Counter(r.choose("m") for _ in range(4000))
    assert 0.2 < counts[0] / 4000 < 0.3 and counts[0] + counts[1] == 4000
    only = ring(KeyConfig(value="a", name="a", models=("x",)), KeyConfig(value="b", name="b", models=("y",)))
    assert (only.choose("x"), only.choose("y"), only.choose("z")) == (0, 1, None)
    assert only.choose("x", exclude={0}) is None
    assert (only.index("b"), only.index("nope")) == (1, None)


def test_strikes_cool_a_key_after_a_row_of_failures() -> None:
    r = ring(KeyConfig(value="a", name="a"), KeyConfig(value="b", name="b"))
    for _ in range(COOLDOWN_AFTER_FAILURES - 1):
        r.failed(0, STRIKE, status=500)
    assert r.cooling()[0] == 0.0
    r.succeeded(0)  # a success clears the row
    for _ in range(COOLDOWN_AFTER_FAILURES):
        r.failed(0, STRIKE, status=None)
    assert 59 < r.cooling()[0] <= 60 and r.last_failure_status is None
    assert all(r.choose("m") == 1 for _ in range(50))


def test_refused_key_cools_for_its_failure_and_the_soonest_is_used_when_all_cool() -> None:
    r = ring(KeyConfig(value="a", name="a"), KeyConfig(value="b", name="b"))
    r.failed(0, REFUSED, status=401)
    r.failed(1, Failure(retry=True, rotate_key=True, fall_back=True, cooldown_s=2.0, strike=False), status=429)
    assert 29 < r.cooling()[0] <= 30 and 1 < r.cooling()[1] <= 2 and r.last_failure_status == 429
    assert r.choose("m") == 1  # every key cooling: the one that ends first
