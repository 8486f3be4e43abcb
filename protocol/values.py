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

import datetime as dt
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

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT: Final = "%Y-%m-%d"
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


def parse_since(text: str) -> int | None:
    """A ``since`` filter: ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD`` (UTC) or unix seconds.

    Empty or the zero date (the public server's default): None, no filter. Dates
    before 1970 are 0 (everything). Raises ValueError for anything else or a number
    beyond year 9999.
    """
    text = text.strip()
    if not text or text in _ZERO_DATES:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 12:  # more digits than MAX_SINCE: no need to convert them
            raise ValueError(f"since {_shown(text)} is out of range (0..{MAX_SINCE})")
        return parse_int(text, 0, MAX_SINCE, "since")
    for fmt in (TIME_FORMAT, DATE_FORMAT):
        try:
            parsed = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return max(0, int(parsed.timestamp()))
    raise ValueError(f"since {_shown(text)} is not 'YYYY-MM-DD HH:MM:SS', a date or unix seconds")


__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_LIFETIME",
    "MAX_SINCE",
    "MAX_TIMESTAMP",
    "MAX_UPDATE_AGE",
    "MIN_TIMESTAMP",
    "check_timestamp",
    "clamp_timestamp",
    "parse_int",
    "parse_lifetime",
    "parse_recordnumber",
    "parse_since",
    "update_age",
]
