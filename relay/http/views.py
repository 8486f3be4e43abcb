"""Read endpoints, session cookie and vehicle (dis)connection: the public server's API."""

from __future__ import annotations

import logging
import time
from typing import Any

from relay.http import formatting
from relay.http.call import Call
from relay.http.messages import Response, json_response, text_response
from relay.params import since as parse_since

log = logging.getLogger("relay.http")

COOKIE_NAME = "ovmsapisession"


# --- session cookie ---------------------------------------------------------------------


async def cookie_login(call: Call) -> Response:
    assert call.login is not None
    sessions = call.api.sessions
    if call.session is not None:
        # A new login replaces the session the cookie named (the public server does too).
        sessions.end(call.session, "replaced by a new login")
    session = sessions.create(call.login.owner, call.login.permissions, call.request.client_host,
                              call.login.credential)
    await sessions.flush()  # cluster mode: stored before any node may see the cookie
    cookie = f"{COOKIE_NAME}={session.sid}; Path=/; HttpOnly".encode("ascii")
    return text_response(200, "Login ok", headers=((b"set-cookie", cookie),))


async def cookie_logout(call: Call) -> Response:
    if call.session is not None:
        call.api.sessions.end(call.session, "logout")
        await call.api.sessions.flush()
    return text_response(200, "Logout ok")


# --- vehicles ---------------------------------------------------------------------------


def _counts(call: Call, vehicleid: str) -> dict[str, Any]:
    hub = call.api.services.hub
    return {
        "v_net_connected": 1 if hub.car_connected(vehicleid) else 0,
        "v_apps_connected": hub.app_count(vehicleid),
        "v_btcs_connected": hub.batch_count(vehicleid),
    }


async def vehicles(call: Call) -> Response:
    ids = await call.api.services.store.owner_vehicles(call.owner)
    return json_response([{"id": vid, **_counts(call, vid)} for vid in ids])


async def vehicle_connect(call: Call) -> Response:
    vehicleid = await call.vehicle()
    session = call.app_session(create=True)
    assert session is not None
    first = call.api.sessions.connect(session, vehicleid)
    result = _counts(call, vehicleid)
    result["v_first_peer"] = 1 if first else 0
    latest = await call.api.services.store.latest(vehicleid)
    s = latest.get("S")
    if s is not None:
        formatting.stamp(s, "s", result, time.time())
    return json_response(result)


async def vehicle_disconnect(call: Call) -> Response:
    vehicleid = await call.vehicle()
    session = call.app_session(create=False)
    if session is not None:
        call.api.sessions.disconnect(session, vehicleid)
    return text_response(200, "Disconnect OK")


# --- stored messages ----------------------------------------------------------------------


async def protocol(call: Call) -> Response:
    vehicleid = await call.vehicle()
    store = call.api.services.store
    latest = await store.latest(vehicleid)
    record = await store.get_vehicle(vehicleid)
    ptoken = record.ptoken if record is not None else ""
    return json_response(formatting.protocol_rows(latest, ptoken))


async def status(call: Call) -> Response:
    vehicleid = await call.vehicle()
    return json_response(formatting.status(await call.api.services.store.latest(vehicleid)))


async def charge(call: Call) -> Response:
    vehicleid = await call.vehicle()
    return json_response(formatting.charge(await call.api.services.store.latest(vehicleid)))


async def location(call: Call) -> Response:
    vehicleid = await call.vehicle()
    return json_response(formatting.location(await call.api.services.store.latest(vehicleid)))


async def tpms(call: Call) -> Response:
    vehicleid = await call.vehicle()
    return json_response(formatting.tpms(await call.api.services.store.latest(vehicleid)))


async def lock_state(call: Call) -> Response:
    vehicleid = await call.vehicle()
    latest = await call.api.services.store.latest(vehicleid)
    return json_response(formatting.door_flags(latest, ("carlocked",)))


async def valet_state(call: Call) -> Response:
    vehicleid = await call.vehicle()
    latest = await call.api.services.store.latest(vehicleid)
    return json_response(formatting.door_flags(latest, ("valetmode",)))


# --- historical -------------------------------------------------------------------------


def _since(call: Call) -> int | None:
    text = call.param("since")
    return None if text is None else parse_since(text)


async def historical_summary(call: Call) -> Response:
    vehicleid = await call.vehicle()
    since = _since(call)
    rows = await call.api.services.store.historical_summary(vehicleid, since)
    return json_response([
        {
            "h_recordtype": r.htype,
            "distinctrecs": r.distinct_records,
            "totalrecs": r.total_records,
            "totalsize": str(r.total_size),  # a string on the public server (SQL SUM)
            "first": formatting.time_text(r.first),
            "last": formatting.time_text(r.last),
        }
        for r in rows
    ])


async def historical_records(call: Call) -> Response:
    vehicleid = await call.vehicle()
    since = _since(call)
    rows = await call.api.services.store.historical_records(vehicleid, call.args["type"], since)
    return json_response([
        {"h_timestamp": formatting.time_text(r.timestamp), "h_recordnumber": r.recordnumber,
         "h_data": r.data}
        for r in rows
    ])
