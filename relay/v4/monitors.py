"""Monitors: a client's standing question about a car, answered by calling it back.

Everything here is pure: ``relay.v4.monitor_parse`` validates a request body
into a ``Monitor`` (``relay.v4.monitor_model``); ``evaluate`` takes the previous
``MonitorState``, the vehicle's latest messages and the time, and returns the
next state plus the events to deliver; the batcher and retry schedule say *when*
to send; ``build_callback`` says *what* to send. The HTTP and store layers own
the clock, the sockets and the database, and call these functions.

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
import json
import math
import urllib.parse
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from relay.v4 import datapaths, expr, hal
from relay.v4.monitor_model import (
    BatchNotify,
    DataTrigger,
    Monitor,
    RetryPolicy,
    TimeTrigger,
    ZoneTrigger,
)

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
