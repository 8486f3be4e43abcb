"""Issue 9 defect 10 (v2 part): unchecked numbers in server commands 30/31/32.

``C31,99999999999999999999`` reached SQLite as an integer it cannot hold
(OverflowError) and the app was disconnected. Every parameter is now
range-checked; a bad one is answered ``c<cmd>,1,<reason>``, never a disconnect.
"""

from __future__ import annotations

import pytest

from protocol import values
from tests.conftest import RelayUnderTest
from tests.settle import pinged

BAD_SINCE = [
    "99999999999999999999",
    "9" * 5000,
    "253402300800",  # one second past 9999-12-31 23:59:59
    "-5",
    "²",
    "abc",
    "2026-13-01",
    "2026-01-01T00:00:00",
    "0001-01-01 00:00:00+23:59",
]


@pytest.mark.parametrize("since", BAD_SINCE)
async def test_bad_since_is_answered_not_fatal(relay: RelayUnderTest, since: str) -> None:
    """Issue 9 defect 10: ``c31,1,<reason>`` / ``c32,1,<reason>``; the app stays."""
    app = await relay.app()
    await pinged(app)
    await app.send("C", f"31,{since}")
    answer = (await app.receive_until("c")).pop().text()
    assert answer.startswith("c31,1,since ")
    await app.send("C", f"32,*-LOG-Trip,{since}")
    answer = (await app.receive_until("c")).pop().text()
    assert answer.startswith("c32,1,since ")
    assert "\r" not in answer and len(answer) < 200
    await app.send("A")
    assert (await app.receive()).text() == "a"


async def test_good_since_forms_still_filter(relay: RelayUnderTest) -> None:
    car = await relay.car()
    await pinged(car)
    await car.send("h", "1,0,T,1,86400,x")
    await car.receive_until("h")
    app = await relay.app()
    await pinged(app)
    for since in ("0", "2000-01-01", "2000-01-01 00:00:00", "0000-00-00", "1900-01-01", ""):
        await app.send("C", f"32,T,{since}")
        assert (await app.receive_until("c")).pop().text().startswith("c32,0,1,1,T,")
    for since in ("253402300799", "2999-01-01"):
        await app.send("C", f"32,T,{since}")
        assert (await app.receive_until("c")).pop().text() == "c32,1,No historical data available"


def test_parse_since_ranges() -> None:
    assert values.parse_since("") is None
    assert values.parse_since("0000-00-00") is None  # the public server's default
    assert values.parse_since("0") == 0
    assert values.parse_since("253402300799") == values.MAX_SINCE
    assert values.parse_since("1970-01-02") == 86400
    assert values.parse_since("1900-01-01 00:00:00") == 0
    assert values.parse_since(" 2000-01-01 00:00:00 ") == values.MIN_TIMESTAMP
    for bad in BAD_SINCE:
        with pytest.raises(ValueError, match="since"):
            values.parse_since(bad)
