"""Named data paths: where each v4 value comes from in the car's v2 messages.

One table serves three users: monitor data triggers (``vehicle.energy.electric.level
lowerThan 50``), the ``/status`` resource (the table read as a tree) and
``/telemetry``. ``docs/api-v4.md`` documents the same table; a test keeps the
two in step.

Units are fixed per path whatever the car's distance setting: a car set to
miles (``S`` units ``M``) sends ranges, odometer and the ``L`` speed in miles,
and they are converted to km and km/h here so a monitor's threshold means the
same thing on every car. (The ``D`` speed is always km/h: v3 modules send the
metric unconverted.)

Which field of which message, and which bit of a bitfield, comes from
``protocol.fields``, the one description REST formatting reads too.

Field encodings follow what OVMS v3 modules send (``ovms_server_v2.cpp``):
odometer and trip meter are tenths of the distance unit, ``chargekwh`` is
tenths of kWh, ``L`` energy counters are kWh, ``gpslock`` is 1/0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, TypeAlias

import attrs

from protocol import fields
from protocol.messages import Location

Value: TypeAlias = float | str | bool | None
Snapshot: TypeAlias = Mapping[str, str]
"""The vehicle's latest message data by code, e.g. ``{"S": "80,K,...", "D": "..."}``."""

Kind = Literal["number", "boolean", "text"]

MILE_KM = 1.609344
EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius


@attrs.frozen
class DataPath:
    """A v4 value read from one field of a car message, as ``protocol.fields`` lays it out.

    A boolean read from a bitfield names the bit (``flag``); the field's position
    and the bit's mask come from the layout, so they cannot drift from REST.
    """

    path: str
    code: str  # message code: S, D, L or F
    field: str  # field name in the layout of that code (protocol.fields)
    kind: Kind
    unit: str | None = None
    flag: str | None = None  # for a bitfield: the name of the bit in the layout
    # Further bits of the same field that mean the same thing (either one is true).
    or_flags: tuple[str, ...] = ()
    scale: float = 1.0  # multiply the raw number by this (tenths -> units)
    car_units: bool = False  # in the car's distance unit: convert miles to km
    in_status: bool = True  # part of the /status resource
    description: str = ""
    # From the layout: the field's position and, for a flag, its bit (bit 0 = value 1).
    index: int = attrs.field(init=False, repr=False, eq=False)
    bit: int | None = attrs.field(init=False, repr=False, eq=False)
    mask: int | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        layout = fields.LAYOUTS[self.code]
        object.__setattr__(self, "index", layout.index(self.field))
        bit = None
        mask = None
        if self.flag is not None:
            for name in (self.flag, *self.or_flags):
                position = layout.flag(name)
                if position.field.name != self.field:
                    raise ValueError(f"{self.path}: bit {name} is not in {self.field}")
                mask = (mask or 0) | position.bit.mask
            bit = layout.flag(self.flag).bit.bit
        object.__setattr__(self, "bit", bit)
        object.__setattr__(self, "mask", mask)


def _p(path: str, code: str, field: str, kind: Kind, unit: str | None = None, desc: str = "",
       **kw: object) -> DataPath:
    return DataPath(path, code, field, kind, unit, description=desc, **kw)  # type: ignore[arg-type]


