"""Every endpoint in one table: path, method, rights, handler and its documentation.

The dispatcher and the OpenAPI document are both built from this table, so
they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import attrs

from relay import permits
from relay.http import control, health, metricsview, mqapi, tokens, views
from relay.http.call import Call
from relay.http.control import FIELD_PATTERN, OPTIONAL_TEXT_PATTERN, TEXT_PATTERN
from relay.http.messages import Response
from relay.params import SINCE_PATTERN
from relay.webapi import JsonApi, Param

__all__ = ["CONTROL", "ROUTES", "TOKEN_ADMIN", "Handler", "Match", "Param", "Route",
           "RouteTable"]

Handler = Callable[[Call], Awaitable[Response]]

# What a command to the car can end in besides success (relay.http.control).
CONTROL_ERRORS = (409, 422, 504)
# Rights (relay.permits) of the control endpoints: they move real hardware (locks, charging).
CONTROL = permits.CONTROL
TOKEN_ADMIN = permits.TOKEN_ADMIN


@attrs.frozen
class Route:
    method: str
    path: str  # template, e.g. /api/status/{vehicleid}
    handler: Handler
    summary: str
    right: str = permits.READ  # what the caller must be permitted (relay.permits)
    auth: bool = True  # False: public, or authenticated by its own form fields (mqapi)
    params: tuple[Param, ...] = ()
    answer: str = "json"  # json, text or empty (status code only)
    errors: tuple[int, ...] = ()  # statuses beyond the common 400/401/403/429
    schema: str = ""  # name of the response schema in the OpenAPI document
    tag: str = "read"
    # A JSON API's route (relay.http.jsonapi): the body is the handler's JSON document.
    json_api: JsonApi | None = None
    body: dict[str, Any] | None = None  # JSON schema of its request body (None: any object)
    ok: int = 0  # its status of success (0: the REST API's 200, or 201 for a new token)
    media_type: str = ""  # of its successful answers

    @property
    def rights(self) -> tuple[str, ...]:
        """The permit words that grant this route (besides ``*``); () for any login."""
        return tuple(sorted(permits.GRANTED_BY[self.right]))

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))

    @property
    def statuses(self) -> tuple[int, ...]:
        """Documented answers besides 200/201 and the common 400/401/403/404/429."""
        return self.errors + (CONTROL_ERRORS if self.tag == "control" else ())


_PIN = Param("pin", "PIN the car module expects for this command", required=True,
             pattern=FIELD_PATTERN)
_SINCE = Param("since", "only records after this UTC time 'YYYY-MM-DD[ HH:MM:SS]' or unix "
               "second (earlier than 1970: all)", pattern=SINCE_PATTERN)

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/cookie", views.cookie_login, "Log in: new session cookie",
          right=permits.SESSION, answer="text", tag="session"),
    Route("DELETE", "/api/cookie", views.cookie_logout,
          "Log out: end the session and its vehicle registrations",
          right=permits.SESSION, answer="text", tag="session"),
    Route("GET", "/api/token", tokens.token_list, "List the owner's API tokens",
          right=TOKEN_ADMIN, schema="TokenList", tag="tokens"),
    Route("POST", "/api/token", tokens.token_create, "Create an API token (shown once)",
          right=TOKEN_ADMIN, schema="NewToken", tag="tokens", params=(
              Param("application", "what uses the token", pattern=OPTIONAL_TEXT_PATTERN),
              Param("purpose", "why", pattern=OPTIONAL_TEXT_PATTERN),
              Param("permit", "comma-separated rights (default auth)",
                    pattern=OPTIONAL_TEXT_PATTERN))),
    Route("DELETE", "/api/token/{token}", tokens.token_delete,
          "Delete an API token (the token or its listed digest)",
          right=TOKEN_ADMIN, schema="DeletedToken", tag="tokens"),
    Route("GET", "/api/vehicles", views.vehicles, "The owner's vehicles and who is connected",
          schema="VehicleList"),
    Route("GET", "/api/vehicle/{vehicleid}", views.vehicle_connect,
          "Connect to the vehicle as an app (the car switches to fast reporting)",
          schema="VehicleConnect"),
    Route("DELETE", "/api/vehicle/{vehicleid}", views.vehicle_disconnect,
          "Drop this session's connection to the vehicle", answer="text"),
    Route("GET", "/api/protocol/{vehicleid}", views.protocol,
          "The vehicle's stored latest messages, raw", schema="ProtocolList"),
    Route("GET", "/api/status/{vehicleid}", views.status, "Vehicle status (from S and D)",
          schema="Status", errors=(502,)),
    Route("GET", "/api/charge/{vehicleid}", views.charge, "Charge status (from S and D)",
          schema="Charge", errors=(502,)),
    Route("GET", "/api/location/{vehicleid}", views.location, "Location (from L)",
          schema="Location", errors=(502,)),
    Route("GET", "/api/tpms/{vehicleid}", views.tpms, "Tyre pressures (from Y, else W)",
          schema="Tpms", errors=(502,)),
    Route("GET", "/api/historical/{vehicleid}", views.historical_summary,
          "Historical data summary per record type", schema="HistoricalSummary",
          params=(_SINCE,)),
    Route("GET", "/api/historical/{vehicleid}/{type}", views.historical_records,
          "Historical records of one type", schema="HistoricalRecords",
          params=(_SINCE,)),
    Route("GET", "/api/lock/{vehicleid}", views.lock_state, "Lock state (from D)",
          schema="Flags", errors=(502,)),
    Route("GET", "/api/valet/{vehicleid}", views.valet_state, "Valet mode state (from D)",
          schema="Flags", errors=(502,)),
    # --- control: a command to the car, answered by the car -------------------------------
    Route("PUT", "/api/charge/{vehicleid}", control.charge_put,
          "Start charging (11), stop (12, action=stop), set mode (10), current (15) or both (16)",
          right=CONTROL, tag="control", schema="CommandResult", params=(
              Param("action", "start (default) or stop", enum=("start", "stop")),
              Param("mode", "charge mode",
                    enum=("standard", "storage", "range", "performance")),
              Param("current", "charge current in A", type="integer", minimum=1, maximum=999))),
    Route("DELETE", "/api/charge/{vehicleid}", control.charge_delete, "Stop charging (12)",
          right=CONTROL, tag="control", schema="CommandResult"),
    Route("PUT", "/api/lock/{vehicleid}", control.lock, "Lock the car (20)",
          right=CONTROL, tag="control", schema="CommandResult", params=(_PIN,)),
    Route("DELETE", "/api/lock/{vehicleid}", control.unlock, "Unlock the car (22)",
          right=CONTROL, tag="control", schema="CommandResult", params=(_PIN,)),
    Route("PUT", "/api/valet/{vehicleid}", control.valet_on, "Valet mode on (21)",
          right=CONTROL, tag="control", schema="CommandResult", params=(_PIN,)),
    Route("DELETE", "/api/valet/{vehicleid}", control.valet_off, "Valet mode off (23)",
          right=CONTROL, tag="control", schema="CommandResult", params=(_PIN,)),
    Route("PUT", "/api/homelink/{vehicleid}", control.homelink, "Activate homelink (24)",
          right=CONTROL, tag="control", schema="CommandResult", params=(
              Param("button", "homelink button", type="integer", required=True, minimum=0,
                    maximum=2),)),
    Route("PUT", "/api/reset/{vehicleid}", control.reset, "Reboot the car module (5)",
          right=CONTROL, tag="control", schema="CommandResult"),
    Route("GET", "/api/features/{vehicleid}", control.features_get,
          "The module's feature list (1)", right=CONTROL, tag="control",
          schema="FeatureList"),
    Route("PUT", "/api/features/{vehicleid}", control.features_put, "Set a feature (2)",
          right=CONTROL, tag="control", schema="CommandResult", params=(
              Param("feature", "feature number", type="integer", required=True, minimum=0,
                    maximum=99),
              Param("value", "new value", required=True, pattern=TEXT_PATTERN))),
    Route("GET", "/api/parameters/{vehicleid}", control.parameters_get,
          "The module's parameter list (3)", right=CONTROL, tag="control",
          schema="ParameterList"),
    Route("PUT", "/api/parameters/{vehicleid}", control.parameters_put, "Set a parameter (4)",
          right=CONTROL, tag="control", schema="CommandResult", params=(
              Param("parameter", "parameter number", type="integer", required=True, minimum=0,
                    maximum=99),
              Param("value", "new value", required=True, pattern=TEXT_PATTERN))),
    Route("POST", "/api/command/{vehicleid}", control.command,
          "Any v2 command; 30-32 are answered by the server", right=CONTROL, tag="control",
          schema="CommandLines", params=(
              Param("command", "command number", type="integer", required=True, minimum=0,
                    maximum=999999),
              Param("parameters", "the command's comma-separated parameters (31: [since], "
                    "32: type[,since])", pattern=OPTIONAL_TEXT_PATTERN))),
    # --- health checks (load balancers, supervisors) ---------------------------------------
    Route("GET", "/healthz", health.healthz, "Liveness: the process answers",
          auth=False, answer="text", tag="health"),
    Route("GET", "/readyz", health.readyz,
          "Readiness: the store accepts writes (503 while they fail)",
          auth=False, answer="text", tag="health", errors=(503,)),
    Route("GET", "/metrics", metricsview.metrics,
          "Prometheus metrics (only from addresses in metrics_allow)",
          auth=False, answer="text", tag="health", errors=(403,)),
    # --- Mosquitto auth backend -------------------------------------------------------------
    Route("POST", "/mqapi/auth", mqapi.auth, "MQTT login check (v3 or mqtt right)",
          auth=False, answer="empty", tag="mqapi", errors=(403,), params=(
              Param("username", "account name"), Param("password", "password or API token"))),
    Route("POST", "/mqapi/superuser", mqapi.superuser, "Is this the MQTT superuser?",
          auth=False, answer="empty", tag="mqapi", errors=(403, 404),
          params=(Param("username", "account name"),)),
    Route("POST", "/mqapi/acl", mqapi.acl, "May this user use this topic?",
          auth=False, answer="empty", tag="mqapi", errors=(403,), params=(
              Param("username", "account name"), Param("topic", "MQTT topic"),
              Param("clientid", "MQTT client id"), Param("acc", "access type"))),
)


@attrs.frozen
class Match:
    route: Route
    args: dict[str, str]


class RouteTable:
    """Path matching: literal segments must equal, ``{name}`` segments capture one segment."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        # Each route's segments split once here, not per request (``Route.segments``
        # splits its template on every call).
        self._by_shape: dict[tuple[str, int], list[tuple[Route, tuple[str, ...]]]] = {}
        for route in routes:
            segments = route.segments
            self._by_shape.setdefault((route.method, len(segments)), []).append(
                (route, segments))

    def methods(self, path: str) -> tuple[str, ...]:
        """The methods some route answers on ``path`` (for a 405's Allow header)."""
        raw = _split(path)
        return tuple(sorted({r.method for r in self.routes
                             if len(r.segments) == len(raw)
                             and _args(r.segments, raw) is not None}))

    def match(self, method: str, path: str) -> Match | None:
        raw = _split(path)
        for route, segments in self._by_shape.get((method, len(raw)), ()):
            args = _args(segments, raw)
            if args is not None:
                return Match(route, args)
        return None


def _split(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def _args(segments: tuple[str, ...], raw: list[str]) -> dict[str, str] | None:
    args: dict[str, str] = {}
    for pattern, segment in zip(segments, raw, strict=True):
        if pattern[0] == "{":
            value = unquote(segment, errors="replace")
            if not value:
                return None
            args[pattern[1:-1]] = value
        elif pattern != segment:
            return None
    return args
