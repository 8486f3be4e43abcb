"""relay.v4.durations: the ISO 8601 duration subset monitors use."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.v4.durations import format_duration, parse_duration
from relay.v4.jsonparse import InvalidRequest


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT04H30M", 4 * 3600 + 30 * 60),
        ("PT14H30M", 14 * 3600 + 30 * 60),
        ("PT0S", 0),
        ("PT90M", 5400),
        ("P1D", 86400),
        ("P2W", 14 * 86400),
        ("P1DT2H3M4S", 86400 + 7384),
        ("PT1.5H", 5400),
        ("PT0,5S", 0.5),
        ("PT0.25S", 0.25),
        ("P0D", 0),
    ],
)
def test_valid(text: str, seconds: float) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("T4H", 'must start with "P", e.g. "PT4H30M"'),
        ("4H", 'must start with "P", e.g. "PT4H30M"'),
        ("-PT4H", "negative durations are not allowed"),
        ("P", '"P" alone has no components'),
        ("PT", '"T" must be followed by hours, minutes or seconds'),
        ("P1DT", '"T" must be followed by hours, minutes or seconds'),
        ("PT4H30", "number 30 has no unit letter"),
        ("P1Y", "years are not supported (their length varies); use days"),
        ("P1M", 'months are not supported (their length varies); use days, or "PT..M" for '
                "minutes"),
        ("P4H", "unit 'H' is not allowed before T (hours, minutes, seconds go after \"T\")"),
        ("PT1D", "unit 'D' is not allowed after T"),
        ("PT30M4H", "unit 'H' is repeated or out of order (order is W, D, T, H, M, S)"),
        ("PT4H4H", "unit 'H' is repeated or out of order (order is W, D, T, H, M, S)"),
        ("PT1.5H30M", "only the last component may have a fraction"),
        ("PT1.2.3S", "bad number '1.2.3'"),
        ("PT.5S", "bad number '.5'"),
        ("PTxH", "expected a number at 'xH'"),
        ("PT1HT2M", '"T" appears twice'),
        ("P99999999999999D", "number 99999999999999 is too long"),
        ("P5000D", "too long (at most 10 years)"),
    ],
)
def test_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_duration(text, field="x.start")
    assert info.value.message == f"x.start: bad ISO 8601 duration {text!r}: {why}"


def test_not_a_string() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_duration(30, field="retryDelay")
    assert info.value.message == 'retryDelay: expected an ISO 8601 duration string such as "PT1H"'


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "PT0S"), (5400, "PT1H30M"), (86400 + 61, "P1DT1M1S"), (16200, "PT4H30M"),
     (0.5, "PT0.5S"), (3600, "PT1H")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert format_duration(dt.timedelta(seconds=seconds)) == text


def test_format_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=400 * 86400))
def test_format_parse_roundtrip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)).total_seconds() == seconds


@given(st.text(alphabet="PTWDHMS0123456789.,-Y ", max_size=20))
def test_only_invalid_request(text: str) -> None:
    try:
        value = parse_duration(text)
    except InvalidRequest:
        return
    assert value >= dt.timedelta(0)