# Order matters only for documentation and telemetry output.
TABLE: tuple[DataPath, ...] = (
    _p("vehicle.energy.electric.level", "S", "soc", "number", "%", "state of charge"),
    _p("vehicle.energy.electric.autonomy", "S", "estimatedrange", "number", "km",
       "estimated range", car_units=True),
    _p("vehicle.energy.electric.idealAutonomy", "S", "idealrange", "number", "km",
       "ideal range", car_units=True),
    _p("vehicle.energy.electric.health", "S", "soh", "number", "%", "battery state of health"),
    _p("vehicle.energy.electric.voltage", "S", "battvoltage", "number", "V",
       "main battery voltage"),
    _p("vehicle.energy.electric.current", "S", "battcurrent", "number", "A",
       "main battery current"),
    _p("vehicle.energy.electric.temperature", "D", "temp_battery", "number", "°C",
       "main battery temperature"),
    _p("vehicle.charging.status", "S", "chargestate", "text", None,
       "charge state as the car names it: charging, topoff, done, stopped, prepare, ..."),
    _p("vehicle.charging.mode", "S", "chargemode", "text", None,
       "standard, storage, range, performance"),
    _p("vehicle.charging.active", "D", "doors1", "boolean", None, "charging in progress",
       flag="charging"),
    _p("vehicle.charging.plugged", "D", "doors1", "boolean", None,
       "charge cable connected (pilot signal present)", flag="pilotpresent"),
    _p("vehicle.charging.power", "S", "chargepower", "number", "kW", "charge power"),
    _p("vehicle.charging.voltage", "S", "linevoltage", "number", "V", "charge line voltage"),
    _p("vehicle.charging.current", "S", "chargecurrent", "number", "A", "charge current"),
    _p("vehicle.charging.currentLimit", "S", "chargelimit", "number", "A",
       "charge current limit"),
    _p("vehicle.charging.energy", "S", "chargekwh", "number", "kWh",
       "energy charged in this session", scale=0.1),
    _p("vehicle.charging.duration", "S", "chargeduration", "number", "min",
       "time spent charging in this session"),
    _p("vehicle.charging.remainingTime", "S", "charge_etr_full", "number", "min",
       "estimated time to full"),
    _p("vehicle.charging.chargePortOpen", "D", "doors1", "boolean", None, "charge port open",
       flag="cp_dooropen"),
    _p("vehicle.doors.frontLeftOpen", "D", "doors1", "boolean", None, "front left door open",
       flag="fl_dooropen"),
    _p("vehicle.doors.frontRightOpen", "D", "doors1", "boolean", None, "front right door open",
       flag="fr_dooropen"),
    _p("vehicle.doors.rearLeftOpen", "D", "doors5", "boolean", None, "rear left door open",
       flag="rl_dooropen"),
    _p("vehicle.doors.rearRightOpen", "D", "doors5", "boolean", None, "rear right door open",
       flag="rr_dooropen"),
    _p("vehicle.doors.bonnetOpen", "D", "doors2", "boolean", None, "bonnet (hood) open",
       flag="bt_open"),
    _p("vehicle.doors.trunkOpen", "D", "doors2", "boolean", None, "trunk open", flag="tr_open"),
    _p("vehicle.doors.locked", "D", "doors2", "boolean", None, "vehicle locked", flag="carlocked"),
    _p("vehicle.doors.valet", "D", "doors2", "boolean", None, "valet mode on", flag="valetmode"),
    _p("vehicle.ignition", "D", "doors1", "boolean", None, "car on (ignition)", flag="caron"),
    _p("vehicle.handbrake", "D", "doors1", "boolean", None, "handbrake engaged", flag="handbrake"),
    _p("vehicle.awake", "D", "doors3", "boolean", None, "car awake", flag="carawake"),
    _p("vehicle.alarm", "D", "doors4", "boolean", None, "alarm sounding",
       flag="alarmsounding", or_flags=("alarmsounding_v3",)),
    _p("vehicle.preconditioning", "D", "doors5", "boolean", None,
       "climate control (HVAC) running", flag="hvac"),
    _p("vehicle.battery.12v", "D", "vehicle12v", "number", "V", "12 V battery voltage"),
    _p("vehicle.battery.12vCurrent", "D", "vehicle12v_current", "number", "A",
       "12 V battery current"),
    _p("vehicle.battery.12vCharging", "D", "doors5", "boolean", None, "12 V battery charging",
       flag="charging_12v"),
    _p("vehicle.speed", "L", "speed", "number", "km/h", "speed", car_units=True),
    _p("vehicle.odometer", "D", "odometer", "number", "km", "odometer", scale=0.1,
       car_units=True),
    _p("vehicle.tripmeter", "D", "tripmeter", "number", "km", "trip meter", scale=0.1,
       car_units=True),
    _p("vehicle.temperature.ambient", "D", "temp_ambient", "number", "°C",
       "outside temperature"),
    _p("vehicle.temperature.cabin", "D", "temp_cabin", "number", "°C", "cabin temperature"),
    _p("vehicle.temperature.motor", "D", "temp_motor", "number", "°C", "motor temperature"),
    _p("vehicle.temperature.inverter", "D", "temp_pem", "number", "°C",
       "inverter (PEM) temperature"),
    _p("vehicle.temperature.charger", "D", "temp_charger", "number", "°C",
       "charger temperature"),
    _p("vehicle.power", "L", "power", "number", "kW", "main battery power (negative: charging)"),
    _p("vehicle.energy.used", "L", "energyused", "number", "kWh",
       "energy used (the car's trip counter)"),
    _p("vehicle.energy.recovered", "L", "energyrecd", "number", "kWh",
       "energy recovered (the car's trip counter)"),
    _p("vehicle.position.latitude", "L", "latitude", "number", "°", "latitude (WGS 84)",
       in_status=False),
    _p("vehicle.position.longitude", "L", "longitude", "number", "°", "longitude (WGS 84)",
       in_status=False),
    _p("vehicle.position.altitude", "L", "altitude", "number", "m", "altitude",
       in_status=False),
    _p("vehicle.position.heading", "L", "direction", "number", "°",
       "heading, clockwise from north", in_status=False),
    _p("vehicle.position.gpsLock", "L", "gpslock", "boolean", None, "GPS has a fix",
       in_status=False),
    _p("vehicle.firmware.version", "F", "version", "text", None, "module firmware version",
       in_status=False),
    _p("vehicle.vin", "F", "vin", "text", None, "vehicle identification number",
       in_status=False),
    # v3 modules send the modem's signal in CSQ steps (0-31, 99 = unknown), not dBm.
    _p("vehicle.network.signal", "F", "signal_quality", "number", "CSQ",
       "modem signal quality, 0-31", in_status=False),
)

