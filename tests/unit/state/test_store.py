"""The store contract, run against MemoryStore and RedisStore alike (``stores``):
admission per limit kind, all or nothing, settle, periods, jobs and keys."""

from __future__ import annotations

import asyncio

import pytest

from gateway.state import Limit, Limits, Refusal, Store, Ticket, parse_window, period
from tests.unit.state.conftest import Stores

T0 = 1_700_000_010.0  # 30 s before a minute boundary (anchor 0), 1h50m before an hour's end
MIN = parse_window("1m")
HOUR = parse_window("1h")


def limits(*items: Limit, cap: int | None = None, principal: str = "vk:a", anchor: float = 0.0) -> Limits:
    return Limits(principal=principal, anchor=anchor, limits=items, max_concurrency=cap)


def requests(n: int, window: str = "1m") -> Limit:
    return Limit("requests", n, parse_window(window))


def tokens(n: int, window: str = "1m") -> Limit:
    return Limit("tokens", n, parse_window(window))


def budget(n: int, window: str = "1m") -> Limit:
    return Limit("budget", n, parse_window(window))


async def admitted(store: Store, lim: Limits, *, now: float = T0, tokens: int = 0, cost: int = 0) -> Ticket:
    out = await store.admit(lim, now=now, tokens=tokens, cost=cost)
    assert isinstance(out, Ticket), out
    return out


async def refused(store: Store, lim: Limits, *, now: float = T0, tokens: int = 0, cost: int = 0) -> Refusal:
    out = await store.admit(lim, now=now, tokens=tokens, cost=cost)
    assert isinstance(out, Refusal), out
    return out


async def used(store: Store, lim: Limits, *, now: float = T0) -> list[int]:
    return [n for _, n, _ in await store.usage(lim, now=now)]


def test_store_requests_refused_at_the_limit_until_the_period_ends(stores: Stores) -> None:
    lim = limits(requests(3))
    end = period(MIN, now=T0, anchor=0.0)[1]

    async def scenario(s: Store) -> None:
        for _ in range(3):
            await admitted(s, lim)
        r = await refused(s, lim, now=T0 + 1)
        assert (r.kind, r.limit) == ("requests", lim.limits[0])
        assert r.retry_after_s == pytest.approx(end - (T0 + 1))
        assert await used(s, lim) == [3]
        await admitted(s, lim, now=end)  # the next period starts empty
        assert await used(s, lim, now=end) == [1]

    stores.run(scenario)


def test_store_tokens_count_reservations_and_refuse_at_the_limit(stores: Stores) -> None:
    lim = limits(tokens(100))

    async def scenario(s: Store) -> None:
        await admitted(s, lim, tokens=60)  # 0 < 100
        await admitted(s, lim, tokens=60)  # 60 < 100: the estimate is not part of the check
        assert await used(s, lim) == [120]
        r = await refused(s, lim, tokens=0)  # 120 >= 100
        assert r.kind == "tokens"
        assert await used(s, lim) == [120]

    stores.run(scenario)


def test_store_budget_refuses_a_cost_that_would_not_fit(stores: Stores) -> None:
    lim = limits(budget(100))

    async def scenario(s: Store) -> None:
        await admitted(s, lim, cost=40)
        await admitted(s, lim, cost=40)
        r = await refused(s, lim, cost=40)  # 80 + 40 > 100
        assert (r.kind, r.limit) == ("budget", lim.limits[0])
        await admitted(s, lim, cost=20)  # 80 + 20 <= 100: exactly the budget
        assert await used(s, lim) == [100]
        assert (await refused(s, lim, cost=0)).kind == "budget"  # spent == amount: nothing more

    stores.run(scenario)


def test_store_concurrency_caps_requests_in_flight(stores: Stores) -> None:
    lim = limits(cap=2)

    async def scenario(s: Store) -> None:
        a = await admitted(s, lim)
        await admitted(s, lim)
        assert await refused(s, lim) == Refusal("concurrency", None, 1.0)
        await s.settle(lim, a, tokens=0, cost=0)
        await admitted(s, lim)
        assert (await refused(s, lim)).kind == "concurrency"

    stores.run(scenario)


