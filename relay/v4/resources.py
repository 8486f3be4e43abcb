"""Read-only v4 resources: user, vehicles, status, lastPosition, alerts, trips, telemetry,
maintenance. Each handler maps one route onto the pure builders in ``relay.v4``."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.messages import Firmware
from relay.params import rfc3339_seconds
from relay.store import StoredMessage
from relay.v4 import alerts, datapaths, engine, hal, persist, trips
from relay.v4.jsonparse import InvalidRequest
from relay.v4.web import (
    GEOJSON,
    PREFIX,
    V4Call,
    hal_response,
    not_found,
    vehicle_href,
)
from relay.webapi import Response

Handler = Callable[[V4Call], Awaitable[Response]]

# A telemetry answer holds at most this many points (all series together).
MAX_POINTS = 20_000
DEFAULT_SPAN = 86400.0

SUBRESOURCES = ("status", "lastPosition", "alerts", "trips", "telemetry", "maintenance",
                "monitors", "remote")


def _page(v4: V4Call, items: list[Any], name: str) -> dict[str, Any]:
    return hal.collection(items, name=name, path=v4.path, query=v4.query)


async def _readable(v4: V4Call, vehicleid: str) -> dict[str, StoredMessage]:
    latest = await v4.engine.store.latest(vehicleid)
    return {c: m for c, m in latest.items() if not m.paranoid}


# --- account and vehicles ------------------------------------------------------------


async def user(v4: V4Call) -> Response:
    """The account."""
    info = await persist.owner_info(v4.engine.store, v4.owner)
    if info is None:
        raise not_found("account not found")
    created = float(info["created"])
    body = {"id": info["name"], "name": info["name"], "permissions": v4.caller.permissions,
            "authenticatedBy": v4.caller.via}
    return hal_response(hal.single(body, href=f"{PREFIX}/user", created_at=created,
                                   updated_at=created,
                                   links={"vehicles": f"{PREFIX}/user/vehicles"}))


async def _vehicle_json(v4: V4Call, row: dict[str, Any]) -> dict[str, Any]:
    vehicleid = row["vehicleid"]
    latest = await _readable(v4, vehicleid)
    body: dict[str, Any] = {"id": vehicleid}
    firmware = latest.get("F")
    if firmware is not None:
        snapshot = {"F": firmware.data}
        vin = datapaths.value_of("vehicle.vin", snapshot)
        if vin:
            body["vin"] = vin
        version = datapaths.value_of("vehicle.firmware.version", snapshot)
        if version:
            body["firmware"] = version
        body.update(hal.vehicle_type_info(Firmware.from_data(firmware.data).vehicle_type))
    body["connected"] = v4.engine.car_connected(vehicleid)
    created = float(row["created"])
    updated = max([m.msgtime for m in latest.values()] + [created])
    return hal.single(body, href=vehicle_href(vehicleid), created_at=created,
                      updated_at=updated,
                      links={name: vehicle_href(vehicleid, name) for name in SUBRESOURCES})


async def vehicles(v4: V4Call) -> Response:
    """The caller's vehicles."""
    rows = await persist.vehicles(v4.engine.store, v4.owner)
    page = hal.parse_paging(v4.query)
    chosen = rows[page.start: page.end + 1]
    items = [await _vehicle_json(v4, row) for row in chosen]
    return hal_response(hal.collection_page(items, total=len(rows), page=page, name="vehicles",
                                            path=v4.path, query=v4.query))


async def vehicle(v4: V4Call) -> Response:
    record = await v4.vehicle()
    for row in await persist.vehicles(v4.engine.store, v4.owner):
        if row["vehicleid"] == record.vehicleid:
            return hal_response(await _vehicle_json(v4, row))
    raise not_found(f"vehicle {record.vehicleid} not found")


# --- status, position, maintenance ---------------------------------------------------


async def status(v4: V4Call) -> Response:
    """Energy, charging, doors, locks, ignition, ... from the latest S and D."""
    record = await v4.vehicle()
    latest = await _readable(v4, record.vehicleid)
    used = [m for c, m in latest.items() if c in ("S", "D", "L")]
    body = hal.status_resource({c: m.data for c, m in latest.items()})
    if not used or not body:
        raise not_found(f"no status received from {record.vehicleid} yet")
    times = [m.msgtime for m in used]
    return hal_response(hal.single(body, href=vehicle_href(record.vehicleid, "status"),
                                   created_at=min(times), updated_at=max(times)))


async def last_position(v4: V4Call) -> Response:
    """A GeoJSON Feature from the latest L with a position (404 before the first fix)."""
    record = await v4.vehicle()
    latest = await _readable(v4, record.vehicleid)
    location = latest.get("L")
    status_msg = latest.get("S")
    feature = None
    if location is not None:
        units = "M" if status_msg is not None and datapaths.uses_miles(
            {"S": status_msg.data}) else "K"
        feature = hal.position_feature(location.data, units=units, updated_at=location.msgtime)
    if feature is None or location is None:
        raise not_found(f"no position received from {record.vehicleid} yet")
    body = hal.single(feature, href=vehicle_href(record.vehicleid, "lastPosition"),
                      created_at=location.msgtime, updated_at=location.msgtime)
    return hal_response(body, content_type=GEOJSON)


async def maintenance(v4: V4Call) -> Response:
    """Distance and time to the next service, from the latest F."""
    record = await v4.vehicle()
    firmware = (await _readable(v4, record.vehicleid)).get("F")
    body = hal.maintenance_resource(firmware.data, received_at=firmware.msgtime) \
        if firmware is not None else {}
    if firmware is None or not body:
        raise not_found(f"no service information received from {record.vehicleid} yet")
    return hal_response(hal.single(body, href=vehicle_href(record.vehicleid, "maintenance"),
                                   created_at=firmware.msgtime, updated_at=firmware.msgtime))


