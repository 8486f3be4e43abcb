"""The sane ranges of the numbers peers send, in one place, and their strict parsers.

Every number a peer sends is text: ``int()`` alone accepts ``" 5"``, ``"+5"``,
``"5_000"``, Unicode digits and 4,000-digit strings, and the value it returns
can still overflow SQLite's int64 or ``datetime``'s year 9999 later, far from
the line that brought it. Parsers here accept plain ASCII decimal text only and
check the range at once; each raises ValueError with a short reason for a log
line or a ``c<cmd>,1,<reason>`` answer. They never raise protocol errors: only
a session decides that a connection is broken.
"""

from __future__ import annotations

import re
from typing import Final

# Historical record timestamps (``H``: arrival time; ``h``: arrival + timediff)
# must fall in [2000-01-01, 2100-01-01) UTC. No OVMS module predates 2011, and a
# year outside this window is a broken clock or an attack (a timediff of 1e12
# once stored a record dated in the year 33,700, which no date formatter takes).
MIN_TIMESTAMP: Final = 946_684_800  # 2000-01-01 00:00:00 UTC
MAX_TIMESTAMP: Final = 4_102_444_800  # 2100-01-01 00:00:00 UTC (exclusive)
# A record's lifetime in seconds: 0 up to 100 years (modules use days to a year).
MAX_LIFETIME: Final = 100 * 365 * 86_400
# Record numbers are stored as SQLite INTEGER: signed 64 bit.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# ``since`` filters of commands 31/32 (and the REST equivalents): unix seconds from
# 0 up to the last second of year 9999, the latest a UTC text timestamp can name.
MAX_SINCE: Final = 253_402_300_799  # 9999-12-31 23:59:59 UTC

# ``T<seconds>`` (age of the car's last message) at an app's login never exceeds
# 838:59:59, the largest MySQL TIME: the public server computes it with TIMEDIFF,
# which stops there, and sends exactly that for a vehicle that never reported.
MAX_UPDATE_AGE: Final = 838 * 3600 + 59 * 60 + 59  # 3,020,399 s, about 35 days

# The protocol's timestamp text, UTC (formatted by ``relay.timefmt``).
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
# The public server's default ``since`` (MySQL's zero date): no filter.
_ZERO_DATES: Final = frozenset({"0000-00-00", "0000-00-00 00:00:00"})

# Optional minus, then at most 19 ASCII digits (int64 has 19): the length is
# bounded before int() sees the text.
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def _shown(text: str) -> str:
    """The peer's text for a reason line: short, with control characters escaped."""
    return repr(text[:24] + ("..." if len(text) > 24 else ""))


def parse_int(text: str, lo: int, hi: int, what: str) -> int:
    """``text`` as an integer in ``[lo, hi]``, else ValueError naming ``what``."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{what} {_shown(text)} is not a whole number")
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is out of range ({lo}..{hi})")
    return value


def parse_recordnumber(text: str) -> int:
    return parse_int(text, INT64_MIN, INT64_MAX, "record number")


def parse_lifetime(text: str) -> int:
    return parse_int(text, 0, MAX_LIFETIME, "lifetime")


def check_timestamp(value: int, what: str = "timestamp") -> int:
    """``value`` (unix seconds) if it lies in [2000, 2100), else ValueError."""
    if not MIN_TIMESTAMP <= value < MAX_TIMESTAMP:
        raise ValueError(f"{what} {value} is outside the years 2000..2099")
    return value


def clamp_timestamp(value: float) -> float:
    """``value`` moved into [2000, 2100): for showing records stored before the check."""
    return min(max(value, MIN_TIMESTAMP), MAX_TIMESTAMP - 1)


def update_age(now: float, last_update: float | None) -> int:
    """The ``T`` value: whole seconds since the car's last message, capped as the
    public server caps it (also its value for a car that never sent anything)."""
    if last_update is None:
        return MAX_UPDATE_AGE
    return min(MAX_UPDATE_AGE, max(0, int(now - last_update)))


# --- times ----------------------------------------------------------------------------
#
# Every time a peer sends is parsed here: the v2 ``since`` of commands 31/32, the
# REST ``since`` (``relay.params`` maps the errors to a 400) and API v4's RFC 3339
# times. Dates are checked against the proleptic Gregorian calendar by arithmetic,
# not ``datetime``, so no year makes a later call overflow.

# Unix seconds in a REST ``since``: at most this many digits (any such time is
# before MAX_SINCE); the v2 form takes up to 12 digits, range-checked.
EXACT_SINCE_DIGITS: Final = 11
_V2_SINCE_DIGITS: Final = 12

# The v2 forms, as the public server's MySQL (and Python's strptime, which this
# replaced) read them: one- or two-digit month, day and time fields, any run of
# white space between date and time.
_SINCE_V2 = re.compile(
    r"([0-9]{4})-(1[0-2]|0[1-9]|[1-9])-(3[01]|[12][0-9]|0[1-9]|[1-9]| [1-9])"
    r"(?:\s+(2[0-3]|[01][0-9]|[0-9]):([0-5][0-9]|[0-9]):([0-5][0-9]|[0-9]))?")
# The documented REST forms, exactly: YYYY-MM-DD[ HH:MM:SS].
_SINCE_EXACT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?: ([0-9]{2}):([0-9]{2}):([0-9]{2}))?")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")


class TimeError(ValueError):
    """A time that cannot be used. ``problem`` says why, for callers that word their
    own refusal: ``form`` (not a known form), ``calendar`` (no such date or time),
    ``range`` (a number out of range) or ``offset`` (a UTC offset out of range)."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, no datetime limits)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_seconds(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
                  second: int = 0, *, leap_second: bool = False) -> int:
    """Unix seconds of a UTC calendar date and time; TimeError ``calendar`` if there is no
    such date or time (``leap_second`` allows second 60, as RFC 3339 does)."""
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and 0 <= hour <= 23
            and 0 <= minute <= 59 and 0 <= second <= (60 if leap_second else 59)):
        raise TimeError("not a valid calendar date and time", "calendar")
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def clamp_time(value: float) -> float:
    """``value`` moved into [1970, end of 9999]: what the store and formatters can show."""
    return min(max(value, 0), MAX_SINCE)


