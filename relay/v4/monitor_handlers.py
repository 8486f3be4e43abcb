"""``/monitors``: the monitors a client creates on a vehicle (relay.v4.monitors), kept and
evaluated by the engine (relay.v4.engine)."""

from __future__ import annotations

import json
from typing import Any

from relay.outbound.urlpolicy import Unresolvable, UrlRefused
from relay.v4 import hal, monitor_model, monitor_parse
from relay.v4.engine import MonitorEntry
from relay.v4.jsonparse import InvalidRequest
from relay.v4.web import V4Call, hal_response, not_found, vehicle_href
from relay.webapi import Response


def _monitor_item(entry: MonitorEntry) -> dict[str, Any]:
    body = {"id": entry.monitorid, **monitor_parse.monitor_to_json(entry.monitor),
            "status": "active"}
    return hal.single(body, href=vehicle_href(entry.vehicleid, "monitors", entry.monitorid),
                      created_at=entry.created, updated_at=entry.updated)


async def _parse(v4: V4Call) -> monitor_model.Monitor:
    """Validate a monitor body; the callback target must pass the outbound allow-list.

    The allow-list check resolves DNS, so it runs first (async) and ``parse_monitor``
    gets its answer; a name that does not resolve now is accepted and checked again
    before every delivery, as for push webhooks.
    """
    target = _target(v4.body)
    allowed = True
    if target is not None:
        try:
            await v4.engine.policy.check(target)
        except UrlRefused:
            allowed = False
        except Unresolvable:
            pass
    return monitor_parse.parse_monitor(v4.body, url_allowed=lambda url: allowed and url == target)


def _target(body: bytes) -> str | None:
    try:
        data = json.loads(body)
        target = data["subscribeParam"]["callback"]["target"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return None
    return target if isinstance(target, str) else None


async def monitor_create(v4: V4Call) -> Response:
    record = await v4.vehicle()
    if not v4.body:
        raise InvalidRequest("body: a monitor (JSON) is required")
    monitor = await _parse(v4)
    entry = await v4.engine.put_monitor(record.vehicleid, v4.owner, monitor)
    item = _monitor_item(entry)
    return hal_response(item, 201, headers=(
        (b"location", item["_links"]["self"]["href"].encode("ascii")),))


async def monitor_list(v4: V4Call) -> Response:
    record = await v4.vehicle()
    items = [_monitor_item(e) for e in v4.engine.monitors_of(record.vehicleid)]
    return hal_response(hal.collection(items, name="monitors", path=v4.path,
                                       query=v4.query))


async def _entry(v4: V4Call) -> MonitorEntry:
    record = await v4.vehicle()
    entry = v4.engine.monitor(record.vehicleid, v4.args.get("monitorid", ""))
    if entry is None:
        raise not_found("no such monitor")
    return entry


async def monitor_one(v4: V4Call) -> Response:
    return hal_response(_monitor_item(await _entry(v4)))


async def monitor_replace(v4: V4Call) -> Response:
    """Replace a monitor's definition (its state starts afresh)."""
    entry = await _entry(v4)
    monitor = await _parse(v4)
    updated = await v4.engine.put_monitor(entry.vehicleid, v4.owner, monitor, entry.monitorid)
    return hal_response(_monitor_item(updated))


async def monitor_delete(v4: V4Call) -> Response:
    entry = await _entry(v4)
    await v4.engine.delete_monitor(entry)
    return Response(204)