def test_store_refusal_by_one_limit_changes_no_counter(stores: Stores) -> None:
    lim = limits(requests(10), tokens(1000), budget(100), cap=1)

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, tokens=10, cost=90)
        before = await used(s, lim)
        assert before == [1, 10, 90]
        assert (await refused(s, lim, tokens=10, cost=5)).kind == "concurrency"
        await s.settle(lim, t, tokens=10, cost=90)
        assert (await refused(s, lim, tokens=10, cost=20)).kind == "budget"  # 90 + 20 > 100
        assert await used(s, lim) == before  # neither refusal counted a request or reserved
        await admitted(s, lim, tokens=10, cost=10)  # and neither kept the in-flight slot
        assert await used(s, lim) == [2, 20, 100]

    stores.run(scenario)


def test_store_settle_replaces_reservations_with_usage(stores: Stores) -> None:
    lim = limits(tokens(1000), budget(10_000))

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, tokens=100, cost=500)
        assert await used(s, lim) == [100, 500]
        await s.settle(lim, t, tokens=30, cost=700)  # more than estimated: charged anyway
        assert await used(s, lim) == [30, 700]

    stores.run(scenario)


def test_store_settle_may_take_a_counter_over_its_limit(stores: Stores) -> None:
    lim = limits(budget(100))

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, cost=10)
        await s.settle(lim, t, tokens=0, cost=250)
        assert await used(s, lim) == [250]
        r = await refused(s, lim, cost=0)
        assert r.kind == "budget"

    stores.run(scenario)


def test_store_settle_charges_the_periods_of_admission(stores: Stores) -> None:
    lim = limits(tokens(1000))
    end = period(MIN, now=T0, anchor=0.0)[1]

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, tokens=100)
        await s.settle(lim, t, tokens=40, cost=0)  # called after the period ended
        assert await used(s, lim, now=end + 1) == [0]
        assert await used(s, lim, now=T0) == [40]

    stores.run(scenario)


def test_store_settle_twice_changes_nothing_more(stores: Stores) -> None:
    lim = limits(tokens(1000), budget(1000), cap=1)

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, tokens=100, cost=100)
        await s.settle(lim, t, tokens=10, cost=10)
        await s.settle(lim, t, tokens=10, cost=10)
        assert await used(s, lim) == [10, 10]
        await admitted(s, lim)  # in flight went 1 -> 0, not -1: one slot, not two
        assert (await refused(s, lim)).kind == "concurrency"

    stores.run(scenario)


def test_store_reservations_never_go_negative(stores: Stores) -> None:
    lim = limits(tokens(1000))

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, tokens=50)
        forged = Ticket(t.counters, tokens=500, cost=0, slot="")  # claims more than was reserved
        await s.settle(lim, forged, tokens=0, cost=0)
        assert await used(s, lim) == [0]
        await s.settle(lim, t, tokens=5, cost=0)
        assert await used(s, lim) == [5]

    stores.run(scenario)


def test_store_negative_estimates_and_usage_count_as_zero(stores: Stores) -> None:
    lim = limits(tokens(1000), budget(1000))

    async def scenario(s: Store) -> None:
        t = await admitted(s, lim, tokens=-5, cost=-5)
        await s.settle(lim, t, tokens=-7, cost=-7)
        assert await used(s, lim) == [0, 0]

    stores.run(scenario)


def test_store_refusal_reports_the_limit_that_renews_last(stores: Stores) -> None:
    lim = limits(requests(1, "1m"), requests(1, "1h"), cap=1)
    hour_end = period(HOUR, now=T0, anchor=0.0)[1]

    async def scenario(s: Store) -> None:
        await admitted(s, lim)
        r = await refused(s, lim)  # all three fail
        assert (r.kind, r.limit) == ("requests", lim.limits[1])
        assert r.retry_after_s == pytest.approx(hour_end - T0)

    stores.run(scenario)


def test_store_limits_on_one_window_count_a_request_once(stores: Stores) -> None:
    lim = limits(requests(5), requests(2), tokens(1000))

    async def scenario(s: Store) -> None:
        await admitted(s, lim, tokens=7)
        assert await used(s, lim) == [1, 1, 7]
        await admitted(s, lim)
        assert (await refused(s, lim)).limit == lim.limits[1]

    stores.run(scenario)


