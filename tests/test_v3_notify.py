"""notify/... topics as P messages and historical records (protocol/ovms_v3/notify.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.messages import Message
from protocol.ovms_v3.notify import DataRecord, Refused, data_record, push_message
from protocol.ovms_v3.topics import Kind, V3Topic, parse_topic

NOW = 1_700_000_000


def topic(path: str) -> V3Topic:
    parsed = parse_topic("ovms", "ovms/alice/DEMO/" + path)
    assert parsed is not None
    return parsed


def test_alert_and_info() -> None:
    msg = push_message(topic("notify/alert/charge/stopped"), b"Charge stopped, 80%\nSOC ok")
    assert msg == Message("P", "ACharge stopped; 80% | SOC ok")
    assert push_message(topic("notify/info/x"), b"hello") == Message("P", "Ihello")


def test_error_keeps_its_fields() -> None:
    msg = push_message(topic("notify/error/code"), b"TR,12,3")
    assert msg == Message("P", "ETR,12,3")


def test_refusals() -> None:
    assert isinstance(push_message(topic("notify/info/x"), b"\xff"), Refused)
    assert isinstance(push_message(topic("notify/info/x"), b"a" * 5000), Refused)
    assert isinstance(push_message(topic("metric/v/b/soc"), b"1"), Refused)
    assert isinstance(push_message(topic("notify/info/x"), b"a\x00b"), Refused)


def test_data_record() -> None:
    t = topic("notify/data/log/trip/42/-30")
    rec = data_record(t, b"*-LOG-Trip,0,86400,12.5,81,67\nignored second line")
    assert rec == DataRecord(42, 30, "*-LOG-Trip", 0, 86400, "12.5,81,67")
    assert isinstance(rec, DataRecord)
    assert rec.to_message() == Message("h", "42,-30,*-LOG-Trip,0,86400,12.5,81,67")
    stored = rec.record(NOW)
    assert (stored.htype, stored.timestamp, stored.expires) == (
        "*-LOG-Trip", NOW - 30, NOW - 30 + 86400)
    assert stored.data == "12.5,81,67"


def test_data_record_refusals() -> None:
    t = topic("notify/data/log/trip/42/-30")
    for payload in (b"*-LOG-Trip,0,86400", b"*-LOG-Trip,x,86400,d", b"*-LOG-Trip,0,-1,d",
                    b",0,1,d", b"\xff", b"a\tb,0,1,d", b"T,0,1,a\rb", b"T,0,1,a\x1bb",
                    b"T,0,999999999999,d"):
        assert isinstance(data_record(t, payload), Refused), payload
    assert isinstance(data_record(topic("notify/info/x"), b"T,0,1,d"), Refused)


def test_ancient_record_is_refused_when_stored() -> None:
    t = V3Topic("a", "V", Kind.DATA, "x", "data", number=1, age=NOW)
    rec = data_record(t, b"T,0,1,d")
    assert isinstance(rec, DataRecord)
    try:
        rec.record(NOW)
    except ValueError:
        return
    raise AssertionError("a record dated 1970 was accepted")


@given(st.binary(max_size=300))
def test_never_raises(payload: bytes) -> None:
    for path in ("notify/alert/x", "notify/error/x", "notify/data/x/1/-5"):
        out = (data_record if "data" in path else push_message)(topic(path), payload)
        if isinstance(out, Message):
            assert out.problem() is None
        elif isinstance(out, DataRecord):
            assert out.to_message().problem() is None