def parse_since(text: str, *, exact: bool = False) -> int | None:
    """A ``since`` filter: ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD`` (UTC) or unix seconds.

    Empty: None, no filter. Dates before 1970 are 0 (everything). Raises TimeError
    (a ValueError) for anything else.

    The v2 form (commands 31/32, the default) is the public server's: surrounding
    white space is ignored, the zero date ``0000-00-00`` means no filter, month, day
    and time fields may have one digit, and unix seconds go up to MAX_SINCE.
    ``exact`` is the documented REST form: the text exactly, two-digit fields and at
    most EXACT_SINCE_DIGITS digits of unix seconds.
    """
    if not exact:
        text = text.strip()
        if text in _ZERO_DATES:
            return None
    if not text:
        return None
    form = (f"since {_shown(text)} is not 'YYYY-MM-DD HH:MM:SS', a date or unix seconds")
    if text.isascii() and text.isdigit():
        if exact and len(text) > EXACT_SINCE_DIGITS:
            raise TimeError(form, "form")
        if len(text) > _V2_SINCE_DIGITS:  # more digits than MAX_SINCE: no need to convert
            raise TimeError(f"since {_shown(text)} is out of range (0..{MAX_SINCE})", "range")
        try:
            return parse_int(text, 0, MAX_SINCE, "since")
        except ValueError as error:
            raise TimeError(str(error), "range") from None
    match = (_SINCE_EXACT if exact else _SINCE_V2).fullmatch(text)
    if match is None:
        raise TimeError(form, "form")
    y, mo, d, h, mi, sec = (int(g) for g in match.groups(default="0"))
    if not exact and y == 0:  # no year 0 in the v2 form: only the zero date above
        raise TimeError(form, "form")
    try:
        return int(clamp_time(civil_seconds(y, mo, d, h, mi, sec)))
    except TimeError:
        if exact:
            raise
        raise TimeError(form, "form") from None


def parse_rfc3339(text: str) -> float:
    """An RFC 3339 date-time (``Z`` or a numeric offset) as unix seconds, clamped to
    1970..9999; TimeError ``form``, ``calendar`` or ``offset`` otherwise."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise TimeError(f"{text[:64]!r} is not an RFC 3339 time such as 2026-01-31T08:00:00Z",
                        "form")
    y, mo, d, h, mi, sec, fraction, _z, sign, oh, om = match.groups()
    value = float(civil_seconds(int(y), int(mo), int(d), int(h), int(mi), int(sec),
                                leap_second=True))
    if fraction:
        value += float("0" + fraction)
    if sign is not None:
        if int(oh) > 23 or int(om) > 59:
            raise TimeError(f"offset {sign}{oh}:{om} is out of range", "offset")
        offset = int(oh) * 3600 + int(om) * 60
        value -= offset if sign == "+" else -offset
    return clamp_time(value)


__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_LIFETIME",
    "MAX_SINCE",
    "MAX_TIMESTAMP",
    "MAX_UPDATE_AGE",
    "MIN_TIMESTAMP",
    "TimeError",
    "check_timestamp",
    "civil_seconds",
    "clamp_time",
    "clamp_timestamp",
    "parse_int",
    "parse_lifetime",
    "parse_recordnumber",
    "parse_rfc3339",
    "parse_since",
    "update_age",
]
