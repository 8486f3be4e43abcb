"""relay.v4.monitors: validation (exact 400 messages), evaluation, batching, retries,
callbacks and persistence."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.v4 import monitor_model as mm
from relay.v4 import monitor_parse as mp
from relay.v4 import monitors as m
from relay.v4.jsonparse import InvalidRequest

EXAMPLE_TEXT = """
{"label": "Leaving the zone with a low battery, or on Monday afternoons",
 "subscribeParam": {"refreshEvent": 600,
   "retryPolicy": {"policy": "Always", "maxRetryNumber": 3, "retryDelay": 120},
   "batchNotify": {"size": 10, "timeWindow": 300},
   "callback": {"target": "https://example.org/cb", "name": "HTTP_CB",
     "attributes": [{"type": "Query", "key": "vin", "value": "$vin"},
                    {"type": "Header", "key": "Authorization", "value": "Basic ..."}]}},
 "extendedEventParam": ["vehicle.alerts", "vehicle.status", "vehicle.position"],
 "triggerParam": {"triggers": [
     {"name": "leftZone", "zone": {"transition": "Out", "circle": {"radius": 20,
       "center": {"longitude": 2.3333, "latitude": 48.8667}}}},
     {"name": "onMonday", "time": {"times": [{"recurrence": "Weekly", "start": "PT14H30M",
       "occurence": {"day": ["Mon"]}, "duration": "PT04H30M"}], "time.zone": "Europe/Paris"}},
     {"name": "batteryLow", "data": {"data": "vehicle.energy.electric.level",
       "op": "lowerThan", "value": ["50"]}}],
   "bool.exp": "leftZone & (batteryLow | onMonday)"}}
