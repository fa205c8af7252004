"""Dates and instants as the expression back-ends see them: integers, parsed once, calendar math in UTC.

An instant (datetime) is an int of milliseconds since 1970-01-01T00:00:00Z; a date is an int of days
since 1970-01-01. Both back-ends use these representations (the SQL compiler computes the same
integers in SQL), so comparing, shifting and truncating are integer operations and agree exactly.

The text forms accepted are exactly those of the contract in `ir` (see "Values and types"): anything
else is not a date / datetime and reads as null.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

DAY_MS = 86_400_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MIN_DAY = date(1, 1, 1).toordinal() - EPOCH_ORDINAL  # 0001-01-01
MAX_DAY = date(9999, 12, 31).toordinal() - EPOCH_ORDINAL  # 9999-12-31
MIN_MS = MIN_DAY * DAY_MS
MAX_MS = (MAX_DAY + 1) * DAY_MS - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

FIXED_UNIT_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": DAY_MS, "week": 7 * DAY_MS}

# ASCII digits only (Python's \d would take any Unicode digit).
_DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                       r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


@lru_cache(maxsize=1 << 16)
def parse_instant(text: str) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 datetime text, or None when it is not one.

    `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1-9 digits (truncated to milliseconds), then `Z`,
    `+HH:MM`, `-HH:MM` or nothing (UTC). Calendar-valid fields only; the instant must fall in the
    years 0001-9999 UTC. Cached: a profile's timestamps are read many times."""
    m = _DATETIME.fullmatch(text)  # the grammar; fromisoformat alone would take much more
    if m is None or text[11:13] > "23" or (m[8] and m[8] != "Z" and (m[8][1:3] > "23" or m[8][4:6] > "59")):
        return None
    try:
        value = datetime.fromisoformat(text)  # the calendar (and the conversion, in C)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ms = (value - _EPOCH) // _ONE_MS  # fromisoformat keeps 6 fraction digits; // truncates to the ms
    return ms if MIN_MS <= ms <= MAX_MS else None


@lru_cache(maxsize=1 << 14)
def parse_date(text: str) -> int | None:
    """Days since the epoch of a `YYYY-MM-DD` text, or None when it is not a valid date."""
    if _DATE.fullmatch(text) is None:
        return None
    try:
        return date.fromisoformat(text).toordinal() - EPOCH_ORDINAL
    except ValueError:
        return None


def instant_of(value: datetime) -> int:
    """Milliseconds since the epoch of a datetime (naive means UTC), truncated to the millisecond."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_MS


def days_of(value: date) -> int:
    return value.toordinal() - EPOCH_ORDINAL


def to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def to_date(days: int) -> date:
    return date.fromordinal(days + EPOCH_ORDINAL)


def day_of(ms: int) -> int:
    """The UTC date (days since the epoch) of an instant."""
    return ms // DAY_MS


def shift(ms: int, amount: int, unit: str) -> int | None:
    """`ms` moved by whole units; month and year clamp the day to the target month's last day.
    None when the result leaves the years 0001-9999."""
    step = FIXED_UNIT_MS.get(unit)
    if step is not None:
        out = ms + amount * step
        return out if MIN_MS <= out <= MAX_MS else None
    days, tod = divmod(ms, DAY_MS)
    d = date.fromordinal(days + EPOCH_ORDINAL)
    total = d.year * 12 + d.month - 1 + (amount * 12 if unit == "year" else amount)
    y, m0 = divmod(total, 12)
    if not 1 <= y <= 9999:
        return None
    day = min(d.day, days_in_month(y, m0 + 1))
    return (date(y, m0 + 1, day).toordinal() - EPOCH_ORDINAL) * DAY_MS + tod


def trunc(ms: int, unit: str) -> int:
    """The start (UTC) of the day, week (Monday), month or year holding `ms`."""
    days = ms // DAY_MS
    if unit == "day":
        return days * DAY_MS
    if unit == "week":
        return (days - (days + 3) % 7) * DAY_MS  # 1970-01-01 was a Thursday
    d = date.fromordinal(days + EPOCH_ORDINAL)
    first = date(d.year, d.month if unit == "month" else 1, 1)
    return (first.toordinal() - EPOCH_ORDINAL) * DAY_MS


def part_of_day(days: int, fn: str) -> int:
    """year / month / dayOfMonth / dayOfWeek (1 = Monday) of a date."""
    if fn == "dayOfWeek":
        return (days + 3) % 7 + 1
    d = date.fromordinal(days + EPOCH_ORDINAL)
    return d.year if fn == "year" else d.month if fn == "month" else d.day
