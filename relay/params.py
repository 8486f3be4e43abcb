"""Request parameters as text from a peer: parsed and range-checked in one place.

Used by the REST API (``relay.http``), API v4 (``relay.v4``) and the server-answered
v2 commands, so a number or a time is read the same way everywhere. Every refusal
is a ``ParamError`` carrying a one-line text for the client (400 over HTTP, a
``c<cmd>,1,<text>`` answer in v2); nothing here raises anything else on any input.

Numbers are ASCII digits only: ``str.isdigit`` also accepts ``²`` and other digits
``int`` refuses, and ``int`` of thousands of digits is slow or refused outright.
Times are checked against the calendar and clamped to what the store and the
formatters can represent (1970 to the end of 9999), so no later ``datetime`` or
SQLite call overflows.
"""

from __future__ import annotations

import re

# 9999-12-31 23:59:59 UTC: the last second ``datetime`` and strftime can show.
MAX_TIME = 253_402_300_799
# Unix seconds in a ``since``: more digits than any time up to MAX_TIME.
MAX_SECONDS_DIGITS = 11

_DIGITS = re.compile(r"[0-9]+")
_SINCE = re.compile(
    r"([0-9]{1,11})|([0-9]{4})-([0-9]{2})-([0-9]{2})(?: ([0-9]{2}):([0-9]{2}):([0-9]{2}))?")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")

# The same forms as JSON-schema patterns for the OpenAPI document. They describe a
# subset of what the parsers accept (29 February is left out of SINCE_PATTERN), so
# every documented value is accepted.
_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|" \
       r"(?:0[13578]|1[02])-31)"
SINCE_PATTERN = (r"^(?:[0-9]{1,11}|[0-9]{4}-" + _DAY +
                 r"(?: (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?)?$")


class ParamError(ValueError):
    """A parameter the server cannot use; ``str()`` is the text for the client."""


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """ASCII decimal digits (no sign, no spaces) from ``low`` to ``high``."""
    limit = len(str(high))
    if not (_DIGITS.fullmatch(text) and len(text.lstrip("0") or "0") <= limit
            and low <= int(text) <= high):
        raise ParamError(f"parameter {name} must be a whole number from {low} to {high}")
    return int(text)


def small_index(text: str, digits: int = 9) -> int | None:
    """A non-negative number of at most ``digits`` digits from a car's answer, else None."""
    if _DIGITS.fullmatch(text) and len(text) <= digits:
        return int(text)
    return None


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


def _seconds(name: str, y: str, mo: str, d: str, h: str = "0", mi: str = "0",
             s: str = "0", *, leap_second: bool = False) -> int:
    year, month, day = int(y), int(mo), int(d)
    hour, minute, second = int(h), int(mi), int(s)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and hour <= 23
            and minute <= 59 and second <= (60 if leap_second else 59)):
        raise ParamError(f"parameter {name}: not a valid calendar date and time")
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def _clamp(value: float) -> float:
    return min(max(value, 0), MAX_TIME)


def since(text: str, name: str = "since") -> int | None:
    """Unix seconds, or UTC ``YYYY-MM-DD[ HH:MM:SS]``; None for an empty value.

    Times before 1970 mean "everything" (0); those past 9999 are refused by the form.
    """
    if text == "":
        return None
    match = _SINCE.fullmatch(text)
    if match is None:
        raise ParamError(f"parameter {name} must be unix seconds or a UTC time "
                         "'YYYY-MM-DD HH:MM:SS' (or 'YYYY-MM-DD')")
    if match.group(1) is not None:
        return int(_clamp(int(match.group(1))))
    parts = [g for g in match.groups()[1:] if g is not None]
    return int(_clamp(_seconds(name, *parts)))


def rfc3339_seconds(text: str, name: str) -> float:
    """RFC 3339 date-time (``Z`` or a numeric offset) to unix seconds, clamped to 1970-9999."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ParamError(f"{name}: {text[:64]!r} is not an RFC 3339 time such as "
                         "2026-01-31T08:00:00Z")
    y, mo, d, h, mi, s, fraction, _z, sign, oh, om = match.groups()
    value = float(_seconds(name, y, mo, d, h, mi, s, leap_second=True))
    if fraction:
        value += float("0" + fraction)
    if sign is not None:
        if int(oh) > 23 or int(om) > 59:
            raise ParamError(f"{name}: offset {sign}{oh}:{om} is out of range")
        offset = int(oh) * 3600 + int(om) * 60
        value -= offset if sign == "+" else -offset
    return _clamp(value)
