"""A monitor request body -> ``Monitor``, with an exact 400 for each invalid case,
and the monitor back to the same JSON (``monitor_to_json``, ``monitor_restore``).

Pure functions over the model in ``relay.v4.monitor_model``; what the fields mean
is in ``relay.v4.monitors`` and docs/api-v4.md.
"""

from __future__ import annotations

import difflib
import re
import urllib.parse
import zoneinfo
from collections.abc import Callable, Collection, Mapping
from typing import Any

from relay.v4 import datapaths, expr
from relay.v4.durations import parse_duration
from relay.v4.jsonparse import DuplicateKey, InvalidRequest, loads_strict
from relay.v4.monitor_model import (
    DAYS,
    EXTENDED,
    MAX_ATTRIBUTES,
    MAX_BATCH_SIZE,
    MAX_BATCH_WINDOW,
    MAX_LABEL,
    MAX_RADIUS_KM,
    MAX_REFRESH,
    MAX_RETRIES,
    MAX_RETRY_DELAY,
    MAX_TRIGGERS,
    MAX_URL,
    MAX_WINDOWS,
    OPS,
    POLICIES,
    READ_ONLY,
    BatchNotify,
    Callback,
    CallbackAttribute,
    Circle,
    Condition,
    DataTrigger,
    Monitor,
    RetryPolicy,
    TimeTrigger,
    TimeWindow,
    Trigger,
    ZoneTrigger,
)

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


def _member_object(obj: Mapping[str, Any], key: str, where: str,
                   allowed: Collection[str]) -> tuple[dict[str, Any], str]:
    """The required object ``obj[key]`` and where it is, for the messages below it."""
    inner = _at(where, key)
    if key not in obj:
        raise InvalidRequest(f"{inner}: required")
    return _object(obj[key], inner, allowed), inner


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
    circle, cwhere = _member_object(obj, "circle", where, ("radius", "center"))
    radius = _number(circle, "radius", cwhere)
    if not 0 < radius <= MAX_RADIUS_KM:
        raise InvalidRequest(f"{_at(cwhere, 'radius')}: must be more than 0 and at most "
                             f"{MAX_RADIUS_KM:g} (km), got {radius:g}")
    centre, centre_where = _member_object(circle, "center", cwhere, ("latitude", "longitude"))
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
