"""Building blocks of v4 answers: HAL objects and pages, times, GeoJSON, status, actions, alerts.

Everything here returns plain JSON-ready dicts; the HTTP layer serialises them
(sorted keys) and picks the status code. Builders of resource bodies
(``position_feature``, ``status_resource``, ...) return the bare resource;
``single`` adds the members every v4 object has (``_links.self.href``,
``createdAt``, ``updatedAt``, ``_embedded``).
"""

from __future__ import annotations

import datetime as dt
import math
import string
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from protocol.messages import Firmware, Location
from relay.params import ParamError, rfc3339_seconds
from relay.v4 import datapaths
from relay.v4.jsonparse import InvalidRequest, NotSupported, loads_strict

# --- times ----------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    """Unix seconds as RFC 3339 UTC, whole seconds: ``2026-03-29T01:30:00Z``."""
    return dt.datetime.fromtimestamp(int(ts // 1), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str, *, field: str = "time") -> float:
    """RFC 3339 text (``Z`` or a numeric offset) to unix seconds (``relay.params.rfc3339``,
    clamped to 1970-9999); InvalidRequest otherwise."""
    try:
        return rfc3339_seconds(text, field)
    except ParamError as exc:
        raise InvalidRequest(str(exc)) from None


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body of every v4 error answer."""
    return {"code": status, "message": message}


# --- HAL single objects ---------------------------------------------------------------


def single(
    resource: Mapping[str, Any],
    *,
    href: str,
    created_at: float,
    updated_at: float,
    embedded: Mapping[str, Any] | None = None,
    links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A v4 single object: the resource plus ``_links``, ``createdAt``, ``updatedAt``,
    ``_embedded``.

    ``links`` adds further relations (name -> href) beside ``self``.
    """
    out = dict(resource)
    all_links: dict[str, Any] = {"self": {"href": href}}
    for rel, target in (links or {}).items():
        all_links[rel] = {"href": target}
    out["_links"] = all_links
    out["createdAt"] = rfc3339(created_at)
    out["updatedAt"] = rfc3339(updated_at)
    out["_embedded"] = dict(embedded or {})
    return out


# --- HAL collections ------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 10
# Pages are built in memory from at most this many items, whatever the client asks.
MAX_PAGE_SIZE = 100
_MAX_INDEX = 10**9


@attrs.frozen
class PageRequest:
    """Items ``start`` .. ``start + size - 1`` (0-based) of a collection."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size - 1


def _index(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidRequest(f"{what}: {text!r} is not a non-negative integer")
    return int(text)


def parse_paging(
    query: Mapping[str, str],
    *,
    default_size: int = DEFAULT_PAGE_SIZE,
    max_size: int = MAX_PAGE_SIZE,
) -> PageRequest:
    """``indexRange=a-b`` (0-based, inclusive; ``a-`` = ``a`` plus a page) and ``pageSize=n``.

    A closed range sets the page size itself (``pageSize`` is then only checked).
    Raises InvalidRequest for malformed or out-of-bounds values.
    """
    size = default_size
    raw_size = query.get("pageSize")
    if raw_size is not None:
        size = _index(raw_size.strip(), "pageSize")
        if not 1 <= size <= max_size:
            raise InvalidRequest(f"pageSize: must be between 1 and {max_size}, got {size}")
    raw_range = query.get("indexRange")
    if raw_range is None:
        return PageRequest(0, size)
    text = raw_range.strip()
    first, sep, last = text.partition("-")
    if not sep:
        raise InvalidRequest(f"indexRange: {raw_range!r} is not of the form a-b, e.g. 0-9")
    start = _index(first, "indexRange")
    if start > _MAX_INDEX:
        raise InvalidRequest(f"indexRange: start {start} is too large")
    if last == "":
        return PageRequest(start, size)
    end = _index(last, "indexRange")
    # Well-formed but reversed or too long: served as the nearest page (the answer's self
    # link says which), as a document cannot promise an order between two numbers.
    span = min(max(end - start + 1, 1), max_size)
    return PageRequest(start, span)


def _href(path: str, query: Mapping[str, str], start: int, size: int) -> str:
    params = {k: v for k, v in query.items() if k not in ("indexRange", "pageSize")}
    params["indexRange"] = f"{start}-{start + size - 1}"
    params["pageSize"] = str(size)
    return f"{path}?{urllib.parse.urlencode(params, safe='-')}"


def collection_page(
    page_items: Sequence[Any],
    *,
    total: int,
    page: PageRequest,
    name: str,
    path: str,
    query: Mapping[str, str],
) -> dict[str, Any]:
    """A HAL page when the caller fetched ``page_items`` itself (e.g. LIMIT/OFFSET in SQL).

    Links: ``self``, ``first``, ``last`` always; ``prev`` unless on the first
    page; ``next`` unless the page reaches the end. Every link keeps the other
    query parameters (``locale``, filters).
    """
    size = page.size
    total_pages = max(1, math.ceil(total / size))
    links: dict[str, Any] = {
        "self": {"href": _href(path, query, page.start, size)},
        "first": {"href": _href(path, query, 0, size)},
        "last": {"href": _href(path, query, (total_pages - 1) * size, size)},
    }
    if page.start > 0:
        links["prev"] = {"href": _href(path, query, max(0, page.start - size), size)}
    if page.end + 1 < total:
        links["next"] = {"href": _href(path, query, page.end + 1, size)}
    return {
        "_links": links,
        "total": total,
        "currentPage": page.start // size + 1,
        "totalPage": total_pages,
        "_embedded": {name: list(page_items)},
    }


def collection(
    items: Sequence[Any],
    *,
    name: str,
    path: str,
    query: Mapping[str, str],
    default_size: int = DEFAULT_PAGE_SIZE,
    max_size: int = MAX_PAGE_SIZE,
) -> dict[str, Any]:
    """The HAL page of ``items`` the query's ``indexRange``/``pageSize`` select.

    A range starting past the end gives an empty page (not an error): the
    collection may have shrunk since the client got its links.
    """
    page = parse_paging(query, default_size=default_size, max_size=max_size)
    chosen = items[page.start : page.end + 1]
    return collection_page(chosen, total=len(items), page=page, name=name, path=path,
                           query=query)


# --- JSON numbers ---------------------------------------------------------------------


def json_number(value: float) -> float | int:
    """Integral values as ints (``30`` not ``30.0``), others rounded to 6 decimals."""
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return round(value, 6)


# --- GeoJSON lastPosition -------------------------------------------------------------


def position_feature(location: str, *, units: str | None = None,
                     updated_at: float) -> dict[str, Any] | None:
    """A GeoJSON Feature (RFC 7946) for the data of an ``L`` message; None without a position.

    ``units`` is the ``S`` message's distance unit (``M`` converts the speed from
    mph). Coordinates are ``[longitude, latitude, altitude]`` (altitude left out
    when the car did not send it). A car with no fix sends 0,0: that is no position.
    """
    view = Location.from_data(location)

    def num(text: str | None) -> float | None:
        return datapaths.parse_number(text.strip() if text else None)

    lat, lon = num(view.latitude), num(view.longitude)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if lat == 0 and lon == 0:
        return None
    coordinates: list[float | int] = [json_number(lon), json_number(lat)]
    altitude = num(view.altitude)
    if altitude is not None:
        coordinates.append(json_number(altitude))
    properties: dict[str, Any] = {"updatedAt": rfc3339(updated_at)}
    heading = num(view.direction)
    if heading is not None:
        properties["heading"] = json_number(heading)
    speed = num(view.speed)
    if speed is not None:
        properties["speed"] = json_number(speed * (datapaths.MILE_KM if units == "M" else 1.0))
    if view.gpslock is not None and view.gpslock.strip() in ("0", "1"):
        properties["gpsLock"] = view.gpslock.strip() == "1"
    if view.stalegps is not None and view.stalegps.strip() in ("0", "1"):
        # v3 modules send 1 for a fresh position and 0 for a stale one.
        properties["stale"] = view.stalegps.strip() == "0"
    for key, text in (("gpsQuality", view.gpsquality), ("satellites", view.satcount),
                      ("hdop", view.hdop)):
        value = num(text)
        if value is not None:
            properties[key] = json_number(value)
    if view.gpsmode:
        properties["gpsMode"] = view.gpsmode.strip()
    properties["units"] = {"altitude": "m", "heading": "°", "speed": "km/h",
                           "gpsQuality": "%"}
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties,
    }


# --- status ---------------------------------------------------------------------------


def _tree_value(spec: datapaths.DataPath, value: datapaths.Value) -> Any:
    if isinstance(value, float):
        return {"value": json_number(value), "unit": spec.unit}
    return value


def status_resource(snapshot: datapaths.Snapshot) -> dict[str, Any]:
    """``/status``: every status data path with a value, as a tree, numbers with units.

    ``vehicle.energy.electric.level`` becomes ``energy.electric.level = {"value":
    80, "unit": "%"}``; flags are booleans, texts strings. Unknown values are
    left out (so are sections left empty).
    """
    tree: dict[str, Any] = {}
    for path, value in datapaths.values(snapshot, status_only=True).items():
        spec = datapaths.PATHS[path]
        parts = path.split(".")[1:]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _tree_value(spec, value)
    return tree


def telemetry(snapshot: datapaths.Snapshot) -> list[dict[str, Any]]:
    """``/telemetry``: one ``{path, value, unit}`` per known data path, in table order."""
    out: list[dict[str, Any]] = []
    for path, value in datapaths.values(snapshot).items():
        spec = datapaths.PATHS[path]
        item: dict[str, Any] = {"path": path,
                                "value": json_number(value) if isinstance(value, float)
                                else value}
        if spec.unit is not None:
            item["unit"] = spec.unit
        out.append(item)
    return out


# --- remote actions -------------------------------------------------------------------


@attrs.frozen
class RemoteAction:
    name: str
    command: int | None  # v2 command number (PROTOCOL.md section 4); None: unsupported
    params: tuple[str, ...] = ()
    needs_pin: bool = False
    unsupported: str = ""  # why, when command is None


_NO_HORN_LIGHTS = (
    "the OVMS v2 protocol has no {what} command; the few cars that can do it expose "
    "vehicle-specific shell commands, send those through the text command (v2 command 7)"
)

REMOTE_ACTIONS: dict[str, RemoteAction] = {
    "lock": RemoteAction("lock", 20, needs_pin=True),
    "unlock": RemoteAction("unlock", 22, needs_pin=True),
    "charge.start": RemoteAction("charge.start", 11),
    "charge.stop": RemoteAction("charge.stop", 12),
    "climate.on": RemoteAction("climate.on", 26, ("1",)),
    "climate.off": RemoteAction("climate.off", 26, ("0",)),
    "wakeup": RemoteAction("wakeup", 18),
    # Homelink (24) drives garage-door transmitters, not the horn or lights, so
    # mapping to it would do something the caller did not ask for.
    "horn": RemoteAction("horn", None, unsupported=_NO_HORN_LIGHTS.format(what="horn")),
    "lights": RemoteAction("lights", None, unsupported=_NO_HORN_LIGHTS.format(what="lights")),
}

# A PIN goes into a comma-separated command line: a comma or a line break in it
# would smuggle extra parameters or a second command to the car.
_PIN_CHARS = frozenset(string.ascii_letters + string.digits + "#*+-_.")
MAX_PIN = 32


def remote_command(action: str, *, pin: str | None = None) -> str:
    """The v2 command data for an action, e.g. ``remote_command("lock", pin="1234")`` ->
    ``"20,1234"``. InvalidRequest for unknown actions and bad PINs, NotSupported (501)
    for horn/lights."""
    spec = REMOTE_ACTIONS.get(action)
    if spec is None:
        raise InvalidRequest(f"unknown action {action!r}; known: {', '.join(REMOTE_ACTIONS)}")
    if spec.command is None:
        raise NotSupported(f"{action}: {spec.unsupported}")
    params = list(spec.params)
    if spec.needs_pin:
        if pin is None or pin == "":
            raise InvalidRequest(f"{action} needs the vehicle PIN (pin)")
        if len(pin) > MAX_PIN or not all(c in _PIN_CHARS for c in pin):
            raise InvalidRequest(f"pin: at most {MAX_PIN} letters, digits or #*+-_.")
        params.append(pin)
    elif pin not in (None, ""):
        raise InvalidRequest(f"{action} takes no pin")
    return ",".join([str(spec.command), *params])


def remote_request_schema() -> dict[str, Any]:
    """The JSON schema of a ``POST .../remote`` body, one branch per action the server
    performs (horn and lights are answered 501 and so are not documented as valid)."""
    branches: list[dict[str, Any]] = []
    for name, spec in REMOTE_ACTIONS.items():
        if spec.command is None:
            continue
        pattern = rf"^[A-Za-z0-9#*+\-_.]{{1,{MAX_PIN}}}$"
        pin: dict[str, Any] = ({"type": "string", "pattern": pattern} if spec.needs_pin
                               else {"type": ["string", "null"], "maxLength": 0})
        branches.append({"type": "object", "properties": {"action": {"const": name},
                                                           "pin": pin},
                         "required": ["action", "pin"] if spec.needs_pin else ["action"]})
    return {"oneOf": branches}


def parse_remote_request(body: str | bytes) -> tuple[str, str | None]:
    """A ``POST .../remote`` body ``{"action": "lock", "pin": "1234"}`` -> (action, pin)."""
    data = loads_strict(body)
    if not isinstance(data, dict):
        raise InvalidRequest('body: expected an object such as {"action": "wakeup"}')
    action = data.get("action")
    if not isinstance(action, str):
        raise InvalidRequest(f"action: required, one of {', '.join(REMOTE_ACTIONS)}")
    pin = data.get("pin")
    if pin is not None and not isinstance(pin, str):
        raise InvalidRequest("pin: must be a string")
    return action, pin


def action_outcome(result: int, text: str = "") -> tuple[int, dict[str, Any]]:
    """HTTP status and body for a car's ``c<n>,<result>,<text>`` answer to an action."""
    if result == 0:
        return 200, {"status": "Done"}
    if result == 1:
        return 422, error_body(422, f"the car refused: {text}" if text else "the car refused")
    if result in (2, 3):
        what = "does not support" if result == 2 else "does not implement"
        return 501, error_body(501, f"the car {what} this command"
                               + (f": {text}" if text else ""))
    return 502, error_body(502, f"unexpected answer from the car (result {result})")


# --- alerts ---------------------------------------------------------------------------

LOCALES = ("en", "fr", "de")
DEFAULT_LOCALE = "en"

# Texts of alerts the server generates. Placeholders: {vehicleid}, {peer},
# {label}, {target}, {attempts}, {code}, {vehicletype}, {data}, {text}.
ALERT_TEXTS: dict[str, dict[str, str]] = {
    "auth.failed": {
        "en": "Authentication failed for vehicle {vehicleid} from {peer}",
        "fr": "Échec de l'authentification pour le véhicule {vehicleid} depuis {peer}",
        "de": "Authentifizierung für Fahrzeug {vehicleid} von {peer} fehlgeschlagen",
    },
    "auth.succeeded": {
        "en": "Successful authentication for vehicle {vehicleid} from {peer}",
        "fr": "Authentification réussie pour le véhicule {vehicleid} depuis {peer}",
        "de": "Erfolgreiche Authentifizierung für Fahrzeug {vehicleid} von {peer}",
    },
    "vehicle.connected": {
        "en": "Vehicle {vehicleid} connected to the server",
        "fr": "Le véhicule {vehicleid} s'est connecté au serveur",
        "de": "Fahrzeug {vehicleid} hat sich mit dem Server verbunden",
    },
    "vehicle.disconnected": {
        "en": "Vehicle {vehicleid} disconnected from the server",
        "fr": "Le véhicule {vehicleid} s'est déconnecté du serveur",
        "de": "Fahrzeug {vehicleid} hat die Verbindung zum Server getrennt",
    },
    "monitor.callbackFailed": {
        "en": "Monitor \u201c{label}\u201d: callback to {target} failed after {attempts} attempts",
        "fr": "Moniteur \u00ab {label} \u00bb : l'appel de {target} a échoué après "
              "{attempts} tentatives",
        "de": "Monitor \u201e{label}\u201c: Aufruf von {target} nach {attempts} Versuchen "
              "fehlgeschlagen",
    },
    "vehicle.error": {
        "en": "Vehicle error {code} ({vehicletype}): {data}",
        "fr": "Erreur du véhicule {code} ({vehicletype}) : {data}",
        "de": "Fahrzeugfehler {code} ({vehicletype}): {data}",
    },
}


def pick_locale(value: str | None) -> str:
    """``locale`` parameter -> one of LOCALES: ``fr-FR``/``fr_FR``/``FR`` -> ``fr``.

    Unsupported languages fall back to English rather than failing: the texts
    are a convenience, the alert data is the same in every language.
    """
    if not value:
        return DEFAULT_LOCALE
    language = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return language if language in LOCALES else DEFAULT_LOCALE


class _Keep(dict[str, Any]):
    """Leaves a placeholder nobody filled visible instead of raising KeyError."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def alert_text(key: str, locale: str | None = None, **params: object) -> str:
    """The text of a server-generated alert in the chosen language."""
    texts = ALERT_TEXTS[key]
    template = texts[pick_locale(locale)]
    return string.Formatter().vformat(template, (), _Keep(params))


_PUSH_TYPES = {"A": "alert", "I": "info", "E": "error"}


def alert_from_push(data: str, *, occurred_at: float, locale: str | None = None
                    ) -> dict[str, Any]:
    """An alert resource from the data of a car's ``P`` message (type letter + text).

    Car texts are the car's own words and are not translated; the ``E`` (error)
    type's ``<vehicletype>,<code>,<data>`` payload gets a server text in ``locale``.
    """
    letter, text = data[:1], data[1:]
    kind = _PUSH_TYPES.get(letter, "other")
    alert: dict[str, Any] = {"source": "vehicle", "type": kind,
                             "occurredAt": rfc3339(occurred_at)}
    if kind == "error":
        vehicletype, _, rest = text.partition(",")
        code, _, extra = rest.partition(",")
        alert["error"] = {"vehicleType": vehicletype, "code": code, "data": extra}
        alert["text"] = alert_text("vehicle.error", locale, code=code,
                                   vehicletype=vehicletype, data=extra)
    else:
        alert["text"] = text
    if kind == "other":
        alert["typeCode"] = letter
    return alert


def server_alert(key: str, *, occurred_at: float, locale: str | None = None,
                 **params: object) -> dict[str, Any]:
    """An alert the server generated (logins, connections, failed callbacks)."""
    if key not in ALERT_TEXTS:
        raise KeyError(key)
    return {"source": "server", "type": alert_type_for(key), "key": key,
            "text": alert_text(key, locale, **params), "occurredAt": rfc3339(occurred_at)}


def alert_type_for(key: str) -> str:
    return "info" if key in ("auth.succeeded", "vehicle.connected") else "alert"


def parse_bool_param(value: str | None, *, field: str, default: bool = False) -> bool:
    """Query flags: true/false/1/0."""
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidRequest(f"{field}: expected true or false, got {value!r}")


# --- vehicle and maintenance (from F) ---------------------------------------------------

# OVMS vehicle type codes (the F message's vehicle_type, first letters) -> brand, model.
# Longest prefix wins; unknown codes keep only the code itself.
VEHICLE_TYPES: dict[str, tuple[str, str]] = {
    "TR": ("Tesla", "Roadster"), "TS": ("Tesla", "Model S"), "NL": ("Nissan", "Leaf"),
    "RT": ("Renault", "Twizy"), "RZ": ("Renault", "Zoe"), "KS": ("Kia", "Soul EV"),
    "KN": ("Kia", "e-Niro"), "VA": ("Chevrolet", "Volt / Ampera"), "SE": ("Smart", "ED"),
    "SQ": ("Smart", "EQ"), "MI": ("Mitsubishi", "i-MiEV"), "BMWI3": ("BMW", "i3"),
    "HIONVFL": ("Hyundai", "Ioniq"), "VWUP": ("Volkswagen", "e-Up"),
    "ME": ("Mercedes-Benz", "B250e"), "MPL60S": ("Maple", "60S"), "ZOM": ("Renault", "Zoe"),
}


def vehicle_type_info(code: str | None) -> dict[str, str]:
    """``{"typeCode", "brand", "model"}`` for an F vehicle type; only known members."""
    if not code:
        return {}
    code = code.strip()
    out = {"typeCode": code}
    for prefix in sorted(VEHICLE_TYPES, key=len, reverse=True):
        if code.upper().startswith(prefix):
            out["brand"], out["model"] = VEHICLE_TYPES[prefix]
            break
    return out


def maintenance_resource(firmware: str, *, received_at: float) -> dict[str, Any]:
    """``/maintenance`` from an F message: distance and time to the next service.

    The car sends the distance in km and the time in seconds from when it sent the
    message; negative values mean unknown (omitted). A value above 10^9 is taken as the
    unix time of the service itself, which some modules send.
    """
    view = Firmware.from_data(firmware)
    out: dict[str, Any] = {}
    km = datapaths.parse_number(view.service_km.strip() if view.service_km else None)
    if km is not None and km >= 0:
        out["distanceToService"] = {"value": json_number(km), "unit": "km"}
    seconds = datapaths.parse_number(
        view.service_seconds.strip() if view.service_seconds else None)
    if seconds is not None and seconds >= 0:
        due = seconds if seconds > 1e9 else received_at + seconds
        remaining = due - received_at
        out["timeToService"] = {"value": json_number(round(remaining / 86400, 1)),
                                "unit": "d"}
        out["serviceDueAt"] = rfc3339(due)
    return out
