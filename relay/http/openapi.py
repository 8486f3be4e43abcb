"""The OpenAPI 3.1 document of the whole API, built from the route table."""

from __future__ import annotations

import re
from typing import Any

from relay import __version__
from relay.http import formatting
from relay.http.routes import Route

_STR_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}


def _message_object(values: dict[str, int], flags: dict[str, tuple[int, int]],
                    stamps: tuple[str, ...]) -> dict[str, Any]:
    props: dict[str, Any] = {name: _STR_OR_NULL for name in values}
    props.update({name: {"type": "integer", "description": "masked bitfield value"}
                  for name in flags})
    for code in stamps:
        props[f"m_msgtime_{code}"] = {"type": "string", "description": "UTC time of the message"}
        props[f"m_msgage_{code}"] = {"type": "integer", "description": "seconds since then"}
    return {"type": "object", "properties": dict(sorted(props.items()))}


def _tpms_object() -> dict[str, Any]:
    """W's fields are the car's strings; from Y, ``<wheel>_pressure`` is psi computed by the
    server (a number), and Y's usual wheel names (fl, fr, rl, rr) give the same keys."""
    schema = _message_object(formatting.TPMS_W, {}, ("w", "y"))
    for name in formatting.TPMS_W:
        if name.endswith("_pressure"):
            schema["properties"][name] = {
                "type": ["string", "number", "null"],
                "description": "psi: the car's text from W, a number computed from Y's kPa"}
    return schema


def _list_of(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "properties": props}}


_COUNTS = {"v_net_connected": _INT, "v_apps_connected": _INT, "v_btcs_connected": _INT}
_TOKEN = {"owner": _STR, "token": _STR, "application": _STR, "purpose": _STR, "permit": _STR}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Status": _message_object({**formatting.STATUS_S, **formatting.STATUS_D},
                              formatting.STATUS_D_FLAGS, ("s", "d")),
    "Charge": _message_object({**formatting.CHARGE_S, **formatting.CHARGE_D},
                              formatting.CHARGE_D_FLAGS, ("s", "d")),
    "Location": _message_object(formatting.LOCATION_L, {}, ("l",)),
    "Tpms": {**_tpms_object(), "additionalProperties": {
        "description": "per wheel from Y: <wheel>_pressure_kpa, _pressure (psi, a number), "
                       "_temperature, _health, _alert; stale_<kind>"}},
    "Flags": {"type": "object", "description": "the asked flag (masked value) and the D "
              "message's m_msgtime_d (UTC text) and m_msgage_d (seconds)",
              "properties": {"carlocked": _INT, "valetmode": _INT,
                             "m_msgtime_d": _STR, "m_msgage_d": _INT}},
    "VehicleList": _list_of({"id": _STR, **_COUNTS}),
    "VehicleConnect": {"type": "object", "properties": {
        **_COUNTS, "v_first_peer": _INT, "m_msgtime_s": _STR, "m_msgage_s": _INT}},
    "ProtocolList": _list_of({"m_code": _STR, "m_msg": _STR, "m_msgtime": _STR,
                              "m_paranoid": _INT, "m_ptoken": _STR}),
    "HistoricalSummary": _list_of({"h_recordtype": _STR, "distinctrecs": _INT,
                                   "totalrecs": _INT, "totalsize": _STR, "first": _STR,
                                   "last": _STR}),
    "HistoricalRecords": _list_of({"h_timestamp": _STR, "h_recordnumber": _INT,
                                   "h_data": _STR}),
    "TokenList": _list_of({**_TOKEN, "token": {"type": "string",
                                               "description": "SHA-256 digest of the token"},
                           "created": _STR, "lastused": _STR_OR_NULL}),
    "NewToken": {"type": "object", "properties": _TOKEN},
    "DeletedToken": {"type": "object", "properties": {"owner": _STR, "token": _STR}},
    "CommandResult": {"type": "object", "properties": {
        "command": _INT, "result": _INT, "text": _STR}},
    "CommandLines": {"type": "object", "properties": {
        "command": _INT, "result": _INT, "lines": {"type": "array", "items": _STR}}},
    "FeatureList": _list_of({"feature": _INT, "value": _STR}),
    "ParameterList": _list_of({"parameter": _INT, "value": _STR}),
}