PATHS: dict[str, DataPath] = {p.path: p for p in TABLE}


def _field(snapshot: Snapshot, code: str, index: int) -> str | None:
    data = snapshot.get(code)
    if data is None:
        return None
    values = data.split(",") if data else []
    if index >= len(values):
        return None
    return values[index].strip() or None


_UNITS = fields.STATUS.index("units")


def parse_number(text: str | None) -> float | None:
    if text is None or len(text) > 40:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    # float() takes "nan" and "inf"; a car never means those.
    return value if math.isfinite(value) else None


def _int(text: str | None) -> int | None:
    value = parse_number(text)
    if value is None or value != int(value):
        return None
    return int(value)


def uses_miles(snapshot: Snapshot) -> bool:
    return _field(snapshot, "S", _UNITS) == "M"


def value_of(path: str, snapshot: Snapshot) -> Value:
    """The value of a data path in the vehicle's latest messages; None when unknown.

    Raises KeyError for a path not in the table (monitors validate paths at
    creation, so at evaluation time that is a programming error).
    """
    spec = PATHS[path]
    raw = _field(snapshot, spec.code, spec.index)
    if spec.kind == "text":
        return raw
    if spec.kind == "boolean":
        flags = _int(raw)
        if flags is None:
            return None
        mask = spec.mask
        return flags != 0 if mask is None else bool(flags & mask)
    number = parse_number(raw)
    if number is None:
        return None
    number *= spec.scale
    if spec.car_units and uses_miles(snapshot):
        number *= MILE_KM
    return number


def values(snapshot: Snapshot, *, status_only: bool = False) -> dict[str, Value]:
    """Every known path's value (None ones left out)."""
    out: dict[str, Value] = {}
    for spec in TABLE:
        if status_only and not spec.in_status:
            continue
        value = value_of(spec.path, snapshot)
        if value is not None:
            out[spec.path] = value
    return out


def parse_literal(path: str, text: str) -> Value:
    """A monitor's comparison value as the path's kind: float, bool or str.

    Raises ValueError with a short reason when it does not fit.
    """
    spec = PATHS[path]
    if spec.kind == "number":
        number = parse_number(text.strip())
        if number is None:
            raise ValueError(f"{text!r} is not a number")
        return number
    if spec.kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "on", "yes"):
            return True
        if lowered in ("false", "0", "off", "no"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    return text


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a sphere of the mean Earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = p2 - p1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def position_of(snapshot: Snapshot) -> tuple[float, float] | None:
    """(latitude, longitude) of the latest ``L`` with a GPS fix, else None.

    ``gpslock`` 0 means no fix; 0,0 is what a module sends before its first fix.
    """
    data = snapshot.get("L")
    if data is None:
        return None
    view = Location.from_data(data)
    if view.gpslock is not None and view.gpslock.strip() == "0":
        return None
    lat = parse_number(view.latitude.strip() if view.latitude else None)
    lon = parse_number(view.longitude.strip() if view.longitude else None)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if lat == 0 and lon == 0:
        return None
    return lat, lon
