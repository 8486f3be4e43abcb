"""Monitors: a client's standing question about a car, answered by calling it back.

Everything here is pure: ``parse_monitor`` validates a request body into a
``Monitor``; ``evaluate`` takes the previous ``MonitorState``, the vehicle's
latest messages and the time, and returns the next state plus the events to
deliver; the batcher and retry schedule say *when* to send; ``build_callback``
says *what* to send. The HTTP and store layers own the clock, the sockets and
the database, and call these functions.

(Over 600 lines on purpose: one data model, its validation with an exact 400
for each invalid case, and its evaluation read best side by side; every function
here is pure and tested alone in tests/test_v4_monitors.py.)

Semantics (``docs/api-v4.md`` has the user-facing version):

- Zone triggers are about *transitions*. ``Out`` is true while the car is
  outside the circle having been seen inside it before (it left); ``In`` while
  it is inside having been seen outside (it arrived). A car first seen
  outside has not left anything. Positions without a GPS fix are ignored.
- Time triggers are true inside any of their windows. A window starts at the
  wall-clock offset ``start`` after local midnight (in ``time.zone``) on the
  days its recurrence selects and lasts ``duration`` of elapsed time. A start
  that falls in a DST gap moves forward by the gap; an ambiguous start means
  its first occurrence.
- Data triggers compare a data path's current value. A trigger whose input
  is unknown (no such message yet, empty field, no position yet) is
  *unknown*, and the expression is evaluated in three-valued logic
  (``false & unknown`` is false, ``true | unknown`` is true). An unknown
  expression changes nothing: missing data never fires a monitor.
- The monitor fires when the expression goes from false to true. The first
  evaluation only records the value (creating a monitor whose condition
  already holds does not fire it). After firing, further edges within
  ``refreshEvent`` seconds are dropped.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
import urllib.parse
import zoneinfo
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from relay.v4 import datapaths, expr, hal
from relay.v4.durations import parse_duration
from relay.v4.jsonparse import DuplicateKey, InvalidRequest, loads_strict

# --- limits ---------------------------------------------------------------------------
# Bounds on what one monitor may ask, so a single body cannot make the server
# keep huge state or call out at a high rate.
MAX_TRIGGERS = 20
MAX_WINDOWS = 20
MAX_LABEL = 200
MAX_REFRESH = 7 * 86400
MAX_RETRIES = 10
MAX_RETRY_DELAY = 86400
MAX_BATCH_SIZE = 100
MAX_BATCH_WINDOW = 86400
MAX_ATTRIBUTES = 20
MAX_URL = 2000
MAX_RADIUS_KM = 20038.0  # half of the equator: every point of Earth is closer than this

EXTENDED = ("vehicle.alerts", "vehicle.status", "vehicle.position", "vehicle.telemetry")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
OPS = ("lowerThan", "greaterThan", "equals", "notEquals", "between")
POLICIES = ("None", "Always", "Transient")

# Members a client may send back unchanged from a GET (HAL and bookkeeping).
READ_ONLY = frozenset({"_links", "_embedded", "id", "createdAt", "updatedAt", "status"})

Transition = Literal["In", "Out"]
Recurrence = Literal["Daily", "Weekly"]


# --- model ----------------------------------------------------------------------------


@attrs.frozen
class Circle:
    latitude: float
    longitude: float
    radius_km: float


@attrs.frozen
class ZoneTrigger:
    transition: Transition
    circle: Circle


@attrs.frozen
class TimeWindow:
    recurrence: Recurrence
    start: str  # as the client wrote it, e.g. "PT14H30M"
    duration: str
    start_s: float  # offset from local midnight, seconds (< 1 day)
    duration_s: float
    days: tuple[int, ...] = ()  # 0 = Monday; only for Weekly


@attrs.frozen
class TimeTrigger:
    windows: tuple[TimeWindow, ...]
    tz: str = "UTC"


@attrs.frozen
class DataTrigger:
    path: str
    op: str
    raw: tuple[str, ...]  # the values as given
    values: tuple[datapaths.Value, ...]  # parsed to the path's kind


Condition: TypeAlias = ZoneTrigger | TimeTrigger | DataTrigger


@attrs.frozen
class Trigger:
    name: str
    condition: Condition


@attrs.frozen
class RetryPolicy:
    policy: str = "Always"
    max_retry_number: int = 3
    retry_delay: int = 60


@attrs.frozen
class BatchNotify:
    size: int = 1
    time_window: int = 0


@attrs.frozen
class CallbackAttribute:
    type: Literal["Query", "Header"]
    key: str
    value: str


@attrs.frozen
class Callback:
    target: str
    name: str = ""
    attributes: tuple[CallbackAttribute, ...] = ()


@attrs.frozen
class Monitor:
    label: str
    callback: Callback
    triggers: tuple[Trigger, ...]
    expression_text: str
    expression: expr.Expr = attrs.field(eq=False)
    refresh_event: int = 0
    retry: RetryPolicy = RetryPolicy()
    batch: BatchNotify = BatchNotify()
    extended: tuple[str, ...] = ()

    def trigger(self, name: str) -> Trigger:
        for trig in self.triggers:
            if trig.name == name:
                return trig
        raise KeyError(name)


# --- parsing --------------------------------------------------------------------------


def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _object(value: object, where: str, allowed: Collection[str],
            ignore: Collection[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where or 'body'}: expected an object, got {_describe(value)}")
    for key in value:
        if key in allowed or key in ignore:
            continue
        close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(allowed))
        raise InvalidRequest(f"{_at(where, key)}: unknown field{hint}; known here: {known}")
    return value


def _string(obj: Mapping[str, Any], key: str, where: str, *, default: str | None = None,
            max_len: int = 500) -> str:
    if key not in obj:
        if default is None:
            raise InvalidRequest(f"{_at(where, key)}: required")
        return default
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidRequest(f"{_at(where, key)}: expected a string, got {_describe(value)}")
    if len(value) > max_len:
        raise InvalidRequest(f"{_at(where, key)}: longer than {max_len} characters")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str) -> float:
    if key not in obj:
        raise InvalidRequest(f"{_at(where, key)}: required")
    value = obj[key]
    # bool is an int in Python, but true is not a radius.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{_at(where, key)}: expected a number, got {_describe(value)}")
    return float(value)


def _integer(obj: Mapping[str, Any], key: str, where: str, *, default: int, low: int,
             high: int, unit: str = "") -> int:
    if key not in obj:
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise InvalidRequest(f"{_at(where, key)}: expected an integer, got "
                             f"{_describe(value) if not isinstance(value, float) else value}")
    number = int(value)
    if not low <= number <= high:
        suffix = f" {unit}" if unit else ""
        raise InvalidRequest(f"{_at(where, key)}: must be between {low} and {high}{suffix}, "
                             f"got {number}")
    return number


def _list(obj: Mapping[str, Any], key: str, where: str, *, max_items: int,
          required: bool = True) -> list[Any]:
    if key not in obj:
        if required:
            raise InvalidRequest(f"{_at(where, key)}: required")
        return []
    value = obj[key]
    if not isinstance(value, list):
        raise InvalidRequest(f"{_at(where, key)}: expected an array, got {_describe(value)}")
    if required and not value:
        raise InvalidRequest(f"{_at(where, key)}: must not be empty")
    if len(value) > max_items:
        raise InvalidRequest(f"{_at(where, key)}: at most {max_items} items")
    return value


def _zone(value: object, where: str) -> ZoneTrigger:
    obj = _object(value, where, ("transition", "circle"))
    transition = _string(obj, "transition", where)
    if transition not in ("In", "Out"):
        raise InvalidRequest(f'{_at(where, "transition")}: must be "In" or "Out", got '
                             f"{transition!r}")
    cwhere = _at(where, "circle")
    if "circle" not in obj:
        raise InvalidRequest(f"{cwhere}: required")
    circle = _object(obj["circle"], cwhere, ("radius", "center"))
    radius = _number(circle, "radius", cwhere)
    if not 0 < radius <= MAX_RADIUS_KM:
        raise InvalidRequest(f"{_at(cwhere, 'radius')}: must be more than 0 and at most "
                             f"{MAX_RADIUS_KM:g} (km), got {radius:g}")
    centre_where = _at(cwhere, "center")
    if "center" not in circle:
        raise InvalidRequest(f"{centre_where}: required")
    centre = _object(circle["center"], centre_where, ("latitude", "longitude"))
    lat = _number(centre, "latitude", centre_where)
    lon = _number(centre, "longitude", centre_where)
    if not -90 <= lat <= 90:
        raise InvalidRequest(f"{_at(centre_where, 'latitude')}: must be between -90 and 90")
    if not -180 <= lon <= 180:
        raise InvalidRequest(f"{_at(centre_where, 'longitude')}: must be between -180 and 180")
    return ZoneTrigger(transition, Circle(lat, lon, radius))  # type: ignore[arg-type]


def _time_zone(name: str, where: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidRequest(f"{where}: unknown IANA time zone {name!r} (e.g. "
                             '"Europe/Paris", "UTC")') from None
    return name


def _window(value: object, where: str) -> TimeWindow:
    obj = _object(value, where, ("recurrence", "start", "duration", "occurence"))
    recurrence = _string(obj, "recurrence", where)
    if recurrence not in ("Daily", "Weekly"):
        raise InvalidRequest(f'{_at(where, "recurrence")}: must be "Daily" or "Weekly", got '
                             f"{recurrence!r}")
    start_text = _string(obj, "start", where)
    start = parse_duration(start_text, field=_at(where, "start")).total_seconds()
    if start >= 86400:
        raise InvalidRequest(f"{_at(where, 'start')}: is an offset from midnight and must be "
                             f"less than one day (PT24H), got {start_text!r}")
    duration_text = _string(obj, "duration", where)
    duration = parse_duration(duration_text, field=_at(where, "duration")).total_seconds()
    longest = 86400 if recurrence == "Daily" else 7 * 86400
    if not 0 < duration <= longest:
        raise InvalidRequest(f"{_at(where, 'duration')}: must be more than zero and at most "
                             f"{'P1D' if recurrence == 'Daily' else 'P7D'} for {recurrence} "
                             f"recurrence, got {duration_text!r}")
    days: tuple[int, ...] = ()
    owhere = _at(where, "occurence")
    if recurrence == "Daily":
        if "occurence" in obj:
            raise InvalidRequest(f"{owhere}: only for Weekly recurrence (a Daily window "
                                 "applies every day)")
    else:
        if "occurence" not in obj:
            raise InvalidRequest(f'{owhere}: required for Weekly recurrence, e.g. '
                                 '{"day": ["Mon"]}')
        occurence = _object(obj["occurence"], owhere, ("day",))
        names = _list(occurence, "day", owhere, max_items=7)
        picked: list[int] = []
        for i, day in enumerate(names):
            if day not in DAYS:
                raise InvalidRequest(f"{_at(_at(owhere, 'day'), i)}: {day!r} is not a day; "
                                     f"use {', '.join(DAYS)}")
            if DAYS.index(day) in picked:
                raise InvalidRequest(f"{_at(_at(owhere, 'day'), i)}: {day} is repeated")
            picked.append(DAYS.index(day))
        days = tuple(sorted(picked))
    return TimeWindow(recurrence, start_text, duration_text, start, duration,  # type: ignore[arg-type]
                      days)


def _time(value: object, where: str) -> TimeTrigger:
    obj = _object(value, where, ("times", "time.zone"))
    tz = _time_zone(_string(obj, "time.zone", where, default="UTC", max_len=64),
                    _at(where, "time.zone"))
    items = _list(obj, "times", where, max_items=MAX_WINDOWS)
    windows = tuple(_window(item, _at(_at(where, "times"), i)) for i, item in enumerate(items))
    return TimeTrigger(windows, tz)


def _data(value: object, where: str) -> DataTrigger:
    obj = _object(value, where, ("data", "op", "value"))
    path = _string(obj, "data", where)
    if path not in datapaths.PATHS:
        close = difflib.get_close_matches(path, list(datapaths.PATHS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidRequest(f"{_at(where, 'data')}: unknown data path {path!r}{hint} "
                             "(see the data path table in docs/api-v4.md)")
    spec = datapaths.PATHS[path]
    op = _string(obj, "op", where)
    if op not in OPS:
        raise InvalidRequest(f"{_at(where, 'op')}: unknown operator {op!r}; use "
                             f"{', '.join(OPS)}")
    if op in ("lowerThan", "greaterThan", "between") and spec.kind != "number":
        raise InvalidRequest(f"{_at(where, 'op')}: {op} needs a numeric data path, and {path} "
                             f"is {'a boolean' if spec.kind == 'boolean' else 'text'}")
    vwhere = _at(where, "value")
    items = _list(obj, "value", where, max_items=2)
    wanted = 2 if op == "between" else 1
    if len(items) != wanted:
        shape = '["low", "high"]' if wanted == 2 else '["50"]'
        raise InvalidRequest(f"{vwhere}: {op} takes {wanted} value{'s' if wanted > 1 else ''}, "
                             f"e.g. {shape}; got {len(items)}")
    raw: list[str] = []
    parsed: list[datapaths.Value] = []
    for i, item in enumerate(items):
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, int | float):
            text = repr(item)
        elif isinstance(item, str):
            text = item
        else:
            raise InvalidRequest(f"{_at(vwhere, i)}: expected a string, got {_describe(item)}")
        try:
            parsed.append(datapaths.parse_literal(path, text))
        except ValueError as exc:
            raise InvalidRequest(f"{_at(vwhere, i)}: {exc} ({path} is "
                                 f"{'numeric' if spec.kind == 'number' else spec.kind})"
                                 ) from None
        raw.append(text)
    if op == "between" and parsed[0] > parsed[1]:  # type: ignore[operator]
        raise InvalidRequest(f"{vwhere}: between needs the low value first, got {raw[0]} > "
                             f"{raw[1]}")
    return DataTrigger(path, op, tuple(raw), tuple(parsed))


_KINDS: dict[str, Callable[[object, str], Condition]] = {
    "zone": _zone, "time": _time, "data": _data,
}


def _trigger(value: object, where: str, seen: set[str]) -> Trigger:
    obj = _object(value, where, ("name", *_KINDS))
    name = _string(obj, "name", where, max_len=100)
    if not expr.is_name(name):
        raise InvalidRequest(f"{_at(where, 'name')}: {name!r} must be letters, digits, _ . or - "
                             "(so bool.exp can name it)")
    if name in seen:
        raise InvalidRequest(f"{_at(where, 'name')}: trigger name {name!r} is used twice")
    seen.add(name)
    kinds = [k for k in _KINDS if k in obj]
    if not kinds:
        raise InvalidRequest(f"{where}: trigger {name!r} needs one of zone, time or data")
    if len(kinds) > 1:
        raise InvalidRequest(f"{where}: trigger {name!r} has both {kinds[0]} and {kinds[1]}; "
                             "put each trigger in its own object in triggers")
    kind = kinds[0]
    return Trigger(name, _KINDS[kind](obj[kind], _at(where, kind)))


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Headers the HTTP client sets itself; letting a monitor set them would break
# the request framing or forge what the body is.
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding",
                               "connection", "te", "upgrade", "expect", "trailer"})


def _callback(value: object, where: str, url_allowed: Callable[[str], bool]) -> Callback:
    obj = _object(value, where, ("target", "name", "attributes"))
    target = _string(obj, "target", where, max_len=MAX_URL)
    twhere = _at(where, "target")
    parts = urllib.parse.urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{twhere}: {target!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(f"{twhere}: credentials in the URL are not allowed; use a Header "
                             "attribute (Authorization)")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        raise InvalidRequest(f"{twhere}: URL contains spaces or control characters")
    if not url_allowed(target):
        raise InvalidRequest(f"{twhere}: {target} is not an allowed callback target (https to a "
                             "public address, or a URL prefix the server allows with "
                             "--webhook-allow)")
    name = _string(obj, "name", where, default="", max_len=100)
    attributes: list[CallbackAttribute] = []
    awhere = _at(where, "attributes")
    for i, item in enumerate(_list(obj, "attributes", where, max_items=MAX_ATTRIBUTES,
                                   required=False)):
        iwhere = _at(awhere, i)
        attr = _object(item, iwhere, ("type", "key", "value"))
        kind = _string(attr, "type", iwhere)
        if kind not in ("Query", "Header"):
            raise InvalidRequest(f'{_at(iwhere, "type")}: must be "Query" or "Header", got '
                                 f"{kind!r}")
        key = _string(attr, "key", iwhere, max_len=100)
        val = _string(attr, "value", iwhere, default="", max_len=2000)
        if not key:
            raise InvalidRequest(f"{_at(iwhere, 'key')}: must not be empty")
        if kind == "Header":
            if not _HEADER_NAME.match(key):
                raise InvalidRequest(f"{_at(iwhere, 'key')}: {key!r} is not a valid header name")
            if key.lower() in _RESERVED_HEADERS:
                raise InvalidRequest(f"{_at(iwhere, 'key')}: header {key} is set by the server")
            # CR/LF in a value would let the body inject extra headers.
            if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in val):
                raise InvalidRequest(f"{_at(iwhere, 'value')}: control characters are not "
                                     "allowed in a header value")
        attributes.append(CallbackAttribute(kind, key, val))  # type: ignore[arg-type]
    return Callback(target, name, tuple(attributes))


def _subscribe(value: object, url_allowed: Callable[[str], bool]
               ) -> tuple[int, RetryPolicy, BatchNotify, Callback]:
    where = "subscribeParam"
    obj = _object(value, where, ("refreshEvent", "retryPolicy", "batchNotify", "callback"))
    refresh = _integer(obj, "refreshEvent", where, default=0, low=0, high=MAX_REFRESH,
                       unit="seconds")
    retry = RetryPolicy()
    if "retryPolicy" in obj:
        rwhere = _at(where, "retryPolicy")
        robj = _object(obj["retryPolicy"], rwhere, ("policy", "maxRetryNumber", "retryDelay"))
        policy = _string(robj, "policy", rwhere, default="Always")
        if policy not in POLICIES:
            raise InvalidRequest(f"{_at(rwhere, 'policy')}: unknown policy {policy!r}; use "
                                 f"{', '.join(POLICIES)}")
        retry = RetryPolicy(
            policy,
            _integer(robj, "maxRetryNumber", rwhere, default=3, low=0, high=MAX_RETRIES),
            _integer(robj, "retryDelay", rwhere, default=60, low=1, high=MAX_RETRY_DELAY,
                     unit="seconds"),
        )
    batch = BatchNotify()
    if "batchNotify" in obj:
        bwhere = _at(where, "batchNotify")
        bobj = _object(obj["batchNotify"], bwhere, ("size", "timeWindow"))
        batch = BatchNotify(
            _integer(bobj, "size", bwhere, default=1, low=1, high=MAX_BATCH_SIZE),
            _integer(bobj, "timeWindow", bwhere, default=0, low=0, high=MAX_BATCH_WINDOW,
                     unit="seconds"),
        )
    if "callback" not in obj:
        raise InvalidRequest(f"{_at(where, 'callback')}: required")
    callback = _callback(obj["callback"], _at(where, "callback"), url_allowed)
    return refresh, retry, batch, callback


def monitor_from_json(data: object, *, url_allowed: Callable[[str], bool]) -> Monitor:
    """Validate an already-parsed monitor body (the issue's format) into a Monitor."""
    obj = _object(data, "", ("label", "subscribeParam", "extendedEventParam", "triggerParam"),
                  ignore=READ_ONLY)
    label = _string(obj, "label", "", default="", max_len=MAX_LABEL)
    if "subscribeParam" not in obj:
        raise InvalidRequest("subscribeParam: required (it holds the callback)")
    refresh, retry, batch, callback = _subscribe(obj["subscribeParam"], url_allowed)
    extended: list[str] = []
    for i, item in enumerate(_list(obj, "extendedEventParam", "", max_items=len(EXTENDED),
                                   required=False)):
        iwhere = _at("extendedEventParam", i)
        if item not in EXTENDED:
            raise InvalidRequest(f"{iwhere}: unknown extended data {item!r}; use "
                                 f"{', '.join(EXTENDED)}")
        if item in extended:
            raise InvalidRequest(f"{iwhere}: {item} is repeated")
        extended.append(item)
    if "triggerParam" not in obj:
        raise InvalidRequest("triggerParam: required")
    twhere = "triggerParam"
    tobj = _object(obj["triggerParam"], twhere, ("triggers", "bool.exp"))
    seen: set[str] = set()
    triggers = tuple(
        _trigger(item, _at(_at(twhere, "triggers"), i), seen)
        for i, item in enumerate(_list(tobj, "triggers", twhere, max_items=MAX_TRIGGERS))
    )
    if "bool.exp" in tobj:
        text = tobj["bool.exp"]
    elif len(triggers) == 1:
        text = triggers[0].name
    else:
        raise InvalidRequest(f"{twhere}.bool.exp: required when there is more than one trigger, "
                             f"e.g. {' & '.join(t.name for t in triggers[:2])!r}")
    try:
        expression = expr.parse(text, known=seen)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{twhere}.{exc.message}") from None
    return Monitor(
        label=label, callback=callback, triggers=triggers, expression_text=text,
        expression=expression, refresh_event=refresh, retry=retry, batch=batch,
        extended=tuple(extended),
    )


_TRIGGER_PATH = re.compile(r"^\$\.triggerParam\.triggers\[\d+\]$")


def parse_monitor(body_text: str | bytes, *, url_allowed: Callable[[str], bool]) -> Monitor:
    """A request body -> Monitor, or InvalidRequest saying exactly what is wrong (HTTP 400)."""
    try:
        data = loads_strict(body_text)
    except DuplicateKey as exc:
        if _TRIGGER_PATH.match(exc.path):
            raise InvalidRequest(
                f"{exc.message}: several triggers squeezed into one object? Give each trigger "
                "its own object in triggers"
            ) from None
        raise
    return monitor_from_json(data, url_allowed=url_allowed)


def _allow_all(_url: str) -> bool:
    return True


def monitor_to_json(monitor: Monitor) -> dict[str, Any]:
    """The monitor in the issue's format; ``monitor_from_json`` reads it back unchanged."""
    triggers: list[dict[str, Any]] = []
    for trig in monitor.triggers:
        cond = trig.condition
        item: dict[str, Any] = {"name": trig.name}
        if isinstance(cond, ZoneTrigger):
            item["zone"] = {"transition": cond.transition, "circle": {
                "radius": cond.circle.radius_km,
                "center": {"latitude": cond.circle.latitude,
                           "longitude": cond.circle.longitude}}}
        elif isinstance(cond, TimeTrigger):
            times: list[dict[str, Any]] = []
            for w in cond.windows:
                window: dict[str, Any] = {"recurrence": w.recurrence, "start": w.start,
                                          "duration": w.duration}
                if w.recurrence == "Weekly":
                    window["occurence"] = {"day": [DAYS[d] for d in w.days]}
                times.append(window)
            item["time"] = {"times": times, "time.zone": cond.tz}
        else:
            item["data"] = {"data": cond.path, "op": cond.op, "value": list(cond.raw)}
        triggers.append(item)
    callback: dict[str, Any] = {
        "target": monitor.callback.target, "name": monitor.callback.name,
        "attributes": [{"type": a.type, "key": a.key, "value": a.value}
                       for a in monitor.callback.attributes],
    }
    return {
        "label": monitor.label,
        "subscribeParam": {
            "refreshEvent": monitor.refresh_event,
            "retryPolicy": {"policy": monitor.retry.policy,
                            "maxRetryNumber": monitor.retry.max_retry_number,
                            "retryDelay": monitor.retry.retry_delay},
            "batchNotify": {"size": monitor.batch.size, "timeWindow": monitor.batch.time_window},
            "callback": callback,
        },
        "extendedEventParam": list(monitor.extended),
        "triggerParam": {"triggers": triggers, "bool.exp": monitor.expression_text},
    }


def monitor_restore(data: object) -> Monitor:
    """A stored monitor back from ``monitor_to_json`` output.

    The callback target is not checked against the allow-list here: the list
    may have changed since, and a stored monitor must still load. Delivery
    checks the target again before every call.
    """
    return monitor_from_json(data, url_allowed=_allow_all)


# --- evaluation -----------------------------------------------------------------------


@attrs.frozen
class ZoneState:
    side: Literal["in", "out"] | None = None
    crossed: bool = False  # the current side was reached from the other side


@attrs.frozen
class MonitorState:
    """What a monitor remembers between evaluations (persist it: ``state_to_json``)."""

    last_value: bool | None = None  # None: never evaluated to a known value
    last_fired: float | None = None
    zones: Mapping[str, ZoneState] = attrs.field(factory=dict)


@attrs.frozen
class Event:
    """One firing of a monitor."""

    at: float
    triggers: Mapping[str, bool | None]
    data: Mapping[str, datapaths.Value] = attrs.field(factory=dict)
    position: tuple[float, float] | None = None


def in_window(trigger: TimeTrigger, now: float) -> bool:
    tz = zoneinfo.ZoneInfo(trigger.tz)
    today = dt.datetime.fromtimestamp(now, tz).date()
    for window in trigger.windows:
        # A window may have started on an earlier day and still be open.
        back = math.ceil((window.start_s + window.duration_s) / 86400)
        for k in range(back + 1):
            day = today - dt.timedelta(days=k)
            if window.recurrence == "Weekly" and day.weekday() not in window.days:
                continue
            # Wall-clock arithmetic on an aware datetime: midnight + 14:30 is 14:30 local
            # whatever the offset; .timestamp() then resolves gaps/folds with fold=0.
            midnight = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
            start = (midnight + dt.timedelta(seconds=window.start_s)).timestamp()
            if start <= now < start + window.duration_s:
                return True
    return False


def _compare(trigger: DataTrigger, value: datapaths.Value) -> bool | None:
    if value is None:
        return None
    op, wanted = trigger.op, trigger.values
    if op == "equals" or op == "notEquals":
        target = wanted[0]
        if isinstance(value, str) and isinstance(target, str):
            same = value.strip().casefold() == target.strip().casefold()
        else:
            same = value == target
        return same if op == "equals" else not same
    if not isinstance(value, float):
        return None
    # Validation made these floats for numeric operators; the checks narrow the types.
    low = wanted[0]
    if not isinstance(low, float):
        return None
    if op == "lowerThan":
        return value < low
    if op == "greaterThan":
        return value > low
    high = wanted[-1]
    if not isinstance(high, float):
        return None
    return low <= value <= high


def _zone_update(trigger: ZoneTrigger, state: ZoneState,
                 position: tuple[float, float] | None) -> ZoneState:
    if position is None:
        return state
    circle = trigger.circle
    distance = datapaths.haversine_km(position[0], position[1], circle.latitude,
                                      circle.longitude)
    inside = distance <= circle.radius_km
    side: Literal["in", "out"] = "in" if inside else "out"
    if side == state.side:
        return state
    return ZoneState(side, crossed=state.side is not None)


def trigger_values(monitor: Monitor, state: MonitorState, snapshot: datapaths.Snapshot,
                   now: float) -> tuple[dict[str, bool | None], dict[str, ZoneState]]:
    """Each trigger's value now (None: unknown) and the zone states after this position."""
    values: dict[str, bool | None] = {}
    zones: dict[str, ZoneState] = {}
    position = datapaths.position_of(snapshot)
    for trig in monitor.triggers:
        cond = trig.condition
        if isinstance(cond, ZoneTrigger):
            zone = _zone_update(cond, state.zones.get(trig.name, ZoneState()), position)
            zones[trig.name] = zone
            wanted = "in" if cond.transition == "In" else "out"
            values[trig.name] = None if zone.side is None else (
                zone.side == wanted and zone.crossed)
        elif isinstance(cond, TimeTrigger):
            values[trig.name] = in_window(cond, now)
        else:
            values[trig.name] = _compare(cond, datapaths.value_of(cond.path, snapshot))
    return values, zones


def evaluate(monitor: Monitor, state: MonitorState, snapshot: datapaths.Snapshot,
             now: float) -> tuple[MonitorState, list[Event]]:
    """Evaluate once: call on every message from the car and on a timer (time windows open
    and close without any message; once a minute is plenty)."""
    values, zones = trigger_values(monitor, state, snapshot, now)
    result = expr.evaluate_partial(monitor.expression, values)
    if result is None:
        return attrs.evolve(state, zones=zones), []
    events: list[Event] = []
    last_fired = state.last_fired
    if result and state.last_value is False:
        throttled = (last_fired is not None and monitor.refresh_event > 0
                     and now - last_fired < monitor.refresh_event)
        if not throttled:
            data = {t.condition.path: datapaths.value_of(t.condition.path, snapshot)
                    for t in monitor.triggers if isinstance(t.condition, DataTrigger)}
            events.append(Event(now, values, data, datapaths.position_of(snapshot)))
            last_fired = now
    return MonitorState(result, last_fired, zones), events


# --- batching -------------------------------------------------------------------------


@attrs.frozen
class Batch:
    """Events waiting to be sent together."""

    events: tuple[Event, ...] = ()
    opened_at: float | None = None  # when the first waiting event arrived


def batch_add(config: BatchNotify, batch: Batch, events: Sequence[Event], now: float
              ) -> tuple[Batch, list[tuple[Event, ...]]]:
    """Add events; return the new batch and the batches now ready to send.

    A batch is sent as soon as it holds ``size`` events or its first event is
    ``timeWindow`` seconds old, whichever comes first.
    """
    ready: list[tuple[Event, ...]] = []
    pending, opened = batch.events, batch.opened_at
    for event in events:
        if not pending:
            opened = now
        pending = (*pending, event)
        if len(pending) >= config.size:
            ready.append(pending)
            pending, opened = (), None
    rest, due = batch_poll(config, Batch(pending, opened), now)
    ready.extend(due)
    return rest, ready


def batch_poll(config: BatchNotify, batch: Batch, now: float
               ) -> tuple[Batch, list[tuple[Event, ...]]]:
    """Send what waited long enough: call when ``batch_deadline`` has passed."""
    if batch.events and batch.opened_at is not None and \
            now >= batch.opened_at + config.time_window:
        return Batch(), [batch.events]
    return batch, []


def batch_deadline(config: BatchNotify, batch: Batch) -> float | None:
    """When the waiting events must go out at the latest; None if nothing waits."""
    if not batch.events or batch.opened_at is None:
        return None
    return batch.opened_at + config.time_window


# --- retries --------------------------------------------------------------------------


def delivered(status: int | None) -> bool:
    """Did an attempt succeed? ``status`` None means no HTTP answer (network error, timeout)."""
    return status is not None and 200 <= status < 300


def _transient(status: int | None) -> bool:
    return status is None or status in (408, 425, 429) or status >= 500


def retry_after(policy: RetryPolicy, failures: int, status: int | None) -> float | None:
    """Seconds to wait before the next attempt, or None to give up.

    ``failures``: attempts that failed so far, this one included (1 after the
    first). ``None`` never retries; ``Always`` retries any failure;
    ``Transient`` only network errors, timeouts, 408/425/429 and 5xx (a 4xx
    means the request itself is wrong, and sending it again will not help).
    At most ``maxRetryNumber`` retries, each ``retryDelay`` seconds after the
    failure.
    """
    if delivered(status) or policy.policy == "None":
        return None
    if failures > policy.max_retry_number:
        return None
    if policy.policy == "Transient" and not _transient(status):
        return None
    return float(policy.retry_delay)


def retry_schedule(policy: RetryPolicy, first_attempt: float) -> list[float]:
    """Times of every attempt when all fail instantly with a network error."""
    times = [first_attempt]
    failures = 1
    while (delay := retry_after(policy, failures, None)) is not None:
        times.append(times[-1] + delay)
        failures += 1
    return times


# --- callback requests ----------------------------------------------------------------


@attrs.frozen
class VehicleInfo:
    vehicleid: str
    vin: str | None = None


@attrs.frozen
class CallbackRequest:
    url: str
    headers: tuple[tuple[str, str], ...]
    body: Mapping[str, Any]
    method: str = "POST"

    def body_bytes(self) -> bytes:
        return (json.dumps(self.body, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _clean(text: str) -> str:
    # A VIN comes from the car: keep it from adding control characters to headers.
    return "".join(c for c in text if ord(c) >= 0x20 and ord(c) != 0x7F)


def substitute(text: str, vehicle: VehicleInfo) -> str:
    """``$vehicleid`` and ``$vin`` (empty while the car has not sent its VIN)."""
    return text.replace("$vehicleid", _clean(vehicle.vehicleid)).replace(
        "$vin", _clean(vehicle.vin or ""))


def event_json(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"triggeredAt": hal.rfc3339(event.at),
                           "triggers": dict(event.triggers)}
    if event.data:
        out["data"] = {k: (hal.json_number(v) if isinstance(v, float) else v)
                       for k, v in event.data.items()}
    if event.position is not None:
        out["position"] = {"latitude": event.position[0], "longitude": event.position[1]}
    return out


def extended_data(monitor: Monitor, snapshot: datapaths.Snapshot, *,
                  location_at: float | None = None,
                  alerts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The extended data the monitor asked for, as of now.

    ``location_at``: when the ``L`` message arrived (for the position's
    ``updatedAt``); ``alerts``: the vehicle's recent alert resources.
    """
    out: dict[str, Any] = {}
    for name in monitor.extended:
        if name == "vehicle.status":
            out[name] = hal.status_resource(snapshot)
        elif name == "vehicle.position":
            location = snapshot.get("L")
            feature = None
            if location is not None:
                units = "M" if datapaths.uses_miles(snapshot) else "K"
                feature = hal.position_feature(location, units=units,
                                               updated_at=location_at or 0.0)
            out[name] = feature
        elif name == "vehicle.telemetry":
            out[name] = hal.telemetry(snapshot)
        elif name == "vehicle.alerts":
            out[name] = [dict(a) for a in alerts]
    return out


def build_callback(monitor: Monitor, events: Sequence[Event], extended: Mapping[str, Any],
                   vehicle: VehicleInfo, *, monitor_id: str | None = None,
                   sent_at: float | None = None) -> CallbackRequest:
    """The POST for a batch of events: Query attributes in the URL, Header attributes as
    headers (both after ``$vin``/``$vehicleid`` substitution), the events and extended
    data as the JSON body."""
    parts = urllib.parse.urlsplit(monitor.callback.target)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    for attr in monitor.callback.attributes:
        value = substitute(attr.value, vehicle)
        if attr.type == "Query":
            query.append((attr.key, value))
        else:
            headers.append((attr.key, value))
    url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    body: dict[str, Any] = {
        "label": monitor.label,
        "callback": monitor.callback.name,
        "vehicleId": vehicle.vehicleid,
        "vin": vehicle.vin,
        "events": [event_json(e) for e in events],
        "extended": dict(extended),
    }
    if monitor_id is not None:
        body["monitorId"] = monitor_id
    if sent_at is not None:
        body["sentAt"] = hal.rfc3339(sent_at)
    return CallbackRequest(url, tuple(headers), body)


# --- persistence of state -------------------------------------------------------------


def state_to_json(state: MonitorState) -> dict[str, Any]:
    return {
        "lastValue": state.last_value,
        "lastFired": state.last_fired,
        "zones": {name: {"side": z.side, "crossed": z.crossed}
                  for name, z in sorted(state.zones.items())},
    }


def state_from_json(data: Mapping[str, Any]) -> MonitorState:
    zones = {name: ZoneState(z.get("side"), bool(z.get("crossed", False)))
             for name, z in dict(data.get("zones") or {}).items()}
    last_fired = data.get("lastFired")
    return MonitorState(data.get("lastValue"),
                        float(last_fired) if last_fired is not None else None, zones)


def event_to_json(event: Event) -> dict[str, Any]:
    """Lossless (unlike ``event_json``, which is for callback bodies): for stored batches."""
    return {"at": event.at, "triggers": dict(event.triggers), "data": dict(event.data),
            "position": list(event.position) if event.position is not None else None}


def event_from_json(data: Mapping[str, Any]) -> Event:
    position = data.get("position")
    return Event(float(data["at"]), dict(data.get("triggers") or {}),
                 dict(data.get("data") or {}),
                 (float(position[0]), float(position[1])) if position else None)


def batch_to_json(batch: Batch) -> dict[str, Any]:
    return {"events": [event_to_json(e) for e in batch.events], "openedAt": batch.opened_at}


def batch_from_json(data: Mapping[str, Any]) -> Batch:
    opened = data.get("openedAt")
    return Batch(tuple(event_from_json(e) for e in data.get("events") or ()),
                 float(opened) if opened is not None else None)
