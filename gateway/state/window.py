"""Windows ("1m", "1h", "1d", "1w", "1M", also "30s") and the period a moment falls in.

Rolling windows are fixed-length periods anchored at a key's creation time; calendar
windows follow UTC clock boundaries (weeks start on Monday, months are calendar months).
"""

from __future__ import annotations

import calendar as _calendar
import math
import time

import msgspec

UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400}  # "M" rolling: 30 days
# The Unix epoch was a Thursday; the first Monday 00:00 UTC after it starts calendar weeks.
FIRST_MONDAY_S = 4 * 86400.0
MAX_COUNT = 1_000_000  # "1000000s" is already eleven days; larger counts are typos


class Window(msgspec.Struct, frozen=True):
    """A count and a unit ("5m"); ``calendar`` aligns periods to UTC boundaries."""

    text: str
    calendar: bool = False

    def __post_init__(self) -> None:
        _parse(self.text)


def parse_window(text: str, *, calendar: bool = False) -> Window:
    """A Window from its text; ValueError names what is wrong."""
    return Window(text, calendar)


def _parse(text: str) -> tuple[int, str]:
    unit = text[-1:]
    digits = text[:-1]
    if unit not in UNIT_S or not digits.isdigit() or not digits.isascii() or digits[0] == "0":
        raise ValueError(f"window {text!r}: expected a count and a unit (s, m, h, d, w, M), like '1h' or '30s'")
    count = int(digits)
    if count > MAX_COUNT:
        raise ValueError(f"window {text!r}: the count is over {MAX_COUNT}")
    return count, unit


def period(window: Window, *, now: float, anchor: float) -> tuple[int, float]:
    """(period id, period end in epoch seconds) of the period that holds ``now``.

    Rolling: periods of the window's length from ``anchor``. Calendar (UTC): seconds,
    minutes, hours and days aligned to multiples of their length since the epoch, weeks
    from Monday 00:00, months from the 1st (id = year * 12 + month - 1 for "1M")."""
    count, unit = _parse(window.text)
    if window.calendar:
        if unit == "M":
            return _month_period(count, now)
        anchor = FIRST_MONDAY_S if unit == "w" else 0.0
    length = count * UNIT_S[unit]
    pid = math.floor((now - anchor) / length)
    end = anchor + (pid + 1) * length
    if end <= now:  # float rounding at an exact boundary
        pid += 1
        end += length
    return pid, end


def _month_period(count: int, now: float) -> tuple[int, float]:
    t = time.gmtime(now)
    months = t.tm_year * 12 + t.tm_mon - 1
    pid = months // count
    year, month0 = divmod((pid + 1) * count, 12)
    end = float(_calendar.timegm((year, month0 + 1, 1, 0, 0, 0)))
    return pid, end
