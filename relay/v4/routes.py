"""API v4 as a JSON API (``relay.webapi.JsonApi``): its routes and their documentation.

The server serves it next to the REST API (``relay.endpoints``), authenticating
each caller before ``relay.v4.web.endpoint`` checks the v4 right.
"""

from __future__ import annotations

import re
from typing import Any

from relay.v4 import engine, hal, monitor_handlers, remote, resources
from relay.v4.engine import V4Engine
from relay.v4.web import GEOJSON, HAL, PREFIX, endpoint
from relay.webapi import ApiRoute, JsonApi, Param

V = f"{PREFIX}/user/vehicles/{{vehicleid}}"

_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}
# HAL objects and pages; clients must ignore unknown members.
SCHEMAS: dict[str, Any] = {
    "HalObject": {"type": "object", "required": ["_links", "createdAt", "updatedAt",
                                                 "_embedded"],
                  "properties": {"_links": {"type": "object"}, "createdAt": _STR,
                                 "updatedAt": _STR, "_embedded": {"type": "object"}}},
    "HalCollection": {"type": "object", "required": ["_links", "total", "currentPage",
                                                     "totalPage", "_embedded"],
                      "properties": {"_links": {"type": "object"}, "total": _INT,
                                     "currentPage": _INT, "totalPage": _INT,
                                     "_embedded": {"type": "object"}}},
    "GeoFeature": {"type": "object", "description": "GeoJSON Feature (RFC 7946), Point "
                   "[longitude, latitude, altitude?], plus the HAL members",
                   "properties": {"type": {"const": "Feature"}, "geometry": {"type": "object"},
                                  "properties": {"type": "object"}}},
    "V4Error": {"type": "object", "properties": {"code": _INT, "message": _STR}},
}


def v4_api(v4: V4Engine | None) -> JsonApi:
    """API v4, served by ``v4`` (None: each call answers 503)."""
    return JsonApi(v4_routes(v4), tag="v4", media_type=HAL.decode(), schemas=SCHEMAS,
                   error_schema="V4Error",
                   description="API v4 (docs/api-v4.md): needs the v4 right (or *). "
                               "Errors are JSON {code, message}.")


def v4_routes(v4: V4Engine | None) -> tuple[ApiRoute, ...]:
    """The v4 routes, served by ``v4`` (None: each answers 503)."""
    param = Param
    paging = (
        param("indexRange", "items a-b (0-based, inclusive), e.g. 0-9; a reversed or longer "
              "than 100 range is served as the nearest page", pattern=r"^[0-9]{1,9}-[0-9]{0,9}$"),
        param("pageSize", "items per page", type="integer", minimum=1, maximum=100),
    )
    locale = param("locale", "language of server texts: en, fr or de (e.g. fr-FR)")

    def _r(method: str, path: str, handler: resources.Handler, summary: str, *,
           schema: str = "HalObject", params: tuple[Param, ...] = (),
           errors: tuple[int, ...] = (404,), body: dict[str, Any] | None = None,
           ok: int = 200) -> ApiRoute:
        media = GEOJSON.decode() if schema == "GeoFeature" else ""
        return ApiRoute(method, path, endpoint(handler, v4), summary, schema=schema,
                        params=params, errors=errors, body=body, ok=ok, media_type=media)

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
           body=hal.remote_request_schema(), ok=202),
        _r("GET", f"{V}/remote/{{actionid}}", remote.remote_one, "A remote action and its outcome"),
        _r("GET", f"{V}/monitors", monitor_handlers.monitor_list, "The vehicle's monitors",
           schema="HalCollection", params=paging),
        _r("POST", f"{V}/monitors", monitor_handlers.monitor_create, "Create a monitor (201)",
           ok=201),
        _r("GET", f"{V}/monitors/{{monitorid}}", monitor_handlers.monitor_one, "One monitor"),
        _r("PUT", f"{V}/monitors/{{monitorid}}", monitor_handlers.monitor_replace,
           "Replace a monitor's definition"),
        _r("DELETE", f"{V}/monitors/{{monitorid}}", monitor_handlers.monitor_delete,
           "Delete a monitor", schema="", ok=204),
    )


def _metrics_pattern() -> str:
    one = "(?:" + "|".join(re.escape(p) for p in engine.TELEMETRY_PATHS) + ")"
    return f"^(?:{one}(?:,{one})*)?$"
