"""Issue 9 defect 9: a car could poison the vehicle's history.

``h`` with a timediff of 1e12 was stored (year ~33,700) and acked; afterwards
``C32`` dropped the app with an internal error and ``C31`` failed for the whole
vehicle. Now out-of-range numbers are refused at decode (logged, not stored,
not acked); the ranges live in ``protocol.values``.
"""

from __future__ import annotations

import logging
import time

import pytest

from protocol import HistoricalRecord, Message, values
from tests.conftest import RelayUnderTest
from tests.raw_v2 import RawScheme0
from tests.settle import pinged

NOW = 1_780_000_000  # 2026-05-28


@pytest.mark.parametrize(
    "data",
    [
        "1,1000000000000,T,1,86400,poison",  # the attack: year ~33,700
        "1,-1000000000000,T,1,86400,x",
        "1,-2000000000,T,1,86400,x",  # 1963: before 2000
        "1,3000000000,T,1,86400,x",  # 2121: after 2099
        "1,0,T,9223372036854775808,86400,x",  # record number beyond int64
        "1,0,T,-9223372036854775809,86400,x",
        "1,0,T,1,-1,x",  # negative lifetime
        "1,0,T,1,99999999999999,x",  # lifetime beyond 100 years
        "1,0,T," + "9" * 5000 + ",86400,x",
        "1,٣,T,1,86400,x",  # Unicode digits int() would take
        "1,0,T, 1,86400,x",
        "1,0,T,1_0,86400,x",
        "1,+0,T,1,86400,x",
        "1,0,T,1,86400",  # a field short
        "",
    ],
)
def test_out_of_range_h_records_are_refused(data: str) -> None:
    """Issue 9 defect 9: every number range-checked at decode (ValueError, a reason)."""
    with pytest.raises(ValueError, match=r".") as info:
        HistoricalRecord.from_message(Message("h", data), NOW)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data",
    ["T,9223372036854775808,60,x", "T,1,-5,x", "T,1,1e3,x", "T,x,60,x", "T,1,60"],
)
def test_out_of_range_H_records_are_refused(data: str) -> None:
    with pytest.raises(ValueError):
        HistoricalRecord.from_message(Message("H", data), NOW)


def test_sane_records_pass_with_their_times() -> None:
    rec = HistoricalRecord.from_message(Message("h", "7,-3600,*-LOG-Trip,12,86400,a,b"), NOW)
    assert rec == HistoricalRecord("*-LOG-Trip", 12, NOW - 3600, NOW - 3600 + 86400, "a,b", "7")
    rec = HistoricalRecord.from_message(Message("H", "T,-9223372036854775808,0,"), NOW)
    assert (rec.recordnumber, rec.timestamp, rec.expires, rec.ackcode) == (-(2**63), NOW, NOW, None)
    assert values.MIN_TIMESTAMP == 946_684_800  # 2000-01-01 UTC
    assert values.MAX_TIMESTAMP == 4_102_444_800  # 2100-01-01 UTC


async def test_poisoned_h_is_not_acked_and_history_keeps_working(
    relay: RelayUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 9, end to end: not acked, not stored, logged; C31/C32 still answer."""
    car = await RawScheme0.login(relay.handle.v2_port, "DEMO", "DEMO")
    await pinged(car)
    with caplog.at_level(logging.INFO, logger="relay.router"):
        await car.send_text("h1,1000000000000,*-LOG-Trip,1,86400,poison")
        await car.send_text("H*-LOG-Trip,99999999999999999999,60,poison")
        await car.send_text("h2,-60,*-LOG-Trip,2,86400,fine")
        assert await car.drain() == ["h2"]
    assert "h record 1 ignored, not acked: timediff" in caplog.text
    assert "H record ignored: record number" in caplog.text
    app = await relay.app()
    await pinged(app)
    await app.send("C", "32,*-LOG-Trip")
    assert [m.text().split(",", 6)[6] for m in await app.receive_until("c")] == ["2,fine"]
    await app.send("C", "31")
    summary = (await app.receive_until("c"))[-1].text()
    assert summary.startswith("c31,0,1,1,*-LOG-Trip,1,1,4,")


async def test_records_stored_before_the_check_do_not_break_the_lists(
    relay: RelayUnderTest,
) -> None:
    """Issue 9 defect 9: a database poisoned by an older version (a timestamp past year
    9999) still answers C31 and C32, with the time shown clamped to 2099."""
    now = int(time.time())
    store = relay.handle.store
    await store.add_historical("DEMO", "T", 1, "poison", timestamp=now + 10**12,
                               expires=now + 10**12 + 86400, durable=True)
    app = await relay.app()
    await pinged(app)
    await app.send("C", "32,T")
    answer = [m.text() for m in await app.receive_until("c")]
    assert answer == ["c32,0,1,1,T,2099-12-31 23:59:59,1,poison"]
    await app.send("C", "31")
    summary = (await app.receive_until("c"))[-1].text()
    assert summary.startswith("c31,0,1,1,T,1,1,6,2099-12-31 23:59:59,2099-12-31 23:59:59")
    await app.send("A")
    assert (await app.receive()).text() == "a"