def test_store_principals_and_rolling_anchors_are_apart(stores: Stores) -> None:
    a = limits(requests(1), principal="vk:a", anchor=10.0)
    b = limits(requests(1), principal="vk:b{odd}:name", anchor=10.0)
    start = period(MIN, now=T0, anchor=10.0)[1]  # T0 + 10: anchored 10 s past the minute

    async def scenario(s: Store) -> None:
        await admitted(s, a)
        await admitted(s, b)
        assert (await refused(s, a, now=start - 0.5)).retry_after_s == pytest.approx(0.5)
        await admitted(s, a, now=start)

    assert start == T0 + 40
    stores.run(scenario)


def test_store_calendar_month_budget_renews_on_the_first(stores: Stores) -> None:
    lim = limits(Limit("budget", 100, parse_window("1M", calendar=True)))
    jan_31 = 1_706_702_400.0  # 2024-01-31 12:00 UTC
    feb_1 = 1_706_745_600.0  # 2024-02-01 00:00 UTC

    async def scenario(s: Store) -> None:
        await admitted(s, lim, now=jan_31, cost=100)
        r = await refused(s, lim, now=jan_31, cost=1)
        assert r.retry_after_s == pytest.approx(feb_1 - jan_31)
        await admitted(s, lim, now=feb_1, cost=100)

    stores.run(scenario)


def test_store_usage_lists_limits_with_their_period_ends(stores: Stores) -> None:
    lim = limits(requests(10, "1m"), budget(10, "1h"))

    async def scenario(s: Store) -> None:
        await admitted(s, lim, cost=3)
        got = await s.usage(lim, now=T0)
        assert got == [
            (lim.limits[0], 1, period(MIN, now=T0, anchor=0.0)[1]),
            (lim.limits[1], 3, period(HOUR, now=T0, anchor=0.0)[1]),
        ]

    stores.run(scenario)


def test_store_no_limits_admits_everything(stores: Stores) -> None:
    lim = limits()

    async def scenario(s: Store) -> None:
        for _ in range(3):
            t = await admitted(s, lim, tokens=5, cost=5)
            await s.settle(lim, t, tokens=5, cost=5)
        assert await s.usage(lim, now=T0) == []

    stores.run(scenario)