"""
EXAMPLE: dict[str, Any] = json.loads(EXAMPLE_TEXT)
PARIS = ZoneInfo("Europe/Paris")


def allow_all(_url: str) -> bool:
    return True


def parse(body: dict[str, Any] | str, allowed: Callable[[str], bool] = allow_all) -> mm.Monitor:
    text = body if isinstance(body, str) else json.dumps(body)
    return mp.parse_monitor(text, url_allowed=allowed)


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def ts(year: int, month: int, day: int, hour: int, minute: int = 0, *,
       tz: dt.tzinfo = dt.UTC) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()


# A Tuesday afternoon in Paris: outside the Monday window.
TUESDAY = ts(2026, 3, 31, 15, tz=PARIS)
CENTRE = (48.8667, 2.3333)


def snapshot(lat: float, lon: float, soc: float, *, lock: str = "1") -> dict[str, str]:
    return {"S": f"{soc:g},K,0,0,stopped,standard", "L": f"{lat},{lon},90,35,{lock},1,50"}


# --- parsing the example --------------------------------------------------------------


def test_example_parses() -> None:
    mon = parse(EXAMPLE_TEXT)
    assert mon.label == "Leaving the zone with a low battery, or on Monday afternoons"
    assert mon.refresh_event == 600
    assert mon.retry == mm.RetryPolicy("Always", 3, 120)
    assert mon.batch == mm.BatchNotify(10, 300)
    assert mon.callback.target == "https://example.org/cb"
    assert mon.callback.attributes == (
        mm.CallbackAttribute("Query", "vin", "$vin"),
        mm.CallbackAttribute("Header", "Authorization", "Basic ..."),
    )
    assert mon.extended == ("vehicle.alerts", "vehicle.status", "vehicle.position")
    assert [t.name for t in mon.triggers] == ["leftZone", "onMonday", "batteryLow"]
    zone = mon.trigger("leftZone").condition
    assert zone == mm.ZoneTrigger("Out", mm.Circle(48.8667, 2.3333, 20.0))
    time = mon.trigger("onMonday").condition
    assert isinstance(time, mm.TimeTrigger)
    assert time.tz == "Europe/Paris"
    assert time.windows[0].start_s == 14.5 * 3600
    assert time.windows[0].duration_s == 4.5 * 3600
    assert time.windows[0].days == (0,)
    data = mon.trigger("batteryLow").condition
    assert data == mm.DataTrigger("vehicle.energy.electric.level", "lowerThan", ("50",), (50.0,))
    assert mon.expression_text == "leftZone & (batteryLow | onMonday)"


def test_bytes_body() -> None:
    assert parse(EXAMPLE_TEXT) == mp.parse_monitor(EXAMPLE_TEXT.encode(), url_allowed=allow_all)


def test_read_only_members_are_ignored() -> None:
    body = example()
    body.update({"id": "m1", "_links": {"self": {"href": "/x"}}, "createdAt": "x"})
    assert parse(body) == parse(EXAMPLE)


def test_single_trigger_needs_no_expression() -> None:
    body = example()
    body["triggerParam"] = {"triggers": [EXAMPLE["triggerParam"]["triggers"][2]]}
    mon = parse(body)
    assert mon.expression_text == "batteryLow"


def test_defaults() -> None:
    body = example()
    body["subscribeParam"] = {"callback": {"target": "https://example.org/cb"}}
    del body["extendedEventParam"]
    del body["label"]
    mon = parse(body)
    assert mon.refresh_event == 0
    assert mon.retry == mm.RetryPolicy("Always", 3, 60)
    assert mon.batch == mm.BatchNotify(1, 0)
    assert mon.extended == ()
    assert mon.label == ""


def test_time_zone_defaults_to_utc() -> None:
    body = example()
    del body["triggerParam"]["triggers"][1]["time"]["time.zone"]
    cond = parse(body).trigger("onMonday").condition
    assert isinstance(cond, mm.TimeTrigger)
    assert cond.tz == "UTC"


def test_numbers_accepted_as_values() -> None:
    body = example()
    body["triggerParam"]["triggers"][2]["data"]["value"] = [50]
    cond = parse(body).trigger("batteryLow").condition
    assert isinstance(cond, mm.DataTrigger)
    assert cond.values == (50.0,)


# --- invalid monitors: each with its exact message -------------------------------------


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """Set (or delete, for value ...) a member given as a dotted path with [i] indices."""
    body = example()
    node: Any = body
    steps: list[str | int] = []
    for part in path.split("/"):
        steps.append(int(part) if part.isdigit() else part)
    for step in steps[:-1]:
        node = node[step]
    if value is ...:
        del node[steps[-1]]
    else:
        node[steps[-1]] = value
    return body


T = "triggerParam/triggers"
INVALID: list[tuple[str, Any, str]] = [
    # bool.exp
    ("triggerParam/bool.exp", "leftZone & (batteryLow | onMonday",
     'triggerParam.bool.exp: unbalanced parenthesis: "(" at position 12 is never closed'),
    ("triggerParam/bool.exp", "leftZone & batteryLow) | onMonday",
     'triggerParam.bool.exp: unbalanced parenthesis: ")" at position 22 has no matching "("'),
    ("triggerParam/bool.exp", "leftZone & (lowBattery | onMonday)",
     "triggerParam.bool.exp: unknown trigger name 'lowBattery' at position 13 "
     "(triggers: batteryLow, leftZone, onMonday)"),
    ("triggerParam/bool.exp", "", "triggerParam.bool.exp: expression is empty"),
    ("triggerParam/bool.exp", "leftZone &",
     'triggerParam.bool.exp: trailing operator: "&" at position 10 has no right operand'),
    ("triggerParam/bool.exp", ...,
     "triggerParam.bool.exp: required when there is more than one trigger, e.g. "
     "'leftZone & onMonday'"),
    ("triggerParam/bool.exp", 3, 'triggerParam.bool.exp: must be a string such as "a & (b | !c)"'),
    # data paths and comparisons
    (f"{T}/2/data/data", "vehicle.energy.electric.levl",
     "triggerParam.triggers[2].data.data: unknown data path 'vehicle.energy.electric.levl'; "
     "did you mean 'vehicle.energy.electric.level'? (see the data path table in "
     "docs/api-v4.md)"),
    (f"{T}/2/data/data", "car.soc",
     "triggerParam.triggers[2].data.data: unknown data path 'car.soc' (see the data path "
     "table in docs/api-v4.md)"),
    (f"{T}/2/data/op", "lessThan",
     "triggerParam.triggers[2].data.op: unknown operator 'lessThan'; use lowerThan, "
     "greaterThan, equals, notEquals, between"),
    (f"{T}/2/data/value", ["50", "60"],
     'triggerParam.triggers[2].data.value: lowerThan takes 1 value, e.g. ["50"]; got 2'),
    (f"{T}/2/data/value", ["fifty"],
     "triggerParam.triggers[2].data.value[0]: 'fifty' is not a number "
     "(vehicle.energy.electric.level is numeric)"),
    (f"{T}/2/data/value", [None],
     "triggerParam.triggers[2].data.value[0]: expected a string, got null"),
    (f"{T}/2/data/value", [],
     "triggerParam.triggers[2].data.value: must not be empty"),
    (f"{T}/2/data/op", "between",
     'triggerParam.triggers[2].data.value: between takes 2 values, e.g. ["low", "high"]; got 1'),
    (f"{T}/2/data", {"data": "vehicle.doors.locked", "op": "lowerThan", "value": ["1"]},
     "triggerParam.triggers[2].data.op: lowerThan needs a numeric data path, and "
     "vehicle.doors.locked is a boolean"),
    (f"{T}/2/data", {"data": "vehicle.doors.locked", "op": "equals", "value": ["maybe"]},
     "triggerParam.triggers[2].data.value[0]: 'maybe' is not a boolean (true or false) "
     "(vehicle.doors.locked is boolean)"),
    (f"{T}/2/data", {"data": "vehicle.charging.status", "op": "greaterThan", "value": ["1"]},
     "triggerParam.triggers[2].data.op: greaterThan needs a numeric data path, and "
     "vehicle.charging.status is text"),
    (f"{T}/2/data", {"data": "vehicle.speed", "op": "between", "value": ["90", "50"]},
     "triggerParam.triggers[2].data.value: between needs the low value first, got 90 > 50"),
    # durations and time windows
    (f"{T}/1/time/times/0/duration", "4h30",
     "triggerParam.triggers[1].time.times[0].duration: bad ISO 8601 duration '4h30': must "
     'start with "P", e.g. "PT4H30M"'),
    (f"{T}/1/time/times/0/start", "PT14H30",
     "triggerParam.triggers[1].time.times[0].start: bad ISO 8601 duration 'PT14H30': number "
     "30 has no unit letter"),
    (f"{T}/1/time/times/0/start", "PT25H",
     "triggerParam.triggers[1].time.times[0].start: is an offset from midnight and must be "
     "less than one day (PT24H), got 'PT25H'"),
    (f"{T}/1/time/times/0/duration", "PT0S",
     "triggerParam.triggers[1].time.times[0].duration: must be more than zero and at most P7D "
     "for Weekly recurrence, got 'PT0S'"),
    (f"{T}/1/time/times/0/recurrence", "Monthly",
     'triggerParam.triggers[1].time.times[0].recurrence: must be "Daily" or "Weekly", got '
     "'Monthly'"),
    (f"{T}/1/time/times/0/occurence", ...,
     "triggerParam.triggers[1].time.times[0].occurence: required for Weekly recurrence, e.g. "
     '{"day": ["Mon"]}'),
    (f"{T}/1/time/times/0/occurence/day", ["Monday"],
     "triggerParam.triggers[1].time.times[0].occurence.day[0]: 'Monday' is not a day; use "
     "Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
    (f"{T}/1/time/times/0/occurence/day", ["Mon", "Mon"],
     "triggerParam.triggers[1].time.times[0].occurence.day[1]: Mon is repeated"),
    (f"{T}/1/time/time.zone", "Europe/Pariss",
     "triggerParam.triggers[1].time.time.zone: unknown IANA time zone 'Europe/Pariss' (e.g. "
     '"Europe/Paris", "UTC")'),
    (f"{T}/1/time/time.zone", "../../etc/passwd",
     "triggerParam.triggers[1].time.time.zone: unknown IANA time zone '../../etc/passwd' "
     '(e.g. "Europe/Paris", "UTC")'),
    (f"{T}/1/time/times", [],
     "triggerParam.triggers[1].time.times: must not be empty"),
    # zones
    (f"{T}/0/zone/transition", "Leave",
     "triggerParam.triggers[0].zone.transition: must be \"In\" or \"Out\", got 'Leave'"),
    (f"{T}/0/zone/circle/radius", 0,
     "triggerParam.triggers[0].zone.circle.radius: must be more than 0 and at most 20038 (km), "
     "got 0"),
    (f"{T}/0/zone/circle/radius", "20",
     "triggerParam.triggers[0].zone.circle.radius: expected a number, got a string"),
    (f"{T}/0/zone/circle/radius", True,
     "triggerParam.triggers[0].zone.circle.radius: expected a number, got a boolean"),
    (f"{T}/0/zone/circle/center/latitude", 91,
     "triggerParam.triggers[0].zone.circle.center.latitude: must be between -90 and 90"),
    (f"{T}/0/zone/circle/center/longitude", ...,
     "triggerParam.triggers[0].zone.circle.center.longitude: required"),
    # trigger objects
    (f"{T}/0", {"name": "leftZone", "zone": EXAMPLE["triggerParam"]["triggers"][0]["zone"],
                "data": EXAMPLE["triggerParam"]["triggers"][2]["data"]},
     "triggerParam.triggers[0]: trigger 'leftZone' has both zone and data; put each trigger "
     "in its own object in triggers"),
    (f"{T}/0", {"name": "leftZone"},
     "triggerParam.triggers[0]: trigger 'leftZone' needs one of zone, time or data"),
    (f"{T}/2/name", "leftZone",
     "triggerParam.triggers[2].name: trigger name 'leftZone' is used twice"),
    (f"{T}/2/name", "battery low",
     "triggerParam.triggers[2].name: 'battery low' must be letters, digits, _ . or - (so "
     "bool.exp can name it)"),
    (f"{T}/2/name", ..., "triggerParam.triggers[2].name: required"),
    (f"{T}/1/time/times/0/occurrence", {"day": ["Mon"]},
     "triggerParam.triggers[1].time.times[0].occurrence: unknown field (did you mean "
     "'occurence'?); known here: duration, occurence, recurrence, start"),
    ("triggerParam/triggers", [], "triggerParam.triggers: must not be empty"),
    ("triggerParam/triggers", {}, "triggerParam.triggers: expected an array, got an object"),
    ("triggerParam", ..., "triggerParam: required"),
    # subscribeParam and callback
    ("subscribeParam/callback/target", "ftp://example.org/cb",
     "subscribeParam.callback.target: 'ftp://example.org/cb' is not an http(s) URL"),
    ("subscribeParam/callback/target", "https://user:pw@example.org/cb",
     "subscribeParam.callback.target: credentials in the URL are not allowed; use a Header "
     "attribute (Authorization)"),
    ("subscribeParam/callback/attributes/1/type", "Cookie",
     "subscribeParam.callback.attributes[1].type: must be \"Query\" or \"Header\", got 'Cookie'"),
    ("subscribeParam/callback/attributes/1/key", "Host",
     "subscribeParam.callback.attributes[1].key: header Host is set by the server"),
    ("subscribeParam/callback/attributes/1/key", "Bad Header",
     "subscribeParam.callback.attributes[1].key: 'Bad Header' is not a valid header name"),
    ("subscribeParam/callback/attributes/1/value", "Basic x\r\nX-Evil: 1",
     "subscribeParam.callback.attributes[1].value: control characters are not allowed in a "
     "header value"),
    ("subscribeParam/callback", ..., "subscribeParam.callback: required"),
    ("subscribeParam", ..., "subscribeParam: required (it holds the callback)"),
    ("subscribeParam/refreshEvent", -1,
     "subscribeParam.refreshEvent: must be between 0 and 604800 seconds, got -1"),
    ("subscribeParam/refreshEvent", 1.5,
     "subscribeParam.refreshEvent: expected an integer, got 1.5"),
    ("subscribeParam/retryPolicy/policy", "Sometimes",
     "subscribeParam.retryPolicy.policy: unknown policy 'Sometimes'; use None, Always, "
     "Transient"),
    ("subscribeParam/retryPolicy/maxRetryNumber", 50,
     "subscribeParam.retryPolicy.maxRetryNumber: must be between 0 and 10, got 50"),
    ("subscribeParam/batchNotify/size", 0,
     "subscribeParam.batchNotify.size: must be between 1 and 100, got 0"),
    ("subscribeParam/batchNotify/window", 10,
     "subscribeParam.batchNotify.window: unknown field (did you mean 'timeWindow'?); known "
     "here: size, timeWindow"),
    ("subscribeParam/batchNotify/count", 10,
     "subscribeParam.batchNotify.count: unknown field; known here: size, timeWindow"),
    # extendedEventParam and top level
    ("extendedEventParam", ["vehicle.status", "vehicle.odometer"],
     "extendedEventParam[1]: unknown extended data 'vehicle.odometer'; use vehicle.alerts, "
     "vehicle.status, vehicle.position, vehicle.telemetry"),
    ("extendedEventParam", ["vehicle.status", "vehicle.status"],
     "extendedEventParam[1]: vehicle.status is repeated"),
    ("lable", "x", "lable: unknown field (did you mean 'label'?); known here: "
                   "extendedEventParam, label, subscribeParam, triggerParam"),
    ("label", 5, "label: expected a string, got a number"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID,
                         ids=[f"{p}={v!r}"[:60] for p, v, _ in INVALID])
def test_invalid_monitor(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(_mutate(path, value))
    assert info.value.message == message
    assert info.value.status == 400


def test_squeezed_triggers_are_a_duplicate_key() -> None:
    # Two triggers squeezed into one object: plain json.loads would keep only the last.
    text = """{"subscribeParam": {"callback": {"target": "https://example.org/cb"}},
      "triggerParam": {"triggers": [
        {"name": "leftZone", "zone": {"transition": "Out", "circle": {"radius": 20,
           "center": {"longitude": 2.3333, "latitude": 48.8667}}},
         "name": "batteryLow", "data": {"data": "vehicle.energy.electric.level",
           "op": "lowerThan", "value": ["50"]}}],
      "bool.exp": "leftZone & batteryLow"}}"""
    with pytest.raises(InvalidRequest) as info:
        parse(text)
    assert info.value.message == (
        'duplicate key "name" in $.triggerParam.triggers[0]: several triggers squeezed into '
        "one object? Give each trigger its own object in triggers"
    )


def test_duplicate_key_elsewhere() -> None:
    text = EXAMPLE_TEXT.replace('"refreshEvent": 600,', '"refreshEvent": 600, "refreshEvent": 1,')
    with pytest.raises(InvalidRequest) as info:
        parse(text)
    assert info.value.message == 'duplicate key "refreshEvent" in $.subscribeParam'


def test_body_not_an_object() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse("[1]")
    assert info.value.message == "body: expected an object, got an array"


def test_refused_callback_target() -> None:
    def allowed(url: str) -> bool:
        return url.startswith("https://hooks.example.com/")

    with pytest.raises(InvalidRequest) as info:
        parse(EXAMPLE, allowed)
    assert info.value.message == (
        "subscribeParam.callback.target: https://example.org/cb is not an allowed callback "
        "target (https to a public address, or a URL prefix the server allows with "
        "--webhook-allow)"
    )
    body = _mutate("subscribeParam/callback/target", "https://hooks.example.com/x")
    assert parse(body, allowed).callback.target == "https://hooks.example.com/x"


def test_daily_window_rules() -> None:
    daily = {"recurrence": "Daily", "start": "PT22H", "duration": "PT4H"}
    body = _mutate(f"{T}/1/time/times", [daily])
    parse(body)
    with pytest.raises(InvalidRequest) as info:
        parse(_mutate(f"{T}/1/time/times", [{**daily, "occurence": {"day": ["Mon"]}}]))
    assert info.value.message == (
        "triggerParam.triggers[1].time.times[0].occurence: only for Weekly recurrence (a Daily "
        "window applies every day)"
    )
    with pytest.raises(InvalidRequest) as info:
        parse(_mutate(f"{T}/1/time/times", [{**daily, "duration": "P2D"}]))
    assert info.value.message == (
        "triggerParam.triggers[1].time.times[0].duration: must be more than zero and at most "
        "P1D for Daily recurrence, got 'P2D'"
    )


def test_too_many_triggers() -> None:
    many = [{"name": f"t{i}", "data": {"data": "vehicle.speed", "op": "greaterThan",
                                       "value": ["1"]}} for i in range(21)]
    with pytest.raises(InvalidRequest) as info:
        parse(_mutate("triggerParam", {"triggers": many, "bool.exp": "t0"}))
    assert info.value.message == "triggerParam.triggers: at most 20 items"


# --- evaluation: the example ----------------------------------------------------------


def run(mon: mm.Monitor, steps: list[tuple[dict[str, str], float]],
        state: m.MonitorState | None = None) -> tuple[m.MonitorState, list[m.Event]]:
    state = state or m.MonitorState()
    fired: list[m.Event] = []
    for snap, now in steps:
        state, events = m.evaluate(mon, state, snap, now)
        fired.extend(events)
    return state, fired


def test_example_fires_once_when_leaving_with_low_battery() -> None:
    mon = parse(EXAMPLE)
    inside = snapshot(*CENTRE, soc=40)
    outside = snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=40)  # ~33 km north
    state, fired = run(mon, [(inside, TUESDAY), (inside, TUESDAY + 60)])
    assert fired == []
    assert state.last_value is False
    state, fired = m.evaluate(mon, state, outside, TUESDAY + 120)
    assert len(fired) == 1
    event = fired[0]
    assert event.at == TUESDAY + 120
    assert event.triggers == {"leftZone": True, "onMonday": False, "batteryLow": True}
    assert event.data == {"vehicle.energy.electric.level": 40.0}
    assert event.position == (CENTRE[0] + 0.3, CENTRE[1])
    # Still outside, still low: the expression stays true, nothing more fires.
    state, again = run(mon, [(outside, TUESDAY + 180 + 60 * k) for k in range(30)], state)
    assert again == []


def test_example_does_not_fire_with_high_battery_on_tuesday() -> None:
    mon = parse(EXAMPLE)
    _, fired = run(mon, [(snapshot(*CENTRE, soc=80), TUESDAY),
                         (snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=80), TUESDAY + 60)])
    assert fired == []


def test_example_fires_on_monday_afternoon_with_high_battery() -> None:
    mon = parse(EXAMPLE)
    monday = ts(2026, 3, 30, 15, tz=PARIS)
    _, fired = run(mon, [(snapshot(*CENTRE, soc=80), monday),
                         (snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=80), monday + 60)])
    assert len(fired) == 1
    assert fired[0].triggers["onMonday"] is True
    evening = ts(2026, 3, 30, 19, 30, tz=PARIS)
    _, fired = run(mon, [(snapshot(*CENTRE, soc=80), evening),
                         (snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=80), evening + 60)])
    assert fired == []


def test_battery_dropping_after_leaving_fires() -> None:
    mon = parse(EXAMPLE)
    out = (CENTRE[0] + 0.3, CENTRE[1])
    _, fired = run(mon, [(snapshot(*CENTRE, soc=60), TUESDAY),
                         (snapshot(*out, soc=60), TUESDAY + 60),
                         (snapshot(*out, soc=49), TUESDAY + 120)])
    assert [e.at for e in fired] == [TUESDAY + 120]


def test_first_seen_outside_has_not_left() -> None:
    mon = parse(EXAMPLE)
    far = snapshot(CENTRE[0] + 1, CENTRE[1], soc=40)
    state, fired = run(mon, [(far, TUESDAY), (far, TUESDAY + 60)])
    assert fired == []
    assert state.zones["leftZone"] == m.ZoneState("out", crossed=False)


def test_zone_radius_is_in_km() -> None:
    mon = parse(EXAMPLE)
    # 0.17 degrees of latitude is ~18.9 km: still inside the 20 km circle.
    _, fired = run(mon, [(snapshot(*CENTRE, soc=40), TUESDAY),
                         (snapshot(CENTRE[0] + 0.17, CENTRE[1], soc=40), TUESDAY + 60)])
    assert fired == []
    _, fired = run(mon, [(snapshot(*CENTRE, soc=40), TUESDAY),
                         (snapshot(CENTRE[0] + 0.19, CENTRE[1], soc=40), TUESDAY + 60)])
    assert len(fired) == 1


def test_positions_without_fix_are_ignored() -> None:
    mon = parse(EXAMPLE)
    _, fired = run(mon, [(snapshot(*CENTRE, soc=40), TUESDAY),
                         (snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=40, lock="0"), TUESDAY + 60),
                         ({"S": "40,K", "L": "0,0,0,0,1,1"}, TUESDAY + 120)])
    assert fired == []


def test_refresh_event_limits_firing() -> None:
    mon = parse(EXAMPLE)
    inside = snapshot(*CENTRE, soc=40)
    outside = snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=40)
    t0 = TUESDAY
    steps = [(inside, t0), (outside, t0 + 10),  # fires
             (inside, t0 + 20), (outside, t0 + 300),  # within 600 s: dropped
             (inside, t0 + 400), (outside, t0 + 610)]  # 600 s after the first: fires
    state, fired = run(mon, steps)
    assert [e.at for e in fired] == [t0 + 10, t0 + 610]
    assert state.last_fired == t0 + 610


def test_missing_data_never_fires() -> None:
    mon = parse(EXAMPLE)
    # No L at all: leftZone unknown, expression unknown.
    state, fired = run(mon, [({"S": "40,K"}, TUESDAY), ({}, TUESDAY + 60)])
    assert fired == []
    assert state.last_value is None


def test_negated_unknown_data_does_not_fire() -> None:
    body = _mutate("triggerParam/bool.exp", "!batteryLow")
    mon = parse(body)
    state, fired = run(mon, [({}, 0.0), ({"S": ""}, 60.0)])
    assert fired == [] and state.last_value is None
    state, fired = run(mon, [({"S": "40"}, 120.0), ({"S": "60"}, 180.0)], state)
    assert [e.at for e in fired] == [180.0]


def test_first_evaluation_is_a_baseline() -> None:
    body = _mutate("triggerParam/bool.exp", "batteryLow")
    mon = parse(body)
    state, fired = run(mon, [({"S": "40"}, 0.0), ({"S": "30"}, 60.0)])
    assert fired == []
    state, fired = run(mon, [({"S": "55"}, 120.0), ({"S": "45"}, 180.0)], state)
    assert [e.at for e in fired] == [180.0]


def data_monitor(path: str, op: str, values: list[str]) -> mm.Monitor:
    body = example()
    body["triggerParam"] = {"triggers": [{"name": "t", "data": {"data": path, "op": op,
                                                                "value": values}}]}
    return parse(body)


@pytest.mark.parametrize(
    ("path", "op", "values", "snap", "expected"),
    [
        ("vehicle.energy.electric.level", "lowerThan", ["50"], {"S": "49.9"}, True),
        ("vehicle.energy.electric.level", "lowerThan", ["50"], {"S": "50"}, False),
        ("vehicle.energy.electric.level", "greaterThan", ["50"], {"S": "51"}, True),
        ("vehicle.energy.electric.level", "between", ["20", "80"], {"S": "20"}, True),
        ("vehicle.energy.electric.level", "between", ["20", "80"], {"S": "80.5"}, False),
        ("vehicle.energy.electric.level", "equals", ["50"], {"S": "50.0"}, True),
        ("vehicle.energy.electric.level", "notEquals", ["50"], {"S": "50"}, False),
        ("vehicle.charging.status", "equals", ["Charging"], {"S": "50,K,230,16,charging"}, True),
        ("vehicle.charging.status", "notEquals", ["done"], {"S": "50,K,230,16,charging"}, True),
        ("vehicle.doors.locked", "equals", ["true"], {"D": "0,8"}, True),
        ("vehicle.doors.locked", "equals", ["false"], {"D": "0,8"}, False),
        ("vehicle.ignition", "equals", ["1"], {"D": "128"}, True),
        ("vehicle.energy.electric.autonomy", "greaterThan", ["150"], {"S": "50,M,0,0,x,x,0,100"},
         True),  # 100 miles is 161 km
        ("vehicle.energy.electric.level", "lowerThan", ["50"], {}, None),
        ("vehicle.energy.electric.level", "lowerThan", ["50"], {"S": "n/a"}, None),
    ],
)
def test_data_comparisons(path: str, op: str, values: list[str], snap: dict[str, str],
                          expected: bool | None) -> None:
    mon = data_monitor(path, op, values)
    got, _ = m.trigger_values(mon, m.MonitorState(), snap, 0.0)
    assert got == {"t": expected}


# --- time windows and DST -------------------------------------------------------------


def window(start: str, duration: str, *, days: list[str] | None = None,
           tz: str = "Europe/Paris") -> mm.TimeTrigger:
    item: dict[str, Any] = {"recurrence": "Weekly" if days else "Daily", "start": start,
                            "duration": duration}
    if days:
        item["occurence"] = {"day": days}
    body = example()
    body["triggerParam"] = {"triggers": [{"name": "w", "time": {"times": [item],
                                                                "time.zone": tz}}]}
    cond = parse(body).triggers[0].condition
    assert isinstance(cond, mm.TimeTrigger)
    return cond


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return ts(year, month, day, hour, minute)


def test_monday_window_in_winter_and_summer() -> None:
    monday = window("PT14H30M", "PT04H30M", days=["Mon"])
    # 2026-03-23 is a Monday in CET (UTC+1): 14:30-19:00 local is 13:30-18:00 UTC.
    assert not m.in_window(monday, utc(2026, 3, 23, 13, 29))
    assert m.in_window(monday, utc(2026, 3, 23, 13, 30))
    assert m.in_window(monday, utc(2026, 3, 23, 17, 59))
    assert not m.in_window(monday, utc(2026, 3, 23, 18, 0))
    # 2026-03-30, the Monday after the switch to CEST (UTC+2): 12:30-17:00 UTC.
    assert not m.in_window(monday, utc(2026, 3, 30, 12, 29))
    assert m.in_window(monday, utc(2026, 3, 30, 12, 30))
    assert m.in_window(monday, utc(2026, 3, 30, 16, 59))
    assert not m.in_window(monday, utc(2026, 3, 30, 17, 0))
    # Other days never.
    assert not m.in_window(monday, utc(2026, 3, 31, 13, 0))
    assert not m.in_window(monday, utc(2026, 3, 29, 13, 0))


def test_window_starting_in_the_spring_gap_moves_forward() -> None:
    # 2026-03-29: Paris clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC).
    # 02:30 does not exist that night; the window starts at 03:30 CEST = 01:30 UTC
    # and lasts one elapsed hour.
    nightly = window("PT02H30M", "PT1H")
    assert not m.in_window(nightly, utc(2026, 3, 29, 1, 29))
    assert m.in_window(nightly, utc(2026, 3, 29, 1, 30))
    assert m.in_window(nightly, utc(2026, 3, 29, 2, 29))
    assert not m.in_window(nightly, utc(2026, 3, 29, 2, 30))
    # The nights around it: 02:30 CET (01:30 UTC) before, 02:30 CEST (00:30 UTC) after.
    assert m.in_window(nightly, utc(2026, 3, 28, 1, 30))
    assert not m.in_window(nightly, utc(2026, 3, 28, 1, 29))
    assert m.in_window(nightly, utc(2026, 3, 30, 0, 30))
    assert not m.in_window(nightly, utc(2026, 3, 30, 1, 30))


def test_window_starting_in_the_autumn_fold_uses_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30 happens twice.
    nightly = window("PT02H30M", "PT1H")
    assert not m.in_window(nightly, utc(2026, 10, 25, 0, 29))
    assert m.in_window(nightly, utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert m.in_window(nightly, utc(2026, 10, 25, 1, 29))
    assert not m.in_window(nightly, utc(2026, 10, 25, 1, 30))  # the second 02:30 (CET)
    # The next night is plain CET: 02:30 = 01:30 UTC.
    assert m.in_window(nightly, utc(2026, 10, 26, 1, 30))


def test_window_across_midnight_and_week_end() -> None:
    late = window("PT22H", "PT4H", days=["Sun"], tz="UTC")
    # 2026-04-05 is a Sunday: the window runs to Monday 02:00.
    assert m.in_window(late, utc(2026, 4, 5, 23, 0))
    assert m.in_window(late, utc(2026, 4, 6, 1, 59))
    assert not m.in_window(late, utc(2026, 4, 6, 2, 0))
    assert not m.in_window(late, utc(2026, 4, 6, 23, 0))  # Monday night: not selected


def test_long_weekly_window() -> None:
    weekend = window("PT18H", "P2DT6H", days=["Fri"], tz="UTC")
    assert m.in_window(weekend, utc(2026, 4, 3, 18, 0))  # Friday
    assert m.in_window(weekend, utc(2026, 4, 5, 23, 59))  # Sunday
    assert not m.in_window(weekend, utc(2026, 4, 6, 0, 0))  # Monday


def test_time_trigger_fires_on_window_opening() -> None:
    body = example()
    body["triggerParam"] = {"triggers": [EXAMPLE["triggerParam"]["triggers"][1]]}
    mon = parse(body)
    before = utc(2026, 3, 30, 12, 0)  # Monday 14:00 CEST
    _, fired = run(mon, [({}, before + 60 * k) for k in range(60)])  # to 14:59 local
    assert [e.at for e in fired] == [utc(2026, 3, 30, 12, 30)]


# --- batching -------------------------------------------------------------------------


def ev(at: float) -> m.Event:
    return m.Event(at, {"x": True})


def test_batch_by_size() -> None:
    config = mm.BatchNotify(size=3, time_window=300)
    batch, ready = m.batch_add(config, m.Batch(), [ev(0)], 0)
    assert ready == [] and m.batch_deadline(config, batch) == 300
    batch, ready = m.batch_add(config, batch, [ev(10), ev(20)], 20)
    assert ready == [(ev(0), ev(10), ev(20))]
    assert batch == m.Batch() and m.batch_deadline(config, batch) is None


def test_batch_by_time_window() -> None:
    config = mm.BatchNotify(size=10, time_window=300)
    batch, ready = m.batch_add(config, m.Batch(), [ev(100)], 100)
    batch, ready2 = m.batch_add(config, batch, [ev(150)], 150)
    assert ready == ready2 == []
    assert m.batch_poll(config, batch, 399) == (batch, [])
    batch, ready = m.batch_poll(config, batch, 400)
    assert ready == [(ev(100), ev(150))]
    assert batch == m.Batch()


def test_batch_overflow_splits() -> None:
    config = mm.BatchNotify(size=2, time_window=300)
    batch, ready = m.batch_add(config, m.Batch(), [ev(i) for i in range(5)], 0)
    assert ready == [(ev(0), ev(1)), (ev(2), ev(3))]
    assert batch.events == (ev(4),) and batch.opened_at == 0


def test_no_batching_sends_at_once() -> None:
    config = mm.BatchNotify()  # size 1, window 0
    batch, ready = m.batch_add(config, m.Batch(), [ev(5)], 5)
    assert ready == [(ev(5),)] and batch == m.Batch()


def test_window_zero_flushes_partial_batch_immediately() -> None:
    config = mm.BatchNotify(size=10, time_window=0)
    batch, ready = m.batch_add(config, m.Batch(), [ev(5), ev(6)], 6)
    assert ready == [(ev(5), ev(6))] and batch == m.Batch()


# --- retries --------------------------------------------------------------------------


def test_retry_schedule_always() -> None:
    policy = mm.RetryPolicy("Always", 3, 120)
    assert m.retry_schedule(policy, 1000.0) == [1000.0, 1120.0, 1240.0, 1360.0]
    assert m.retry_after(policy, 1, 500) == 120
    assert m.retry_after(policy, 1, 404) == 120
    assert m.retry_after(policy, 3, None) == 120
    assert m.retry_after(policy, 4, None) is None
    assert m.retry_after(policy, 1, 204) is None  # delivered


def test_retry_policy_none() -> None:
    policy = mm.RetryPolicy("None", 3, 120)
    assert m.retry_schedule(policy, 0.0) == [0.0]
    assert m.retry_after(policy, 1, 503) is None


def test_retry_policy_transient() -> None:
    policy = mm.RetryPolicy("Transient", 2, 30)
    assert m.retry_after(policy, 1, None) == 30
    assert m.retry_after(policy, 1, 503) == 30
    assert m.retry_after(policy, 1, 429) == 30
    assert m.retry_after(policy, 1, 400) is None
    assert m.retry_after(policy, 1, 404) is None
    assert m.retry_schedule(policy, 0.0) == [0.0, 30.0, 60.0]


def test_delivered() -> None:
    assert m.delivered(200) and m.delivered(204)
    assert not m.delivered(None) and not m.delivered(301) and not m.delivered(500)


# --- callback requests ----------------------------------------------------------------


def test_build_callback_for_the_example() -> None:
    mon = parse(EXAMPLE)
    event = m.Event(ts(2026, 3, 31, 10), {"leftZone": True, "onMonday": False,
                                          "batteryLow": True},
                    {"vehicle.energy.electric.level": 40.0}, (49.1667, 2.3333))
    snap = snapshot(49.1667, 2.3333, soc=40)
    alerts = [{"source": "vehicle", "type": "alert", "text": "Charge stopped"}]
    extended = m.extended_data(mon, snap, location_at=ts(2026, 3, 31, 9, 59), alerts=alerts)
    req = m.build_callback(mon, [event], extended, m.VehicleInfo("DEMO", "VF3ABC1234567890"),
                           monitor_id="42", sent_at=ts(2026, 3, 31, 10, 1))
    assert req.method == "POST"
    assert req.url == "https://example.org/cb?vin=VF3ABC1234567890"
    assert req.headers == (("Content-Type", "application/json"),
                           ("Authorization", "Basic ..."))
    body = json.loads(req.body_bytes())
    assert body["monitorId"] == "42"
    assert body["label"] == mon.label
    assert body["callback"] == "HTTP_CB"
    assert body["vehicleId"] == "DEMO"
    assert body["vin"] == "VF3ABC1234567890"
    assert body["sentAt"] == "2026-03-31T10:01:00Z"
    assert body["events"] == [{
        "triggeredAt": "2026-03-31T10:00:00Z",
        "triggers": {"leftZone": True, "onMonday": False, "batteryLow": True},
        "data": {"vehicle.energy.electric.level": 40},
        "position": {"latitude": 49.1667, "longitude": 2.3333},
    }]
    assert set(body["extended"]) == {"vehicle.alerts", "vehicle.status", "vehicle.position"}
    assert body["extended"]["vehicle.alerts"] == alerts
    assert body["extended"]["vehicle.status"]["energy"]["electric"]["level"] == {
        "value": 40, "unit": "%"}
    position = body["extended"]["vehicle.position"]
    assert position["geometry"]["coordinates"] == [2.3333, 49.1667, 35]
    assert position["properties"]["updatedAt"] == "2026-03-31T09:59:00Z"
    assert req.body_bytes().endswith(b"}\n")


def test_callback_substitution_and_existing_query() -> None:
    body = _mutate("subscribeParam/callback", {
        "target": "https://example.org/cb?token=abc&x=",
        "attributes": [
            {"type": "Query", "key": "car", "value": "$vehicleid/$vin"},
            {"type": "Header", "key": "X-Car", "value": "$vehicleid"},
            {"type": "Header", "key": "X-Vin", "value": "vin=$vin"},
        ]})
    mon = parse(body)
    req = m.build_callback(mon, [], {}, m.VehicleInfo("MY CAR", None))
    assert req.url == "https://example.org/cb?token=abc&x=&car=MY+CAR%2F"
    assert ("X-Car", "MY CAR") in req.headers
    assert ("X-Vin", "vin=") in req.headers  # no VIN yet: empty
    # A VIN comes from the car: control characters never reach a header.
    req = m.build_callback(mon, [], {}, m.VehicleInfo("C", "VIN\x01\x7f1"))
    assert ("X-Vin", "vin=VIN1") in req.headers


def test_extended_position_missing() -> None:
    mon = parse(EXAMPLE)
    assert m.extended_data(mon, {})["vehicle.position"] is None
    telemetry = parse(_mutate("extendedEventParam", ["vehicle.telemetry"]))
    assert m.extended_data(telemetry, {"S": "80,K"}) == {
        "vehicle.telemetry": [{"path": "vehicle.energy.electric.level", "value": 80,
                               "unit": "%"}]}


# --- persistence ----------------------------------------------------------------------


def test_monitor_json_roundtrip() -> None:
    mon = parse(EXAMPLE)
    stored = json.loads(json.dumps(mp.monitor_to_json(mon)))
    restored = mp.monitor_restore(stored)
    assert restored == mon
    assert restored.expression == mon.expression
    # The stored form is itself a valid request body, in the issue's format.
    assert stored["triggerParam"]["bool.exp"] == EXAMPLE["triggerParam"]["bool.exp"]
    assert stored["triggerParam"]["triggers"][1]["time"] == \
        EXAMPLE["triggerParam"]["triggers"][1]["time"]
    assert parse(stored) == mon


def test_restore_skips_the_allow_list() -> None:
    stored = mp.monitor_to_json(parse(EXAMPLE))
    # The allow-list may have shrunk since: a stored monitor must still load.
    assert mp.monitor_restore(stored).callback.target == "https://example.org/cb"


def test_state_roundtrip_survives_restart() -> None:
    mon = parse(EXAMPLE)
    inside = snapshot(*CENTRE, soc=40)
    outside = snapshot(CENTRE[0] + 0.3, CENTRE[1], soc=40)
    state, fired = run(mon, [(inside, TUESDAY), (outside, TUESDAY + 60)])
    assert len(fired) == 1
    stored = json.loads(json.dumps(m.state_to_json(state)))
    restored = m.state_from_json(stored)
    assert restored == state
    # After the restart the monitor remembers it already fired: no duplicate.
    _, fired = m.evaluate(mon, restored, outside, TUESDAY + 120)
    assert fired == []


def test_batch_roundtrip() -> None:
    batch = m.Batch((m.Event(1.0, {"a": True, "b": None}, {"vehicle.speed": 5.0}, (1.0, 2.0)),
                     m.Event(2.0, {"a": True})), 1.0)
    stored = json.loads(json.dumps(m.batch_to_json(batch)))
    assert m.batch_from_json(stored) == batch
    assert m.batch_from_json(m.batch_to_json(m.Batch())) == m.Batch()


# --- robustness -----------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out.extend(_paths(child, (*prefix, i)))
    return out


EXAMPLE_PATHS = _paths(EXAMPLE)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["Out", "Weekly", "PT1H", "Mon", "a&b", "x("]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLE_PATHS), JSON_VALUES)
def test_any_mutation_is_a_monitor_or_a_400(path: tuple[str | int, ...], value: Any) -> None:
    body = example()
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    try:
        mon = parse(body)
    except InvalidRequest as exc:
        assert exc.message and exc.status == 400
        return
    # Whatever was accepted round-trips and evaluates without error.
    assert mp.monitor_restore(mp.monitor_to_json(mon)) == mon
    m.evaluate(mon, m.MonitorState(), snapshot(*CENTRE, soc=40), TUESDAY)