# --- alerts ----------------------------------------------------------------------------


def _alert_item(vehicleid: str, htype: str, ts: int, number: int, data: str,
                locale: str | None) -> dict[str, Any] | None:
    alert = alerts.alert_from_record(htype, ts, vehicleid, data, locale)
    if alert is None:
        return None
    aid = alerts.alert_id(htype, ts, number)
    return hal.single({"id": aid, **alert}, href=vehicle_href(vehicleid, "alerts", aid),
                      created_at=ts, updated_at=ts)


async def alert_list(v4: V4Call) -> Response:
    """Car notifications and server alerts, newest first; ``locale`` picks the language of
    server texts."""
    record = await v4.vehicle()
    page = hal.parse_paging(v4.query)
    locale = v4.query.get("locale")
    items = []
    for htype, ts, number, data in await v4.engine.alert_records(record.vehicleid):
        item = _alert_item(record.vehicleid, htype, ts, number, data, locale)
        if item is not None:
            items.append(item)
    return hal_response(hal.collection_page(
        items[page.start: page.end + 1], total=len(items), page=page, name="alerts",
        path=v4.path, query=v4.query))


async def alert_one(v4: V4Call) -> Response:
    record = await v4.vehicle()
    ref = alerts.parse_alert_id(v4.args.get("alertid", ""))
    if ref is not None:
        for htype, ts, number, data in await v4.engine.alert_records(record.vehicleid):
            if (htype, ts, number) == (ref.htype, ref.ts, ref.recordnumber):
                item = _alert_item(record.vehicleid, htype, ts, number, data,
                                   v4.query.get("locale"))
                if item is not None:
                    return hal_response(item)
    raise not_found("no such alert")


# --- trips -----------------------------------------------------------------------------


def _trip_item(vehicleid: str, trip: trips.Trip, *, in_progress: bool) -> dict[str, Any]:
    tid = str(int(trip.start_at))
    body = {"id": tid, **trips.trip_json(trip), "inProgress": in_progress}
    return hal.single(body, href=vehicle_href(vehicleid, "trips", tid),
                      created_at=trip.start_at, updated_at=trip.end_at)


async def _trips(v4: V4Call, vehicleid: str) -> list[dict[str, Any]]:
    items = []
    state = v4.engine.trip_state(vehicleid)
    current = trips.current(state) if state is not None else None
    if current is not None:
        items.append(_trip_item(vehicleid, current, in_progress=True))
    for row in await persist.trips(v4.engine.store, vehicleid):
        items.append(_trip_item(vehicleid, trips.trip_from_json(row.trip), in_progress=False))
    return items


async def trip_list(v4: V4Call) -> Response:
    """Trips, newest first (the one in progress, if any, first of all)."""
    record = await v4.vehicle()
    return hal_response(_page(v4, await _trips(v4, record.vehicleid), "trips"))


async def trip_one(v4: V4Call) -> Response:
    record = await v4.vehicle()
    tid = v4.args.get("tripid", "")
    for item in await _trips(v4, record.vehicleid):
        if item["id"] == tid:
            return hal_response(item)
    raise not_found("no such trip")


# --- telemetry -------------------------------------------------------------------------


def _metrics(text: str | None) -> list[str]:
    if not text:
        return list(engine.TELEMETRY_PATHS)
    chosen = []
    for name in (n.strip() for n in text.split(",")):
        if name not in engine.TELEMETRY_PATHS:
            close = difflib.get_close_matches(name, engine.TELEMETRY_PATHS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidRequest(f"metrics: {name!r} is not recorded{hint} (recorded: "
                                 f"{', '.join(engine.TELEMETRY_PATHS)})")
        if name not in chosen:
            chosen.append(name)
    return chosen


async def telemetry(v4: V4Call) -> Response:
    """Time series of recorded metrics between ``since`` and ``until`` (default: the last
    24 hours), one collection item per metric."""
    record = await v4.vehicle()
    now = v4.engine.clock.wall()
    until = rfc3339_seconds(v4.query["until"], "until") if "until" in v4.query else now
    since = rfc3339_seconds(v4.query["since"], "since") if "since" in v4.query \
        else max(0.0, until - DEFAULT_SPAN)
    # A window that ends before it starts holds no points: an empty answer, not an error.
    until = max(since, until)
    metrics = _metrics(v4.query.get("metrics"))
    rows = await persist.samples(v4.engine.store, record.vehicleid, metrics,
                                 _floor(since), _floor(until), MAX_POINTS + 1)
    truncated = len(rows) > MAX_POINTS
    points: dict[str, list[dict[str, Any]]] = {m: [] for m in metrics}
    for row in rows[:MAX_POINTS]:
        spec = datapaths.PATHS[row.metric]
        value: Any = bool(row.value) if spec.kind == "boolean" else hal.json_number(row.value)
        points[row.metric].append({"at": hal.rfc3339(row.ts), "value": value})
    items = []
    for metric in metrics:
        spec = datapaths.PATHS[metric]
        item: dict[str, Any] = {"path": metric, "points": points[metric]}
        if spec.unit:
            item["unit"] = spec.unit
        items.append(item)
    body = _page(v4, items, "telemetry")
    body.update(since=hal.rfc3339(since), until=hal.rfc3339(until), truncated=truncated)
    return hal_response(body)


def _floor(value: float) -> int:
    return int(value // 1)
