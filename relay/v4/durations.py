"""ISO 8601 durations: the ``PnW`` / ``PnDTnHnMnS`` subset monitors use.

Years and months are refused: their length depends on the calendar, and a
time window or an offset from midnight must be an exact number of seconds.
A fraction is allowed on the last component only (``PT1.5H``, ``PT0.25S``),
as ISO 8601 says. Leading zeros are fine (``PT04H30M`` is 4 h 30 min).
"""

from __future__ import annotations

import datetime as dt
import math

from relay.v4.jsonparse import InvalidRequest

_DATE_UNITS = {"W": 7 * 86400, "D": 86400}
_TIME_UNITS = {"H": 3600, "M": 60, "S": 1}
_ORDER = "WDHMS"
_DIGITS = frozenset("0123456789")
# Far beyond any window or retry delay, small enough that timedelta never overflows.
MAX_SECONDS = 10 * 366 * 86400


def parse_duration(text: object, *, field: str = "duration") -> dt.timedelta:
    """``"PT04H30M"`` -> ``timedelta(hours=4, minutes=30)``; InvalidRequest naming ``field``."""

    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"{field}: bad ISO 8601 duration {_show(text)}: {why}")

    if not isinstance(text, str):
        raise InvalidRequest(f"{field}: expected an ISO 8601 duration string such as \"PT1H\"")
    if text.startswith("-"):
        raise bad("negative durations are not allowed")
    if not text.startswith("P"):
        raise bad('must start with "P", e.g. "PT4H30M"')
    body = text[1:]
    if not body:
        raise bad('"P" alone has no components')
    total = 0.0
    in_time = False
    last_unit = -1
    pos = 0
    fraction_seen = False
    components = 0
    while pos < len(body):
        char = body[pos]
        if char == "T":
            if in_time:
                raise bad('"T" appears twice')
            in_time = True
            pos += 1
            if pos == len(body):
                raise bad('"T" must be followed by hours, minutes or seconds')
            continue
        start = pos
        while pos < len(body) and (body[pos] in _DIGITS or body[pos] in ".,"):
            pos += 1
        number = body[start:pos]
        if not number:
            raise bad(f"expected a number at {_show(body[start:])}")
        if pos == len(body):
            raise bad(f"number {number} has no unit letter")
        unit = body[pos]
        pos += 1
        if unit in "YM" and not in_time:
            if unit == "Y":
                raise bad("years are not supported (their length varies); use days")
            raise bad('months are not supported (their length varies); use days, or "PT..M" '
                      "for minutes")
        table = _TIME_UNITS if in_time else _DATE_UNITS
        if unit not in table:
            where = "after T" if in_time else 'before T (hours, minutes, seconds go after "T")'
            raise bad(f"unit {unit!r} is not allowed {where}")
        order = _ORDER.index(unit)
        if order <= last_unit:
            raise bad(f"unit {unit!r} is repeated or out of order (order is W, D, T, H, M, S)")
        last_unit = order
        if fraction_seen:
            raise bad("only the last component may have a fraction")
        if number.count(".") + number.count(",") > 1 or number[0] in ".," or number[-1] in ".,":
            raise bad(f"bad number {number!r}")
        if "." in number or "," in number:
            fraction_seen = True
        if len(number) > 12:
            raise bad(f"number {number} is too long")
        total += float(number.replace(",", ".")) * table[unit]
        components += 1
    if components == 0:
        raise bad("no components")
    if not math.isfinite(total) or total > MAX_SECONDS:
        raise bad("too long (at most 10 years)")
    return dt.timedelta(seconds=total)


def format_duration(value: dt.timedelta | float) -> str:
    """Seconds (or a timedelta) as ``PnDTnHnMnS``, omitting zero parts; ``PT0S`` for zero."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format duration {seconds!r}")
    whole = int(seconds)
    frac = round(seconds - whole, 3)
    if frac >= 1:
        whole, frac = whole + 1, 0.0
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{days}D"
    time_part = ""
    if hours:
        time_part += f"{hours}H"
    if minutes:
        time_part += f"{minutes}M"
    if secs or frac:
        sec_text = f"{secs + frac:.3f}".rstrip("0").rstrip(".") if frac else str(secs)
        time_part += f"{sec_text}S"
    if time_part:
        out += "T" + time_part
    return out if out != "P" else "PT0S"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
