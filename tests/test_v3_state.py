"""One v3 vehicle's metric state (protocol/ovms_v3/state.py): apply, coalescing, online."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.messages import Status
from protocol.ovms_v3 import metrics
from protocol.ovms_v3.state import MAX_PAYLOAD, VehicleState


def test_a_burst_changes_codes_once() -> None:
    state = VehicleState()
    changed: set[str] = set()
    for metric, value in (("v.b.soc", b"80"), ("v.b.range.ideal", b"250"),
                          ("v.e.locked", b"yes"), ("v.c.charging", b"no")):
        applied = state.apply(metric, value)
        assert applied.rejected is None
        changed |= applied.codes
    assert changed == {"S", "D"}
    msgs = state.messages(changed)
    assert [m.code for m in msgs] == ["D", "S"]
    s = Status.from_message(msgs[1])
    assert (s.soc, s.idealrange) == ("80", "250")


def test_same_value_changes_nothing() -> None:
    state = VehicleState()
    assert state.apply("v.b.soc", b"80").codes == {"S"}
    assert state.apply("v.b.soc", b"80").codes == frozenset()
    assert state.apply("v.b.soc", b"81").codes == {"S"}


def test_unknown_metric_is_ignored_not_rejected() -> None:
    state = VehicleState()
    applied = state.apply("xrt.custom.thing", b"\xff" * 5000)
    assert applied.codes == frozenset() and applied.rejected is None
    assert state.codes() == frozenset()


def test_rejections() -> None:
    state = VehicleState()
    assert "UTF-8" in (state.apply("v.b.soc", b"\xff\xfe").rejected or "")
    assert "over" in (state.apply("v.b.soc", b"1" * (MAX_PAYLOAD + 1)).rejected or "")
    for bad in (b"1e308", b"nan", b"inf", b"12abc", b"\xd9\xa3", b"1_000", b"9" * 40):
        applied = state.apply("v.b.soc", bad)
        assert applied.rejected is not None and "not a number" in applied.rejected, bad
    assert state.apply("v.e.locked", b"maybe").rejected is not None
    assert state.apply("v.vin", b"ABC\n123").rejected is not None
    assert state.apply("v.t.pressure", b"1,2,x").rejected is not None
    assert state.value("v.b.soc") is None and state.codes() == frozenset()


def test_rejected_value_keeps_the_previous_one() -> None:
    state = VehicleState()
    state.apply("v.b.soc", b"80")
    assert state.apply("v.b.soc", b"eighty").rejected is not None
    assert state.value("v.b.soc") == "80"


def test_empty_payload_clears() -> None:
    state = VehicleState()
    state.apply("v.p.latitude", b"52.5")
    assert state.codes() == {"L"}
    assert state.apply("v.p.latitude", b"").codes == {"L"}
    assert state.codes() == frozenset() and state.messages({"L"}) == []
    assert state.apply("v.p.latitude", b"").codes == frozenset()


def test_online_flag() -> None:
    state = VehicleState()
    assert state.online is False
    applied = state.apply("s.v3.connected", b"yes")
    assert (applied.online, applied.codes, state.online) == (True, frozenset(), True)
    assert state.apply("s.v3.connected", b"yes").online is None
    assert state.apply("s.v3.connected", b"no").online is False  # the last will
    state.apply("s.v3.connected", b"yes")
    assert state.apply("s.v3.connected", b"").online is False  # retained will cleared
    assert state.apply("s.v3.connected", b"perhaps").rejected is not None


def test_messages_skips_unmapped_codes() -> None:
    state = VehicleState()
    state.apply("v.b.soc", b"80")
    assert [m.code for m in state.messages({"S", "Z", "T", "D"})] == ["S"]


def test_units_checked() -> None:
    try:
        VehicleState(units="X")
    except ValueError:
        return
    raise AssertionError("units X accepted")


metric_names = st.sampled_from([*sorted(metrics.KNOWN_METRICS), "s.v3.connected", "x.y"])


@given(st.lists(st.tuples(metric_names, st.binary(max_size=80)), max_size=30))
def test_apply_never_raises_and_messages_are_one_line(
        updates: list[tuple[str, bytes]]) -> None:
    state = VehicleState(units="M")
    for metric, payload in updates:
        state.apply(metric, payload)
    for msg in state.messages(metrics.CODES):
        assert msg.problem() is None


@given(st.lists(st.tuples(metric_names, st.text(max_size=40)), max_size=30))
def test_apply_text_never_raises(updates: list[tuple[str, str]]) -> None:
    state = VehicleState()
    for metric, text in updates:
        state.apply(metric, text.encode("utf-8", "surrogatepass"))
    for msg in state.messages(state.codes()):
        assert msg.problem() is None
        assert len(msg.data) < 4096
