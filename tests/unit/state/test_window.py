"""Window texts and period math: rolling periods from an anchor, calendar periods on
UTC boundaries (weeks from Monday, calendar months)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.state import Limits, Window, parse_window, period

T0 = 1_700_000_010.0  # 2023-11-14 22:13:30 UTC, a Tuesday
DAY = 86400.0


def at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize("text", ["30s", "1m", "5m", "1h", "1d", "1w", "1M", "12h", "90d"])
def test_window_parse_accepts_a_count_and_a_unit(text: str) -> None:
    assert parse_window(text) == Window(text)
    assert parse_window(text, calendar=True) == Window(text, calendar=True)


@pytest.mark.parametrize("text", ["", "m", "1", "0m", "01m", "-1m", "1.5h", "1x", "1 h", "1H", "\u0661m", "2000000s"])
def test_window_parse_refuses_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


def test_window_decoded_from_config_is_checked() -> None:
    raw = b'{"principal":"vk:a","anchor":0,"limits":[{"kind":"requests","amount":5,"window":{"text":"1q"}}]}'
    with pytest.raises(msgspec.ValidationError, match="window '1q'"):
        msgspec.json.decode(raw, type=Limits)


def test_window_rolling_periods_start_at_the_anchor() -> None:
    anchor = T0 - 25  # 25 s into the first minute
    assert period(parse_window("1m"), now=T0, anchor=anchor) == (0, anchor + 60)
    assert period(parse_window("1m"), now=anchor + 60, anchor=anchor) == (1, anchor + 120)
    assert period(parse_window("1h"), now=anchor + 7200.5, anchor=anchor) == (2, anchor + 3 * 3600)


def test_window_rolling_week_ignores_mondays() -> None:
    anchor = at(2024, 1, 3, 15)  # a Wednesday afternoon
    assert period(parse_window("1w"), now=anchor + 8 * DAY, anchor=anchor) == (1, anchor + 14 * DAY)


def test_window_rolling_month_is_30_days() -> None:
    anchor = at(2024, 1, 31)
    assert period(parse_window("1M"), now=anchor + 29 * DAY, anchor=anchor) == (0, anchor + 30 * DAY)
    assert period(parse_window("1M"), now=anchor + 31 * DAY, anchor=anchor) == (1, anchor + 60 * DAY)


def test_window_calendar_minute_hour_day_follow_utc_clock() -> None:
    m = parse_window("1m", calendar=True)
    h = parse_window("1h", calendar=True)
    d = parse_window("1d", calendar=True)
    assert period(m, now=T0, anchor=123.0) == (28_333_333, at(2023, 11, 14, 22, 14))
    assert period(h, now=T0, anchor=123.0) == (472_222, at(2023, 11, 14, 23))
    assert period(d, now=T0, anchor=123.0) == (19_675, at(2023, 11, 15))
    assert period(d, now=at(2023, 11, 15), anchor=0.0) == (19_676, at(2023, 11, 16))


def test_window_calendar_seconds_and_minutes_align_to_epoch_multiples() -> None:
    s30 = parse_window("30s", calendar=True)
    m5 = parse_window("5m", calendar=True)
    assert period(s30, now=T0, anchor=7.0) == (56_666_667, T0 + 30)  # T0 is a multiple of 30 s
    assert period(s30, now=T0 - 0.001, anchor=7.0) == (56_666_666, T0)
    assert period(m5, now=T0, anchor=7.0) == (5_666_666, at(2023, 11, 14, 22, 15))


def test_window_calendar_week_starts_monday() -> None:
    w = parse_window("1w", calendar=True)
    monday = at(2023, 11, 13)
    pid, end = period(w, now=T0, anchor=0.0)
    assert end == monday + 7 * DAY
    assert datetime.fromtimestamp(end, UTC).weekday() == 0
    assert period(w, now=monday, anchor=0.0) == (pid, end)  # Monday 00:00 opens the week
    assert period(w, now=monday - 1, anchor=0.0) == (pid - 1, monday)  # Sunday 23:59:59 closes the last
    assert period(w, now=end, anchor=0.0) == (pid + 1, end + 7 * DAY)


def test_window_calendar_month_runs_to_the_first_of_the_next() -> None:
    mo = parse_window("1M", calendar=True)
    assert period(mo, now=at(2024, 2, 10, 8), anchor=0.0) == (2024 * 12 + 1, at(2024, 3, 1))  # leap February
    assert period(mo, now=at(2024, 12, 15, 12), anchor=0.0) == (2024 * 12 + 11, at(2025, 1, 1))
    assert period(mo, now=at(2024, 12, 31, 23, 59, 59), anchor=0.0) == (2024 * 12 + 11, at(2025, 1, 1))
    assert period(mo, now=at(2025, 1, 1), anchor=0.0) == (2025 * 12, at(2025, 2, 1))


def test_window_calendar_quarter_is_three_months() -> None:
    q = parse_window("3M", calendar=True)
    assert period(q, now=at(2024, 11, 5), anchor=0.0)[1] == at(2025, 1, 1)
    assert period(q, now=at(2025, 2, 5), anchor=0.0)[1] == at(2025, 4, 1)


NOW = st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False)
LENGTH_S = {"30s": 30, "1m": 60, "5m": 300, "1h": 3600, "6h": 21600, "1d": 86400, "1w": 604800, "2w": 1209600}
TEXT = st.sampled_from(sorted(LENGTH_S))


@given(now=NOW, anchor=NOW, text=TEXT, calendar=st.booleans())
def test_window_period_holds_now_and_the_next_starts_at_its_end(
    now: float, anchor: float, text: str, calendar: bool
) -> None:
    w = parse_window(text, calendar=calendar)
    pid, end = period(w, now=now, anchor=anchor)
    assert end - LENGTH_S[text] - 1e-6 <= now < end  # 1e-6: float rounding of anchor + id * length
    next_pid, next_end = period(w, now=end, anchor=anchor)
    assert next_pid == pid + 1
    assert next_end == pytest.approx(end + LENGTH_S[text])


@given(now=NOW)
def test_window_calendar_month_end_is_a_first_of_month(now: float) -> None:
    pid, end = period(parse_window("1M", calendar=True), now=now, anchor=0.0)
    first = datetime.fromtimestamp(end, UTC)
    assert (first.day, first.hour, first.minute, first.second) == (1, 0, 0, 0)
    assert now < end <= now + 31 * DAY
    assert pid == first.year * 12 + first.month - 2
