"""``/remote``: remote actions, sent to the car through the command service; the
client polls the pending action (``/monitors`` are relay.v4.monitor_handlers)."""

from __future__ import annotations

from relay.v4 import hal
from relay.v4.actions import action_json
from relay.v4.web import V4Call, hal_response, not_found, vehicle_href
from relay.webapi import Response


async def remote_create(v4: V4Call) -> Response:
    """Send an action to the car; 202 with a pending remote-action resource to poll."""
    record = await v4.vehicle()
    action, pin = hal.parse_remote_request(v4.body)
    command = hal.remote_command(action, pin=pin)  # InvalidRequest / NotSupported
    number = int(command.split(",", 1)[0])
    now = v4.engine.clock.wall()
    item = v4.engine.actions.new(record.vehicleid, v4.owner, action, number, now)
    v4.engine.start_action(item, command)
    href = vehicle_href(record.vehicleid, "remote", item.actionid)
    return hal_response(action_json(item, href), 202,
                        headers=((b"location", href.encode("ascii")),))


async def remote_one(v4: V4Call) -> Response:
    record = await v4.vehicle()
    actionid = v4.args.get("actionid", "")
    item = v4.engine.actions.get(actionid, v4.engine.clock.wall())
    if item is None or item.vehicleid != record.vehicleid:
        raise not_found("no such remote action (finished actions are kept for a while "
                        "only)")
    return hal_response(action_json(item, vehicle_href(record.vehicleid, "remote",
                                                       actionid)))
