"""The v4 routes, added to the REST route table by the server (``relay.endpoints``).

They are ``auth=False`` because ``relay.v4.web.endpoint`` authenticates them
(Bearer tokens, JSON errors); ``tag="v4"`` tells the dispatcher to leave the JSON
body to the handler and the OpenAPI builder to document v4's security and formats.
"""

from __future__ import annotations

import re
from typing import Any

from relay.http.routes import Param, Route
from relay.v4 import engine, hal, monitor_handlers, remote, resources
from relay.v4.engine import V4Engine
from relay.v4.web import PREFIX, endpoint

V = f"{PREFIX}/user/vehicles/{{vehicleid}}"


def v4_routes(v4: V4Engine | None) -> tuple[Route, ...]:
    """The v4 routes, served by ``v4`` (None: each answers 503)."""
    route, param = Route, Param
    paging = (
        param("indexRange", "items a-b (0-based, inclusive), e.g. 0-9; a reversed or longer "
              "than 100 range is served as the nearest page", pattern=r"^[0-9]{1,9}-[0-9]{0,9}$"),
        param("pageSize", "items per page", type="integer", minimum=1, maximum=100),
    )
    locale = param("locale", "language of server texts: en, fr or de (e.g. fr-FR)")

    def _r(method: str, path: str, handler: resources.Handler, summary: str, *,
           schema: str = "HalObject", params: tuple[Param, ...] = (),
           errors: tuple[int, ...] = (404,), body: dict[str, Any] | None = None) -> Route:
        return route(method, path, endpoint(handler, v4), summary, auth=False, tag="v4",
                     schema=schema, params=params, errors=errors, body=body)

    return (
        _r("GET", f"{PREFIX}/user", resources.user, "The account"),
        _r("GET", f"{PREFIX}/user/vehicles", resources.vehicles, "The account's vehicles",
           schema="HalCollection", params=paging),
        _r("GET", V, resources.vehicle, "One vehicle: id, VIN, brand and type, links"),
        _r("GET", f"{V}/status", resources.status,
           "Energy, autonomy, charging, doors, locks, ignition, 12 V (with units)"),
        _r("GET", f"{V}/lastPosition", resources.last_position,
           "Last position: a GeoJSON Feature (application/vnd.geo+json)", schema="GeoFeature"),
        _r("GET", f"{V}/alerts", resources.alert_list, "Car notifications and server alerts",
           schema="HalCollection", params=(*paging, locale)),
        _r("GET", f"{V}/alerts/{{alertid}}", resources.alert_one, "One alert",
           params=(locale,)),
        _r("GET", f"{V}/trips", resources.trip_list, "Trips derived from ignition and position",
           schema="HalCollection", params=paging),
        _r("GET", f"{V}/trips/{{tripid}}", resources.trip_one, "One trip"),
        _r("GET", f"{V}/telemetry", resources.telemetry,
           "Time series of recorded metrics", schema="HalCollection", params=(
               param("metrics", "comma-separated data paths (default: all recorded)",
                     pattern=_metrics_pattern()),
               param("since", "RFC 3339 start (default: 24 hours before until); clamped to "
                     "1970-9999", format="date-time"),
               param("until", "RFC 3339 end (default: now); before since: no points",
                     format="date-time"), *paging)),
        _r("GET", f"{V}/maintenance", resources.maintenance,
           "Distance and time to the next service (from F)"),
        _r("POST", f"{V}/remote", remote.remote_create,
           "Send a remote action; 202 with a pending action to poll", errors=(404, 501),
           body=hal.remote_request_schema()),
        _r("GET", f"{V}/remote/{{actionid}}", remote.remote_one, "A remote action and its outcome"),
        _r("GET", f"{V}/monitors", monitor_handlers.monitor_list, "The vehicle's monitors",
           schema="HalCollection", params=paging),
        _r("POST", f"{V}/monitors", monitor_handlers.monitor_create, "Create a monitor (201)"),
        _r("GET", f"{V}/monitors/{{monitorid}}", monitor_handlers.monitor_one, "One monitor"),
        _r("PUT", f"{V}/monitors/{{monitorid}}", monitor_handlers.monitor_replace,
           "Replace a monitor's definition"),
        _r("DELETE", f"{V}/monitors/{{monitorid}}", monitor_handlers.monitor_delete,
           "Delete a monitor", schema=""),
    )


def _metrics_pattern() -> str:
    one = "(?:" + "|".join(re.escape(p) for p in engine.TELEMETRY_PATHS) + ")"
    return f"^(?:{one}(?:,{one})*)?$"