_ERRORS = {
    400: "Bad request (the text says which parameter)",
    401: "Authentication failed",
    403: "Forbidden: another owner's or unknown vehicle, or insufficient rights",
    404: "Not found",
    409: "Vehicle not connected (or disconnected before answering)",
    422: "The car answered: command failed (its text)",
    429: "Too many requests from this address",
    502: "Paranoid (end-to-end encrypted) data cannot be decoded by the server",
    504: "No answer from the car in time",
}
_TEXT = {"text/plain": {"schema": _STR}}


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    for p in route.params:
        schema: dict[str, Any] = {"type": p.type}
        if p.enum:
            schema["enum"] = list(p.enum)
        if p.minimum is not None:
            schema["minimum"] = p.minimum
        if p.maximum is not None:
            schema["maximum"] = p.maximum
        if p.pattern:
            schema["pattern"] = p.pattern
        if p.format:
            schema["format"] = p.format
        params.append({"name": p.name, "in": "query", "required": p.required,
                       "description": p.description, "schema": schema})
    ok = route.ok or (201 if route.method == "POST" and route.path == "/api/token" else 200)
    api = route.json_api
    responses: dict[str, Any] = {}
    if api is not None:
        media = route.media_type or api.media_type
        responses[str(ok)] = {"description": "OK"} if not route.schema else {
            "description": "OK",
            "content": {media: {"schema": {"$ref": f"#/components/schemas/{route.schema}"}}}}
    elif route.answer == "json":
        schema_ref = ({"$ref": f"#/components/schemas/{route.schema}"} if route.schema
                      else {"type": "object"})
        responses[str(ok)] = {"description": "OK",
                              "content": {"application/json": {"schema": schema_ref}}}
    elif route.answer == "text":
        responses[str(ok)] = {"description": "OK", "content": _TEXT}
    else:
        responses[str(ok)] = {"description": "Allowed (empty body)"}
    statuses = set(route.statuses) | {400, 429}
    if route.auth or api is not None:
        statuses |= {401, 403}
    for status in sorted(statuses):
        if api is not None:
            responses[str(status)] = {"description": _ERRORS.get(status, "Error"), "content": {
                "application/json": {"schema": {
                    "$ref": f"#/components/schemas/{api.error_schema}"}}}}
            continue
        text = _ERRORS.get(status, "Error")
        if route.answer == "empty" and status == 403:
            text = "Refused (empty body)"
        responses[str(status)] = {"description": text, "content": _TEXT}
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": _operation_id(route),
        "tags": [route.tag],
        "parameters": params,
        "responses": responses,
    }
    if api is not None:
        op["security"] = [{"bearer": []}, {"cookie": []}, {"username": [], "password": []}]
        op["description"] = api.description
    elif route.auth:
        op["security"] = [{"cookie": []}, {"username": [], "password": []}]
    else:
        op["security"] = []
    if route.rights:
        op["description"] = "Needs one of the rights: " + ", ".join(route.rights) + " (or *)."
    if route.method in ("PUT", "POST") and api is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": route.body or {"type": "object"}}}}
    elif route.method in ("PUT", "POST") and route.params:
        op["description"] = (op.get("description", "") + " Parameters may also be sent as "
                             "a form (application/x-www-form-urlencoded or multipart/form-"
                             "data) or JSON object body; the query string's value wins "
                             "over the body's.").strip()
    return op


def _operation_id(route: Route) -> str:
    words = [w.strip("{}") for w in route.path.strip("/").split("/")]
    return route.method.lower() + "_" + "_".join(w.replace(".", "_") for w in words)


def build(routes: tuple[Route, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas = dict(SCHEMAS)
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
        if route.json_api is not None:
            schemas.update(route.json_api.schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ovms-relay REST API",
            "version": __version__,
            "description": "The OVMS server REST API (compatible with the public server), "
                           "plus vehicle control. Every answer carries "
                           "Access-Control-Allow-Origin: *; JSON is canonical (sorted keys) "
                           "with a trailing newline. See docs/rest-api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": "ovmsapisession"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token (API v4 only)"},
                "username": {"type": "apiKey", "in": "query", "name": "username"},
                "password": {"type": "apiKey", "in": "query", "name": "password",
                             "description": "the account password or an API token"},
            },
        },
    }
