"""Request parameters as text from a peer: parsed and range-checked in one place.

Used by the REST API (``relay.http``), API v4 (``relay.v4``) and the server-answered
v2 commands, so a number or a time is read the same way everywhere. Every refusal
is a ``ParamError`` carrying a one-line text for the client (400 over HTTP, a
``c<cmd>,1,<text>`` answer in v2); nothing here raises anything else on any input.

Numbers are ASCII digits only: ``str.isdigit`` also accepts ``²`` and other digits
``int`` refuses, and ``int`` of thousands of digits is slow or refused outright.
Times are parsed by ``protocol.values`` (the one parser of times, shared with the
v2 commands 31/32): checked against the calendar and clamped to what the store and
the formatters can represent (1970 to the end of 9999), so no later ``datetime``
or SQLite call overflows. Here its refusals become ``ParamError`` texts.
"""

from __future__ import annotations

import re

from protocol import values

# 9999-12-31 23:59:59 UTC: the last second ``datetime`` and strftime can show.
MAX_TIME = values.MAX_SINCE
# Unix seconds in a ``since``: more digits than any time up to MAX_TIME.
MAX_SECONDS_DIGITS = values.EXACT_SINCE_DIGITS

_DIGITS = re.compile(r"[0-9]+")

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


def _calendar(name: str) -> ParamError:
    return ParamError(f"parameter {name}: not a valid calendar date and time")


def since(text: str, name: str = "since") -> int | None:
    """Unix seconds, or UTC ``YYYY-MM-DD[ HH:MM:SS]``; None for an empty value.

    The documented REST form exactly (``values.parse_since(exact=True)``): times
    before 1970 mean "everything" (0); those past 9999 are refused by the form.
    """
    try:
        return values.parse_since(text, exact=True)
    except values.TimeError as error:
        if error.problem == "calendar":
            raise _calendar(name) from None
        raise ParamError(f"parameter {name} must be unix seconds or a UTC time "
                         "'YYYY-MM-DD HH:MM:SS' (or 'YYYY-MM-DD')") from None


def rfc3339_seconds(text: str, name: str) -> float:
    """RFC 3339 date-time (``Z`` or a numeric offset) to unix seconds, clamped to 1970-9999."""
    try:
        return values.parse_rfc3339(text)
    except values.TimeError as error:
        if error.problem == "calendar":
            raise _calendar(name) from None
        raise ParamError(f"{name}: {error}") from None