def test_store_jobs_pending_cap_and_finish_once(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        assert await s.job_create("j1", "vk:a", b"r1", ttl_s=60, max_pending=2)
        assert await s.job_create("j2", "vk:b", b"r2", ttl_s=60, max_pending=2)
        assert not await s.job_create("j3", "vk:a", b"r3", ttl_s=60, max_pending=2)
        await s.job_update("j1", b"r1-running", ttl_s=60, finished=False)
        assert not await s.job_create("j3", "vk:a", b"r3", ttl_s=60, max_pending=2)
        await s.job_update("j1", b"r1-done", ttl_s=60, finished=True)
        await s.job_update("j1", b"r1-done", ttl_s=60, finished=True)  # a second finish frees nothing
        assert await s.job_create("j3", "vk:a", b"r3", ttl_s=60, max_pending=2)
        assert not await s.job_create("j4", "vk:a", b"r4", ttl_s=60, max_pending=2)
        await s.job_update("j1", b"r1-late", ttl_s=60, finished=False)  # finished stays finished
        assert await s.job_create("j4", "vk:a", b"r4", ttl_s=60, max_pending=3)  # j2, j3 pending: not j1
        assert not await s.job_create("j5", "vk:a", b"r5", ttl_s=60, max_pending=3)
        assert await s.job_get("j1") == ("vk:a", b"r1-late")
        assert await s.job_get("j2") == ("vk:b", b"r2")
        assert await s.job_get("nope") is None

    stores.run(scenario)


def test_store_job_create_refuses_an_existing_id(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        assert await s.job_create("j1", "vk:a", b"r1", ttl_s=60, max_pending=10)
        assert not await s.job_create("j1", "vk:b", b"other", ttl_s=60, max_pending=10)
        assert await s.job_get("j1") == ("vk:a", b"r1")

    stores.run(scenario)


def test_store_jobs_expire_and_free_their_pending_place(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        assert await s.job_create("j1", "vk:a", b"r1", ttl_s=0.05, max_pending=1)
        assert not await s.job_create("j2", "vk:a", b"r2", ttl_s=60, max_pending=1)
        await asyncio.sleep(0.15)
        assert await s.job_get("j1") is None
        assert await s.job_create("j2", "vk:a", b"r2", ttl_s=60, max_pending=1)  # j1 crashed: its place is free
        await s.job_update("j1", b"late", ttl_s=60, finished=True)  # unknown by now: no effect
        assert await s.job_get("j1") is None

    stores.run(scenario)


def test_store_job_update_sets_a_new_ttl(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        assert await s.job_create("j1", "vk:a", b"r1", ttl_s=60, max_pending=5)
        await s.job_update("j1", b"done", ttl_s=0.05, finished=True)
        assert await s.job_get("j1") == ("vk:a", b"done")
        await asyncio.sleep(0.15)
        assert await s.job_get("j1") is None

    stores.run(scenario)


def test_store_keys_are_found_by_id_and_secret_hash(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        await s.key_put("k1", "h1", b"rec1")
        await s.key_put("k2", "h2", b"rec2")
        assert await s.key_get("k1") == b"rec1"
        assert await s.key_by_hash("h2") == b"rec2"
        assert sorted(await s.key_list()) == [b"rec1", b"rec2"]
        await s.key_put("k1", "h1b", b"rec1b")  # a new secret: the old one finds nothing
        assert await s.key_by_hash("h1") is None
        assert await s.key_by_hash("h1b") == b"rec1b"
        assert await s.key_delete("k1")
        assert not await s.key_delete("k1")
        assert await s.key_get("k1") is None
        assert await s.key_by_hash("h1b") is None
        assert await s.key_list() == [b"rec2"]
        assert await s.key_by_hash("missing") is None

    stores.run(scenario)


def test_store_key_create_refuses_an_existing_id(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        assert await s.key_create("k1", "h1", b"rec1")
        assert not await s.key_create("k1", "h2", b"rec2")  # nothing changes
        assert await s.key_get("k1") == b"rec1"
        assert await s.key_by_hash("h1") == b"rec1"
        assert await s.key_by_hash("h2") is None
        # Concurrent creations of one id: exactly one wins.
        won = await asyncio.gather(*(s.key_create("k2", f"c{i}", f"r{i}".encode()) for i in range(8)))
        assert won.count(True) == 1
        assert await s.key_by_hash(f"c{won.index(True)}") == await s.key_get("k2")
        assert await s.key_delete("k1")
        assert await s.key_create("k1", "h3", b"rec3")  # a deleted id may be created again
        assert await s.key_by_hash("h3") == b"rec3"

    stores.run(scenario)


def test_store_key_delete_keeps_a_secret_hash_taken_over_by_another_key(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        await s.key_put("k1", "h", b"rec1")
        await s.key_put("k2", "h", b"rec2")  # the newest owner of a hash wins
        assert await s.key_by_hash("h") == b"rec2"
        assert await s.key_delete("k1")
        assert await s.key_by_hash("h") == b"rec2"

    stores.run(scenario)


def test_store_responses_put_get_replace_delete(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        await s.response_put("resp_a", "vk:a", b'{"r":1}', ttl_s=60)
        await s.response_put("resp_b", "9f" * 32, b"", ttl_s=60)  # an empty record is a record
        assert await s.response_get("resp_a") == ("vk:a", b'{"r":1}')
        assert await s.response_get("resp_b") == ("9f" * 32, b"")
        await s.response_put("resp_a", "vk:a", b'{"r":2}', ttl_s=60)
        assert await s.response_get("resp_a") == ("vk:a", b'{"r":2}')
        assert await s.response_delete("resp_a")
        assert not await s.response_delete("resp_a")
        assert await s.response_get("resp_a") is None
        assert await s.response_get("resp_none") is None
        assert await s.response_get("resp_b") == ("9f" * 32, b"")

    stores.run(scenario)


def test_store_responses_keep_any_owner_and_bytes_exactly(stores: Stores) -> None:
    record = bytes(range(256)) * 4 + b"12:tricky:colons"

    async def scenario(s: Store) -> None:
        for owner in ("anonymous", "vk:odd:name:42", "ünï:{x}", ""):
            await s.response_put("resp_x", owner, record, ttl_s=60)
            assert await s.response_get("resp_x") == (owner, record)

    stores.run(scenario)


def test_store_responses_expire(stores: Stores) -> None:
    async def scenario(s: Store) -> None:
        await s.response_put("resp_short", "vk:a", b"r", ttl_s=0.05)
        await s.response_put("resp_long", "vk:a", b"r", ttl_s=60)
        await asyncio.sleep(0.15)
        assert await s.response_get("resp_short") is None
        assert not await s.response_delete("resp_short")
        assert await s.response_get("resp_long") == ("vk:a", b"r")

    stores.run(scenario)
