"""Which OVMS v3 metric fills which field of which v2 message, as data.

A v3 module publishes metrics (``v.b.soc`` = ``81.5``); a v2 app reads messages
(``S81.5,K,...``). ``MAPPING`` lists every field of ``S``, ``D``, ``L``, ``W`` and
``F`` that a v3 module's own v2 server fills, with the metrics it comes from and
how their text becomes the field's text (``Convert``). ``TPMS_SERIES`` does the
same for the counted lists of ``Y``. Field and bit names are those of
``protocol.fields``, the project's one description of the v2 layouts, so an
entry naming a field or bit that layout does not have fails at import.

Values arrive as the module's own text of the metric in its native unit (km,
km/h, degrees Celsius, kPa, dBm; booleans ``yes``/``no``; vectors comma
separated) and leave formatted as a module's v2 server formats them: numbers it
writes with ``AsInt`` are truncated, the ``S`` floats have two decimals, the
distances follow the ``S`` units (K or M). Where a field has no metric (the
module computes staleness itself, which MQTT does not carry) it gets the value a
module sends for "fresh" or "unknown".

Several entries for one field are tried in order: the first whose metrics have
a value wins (the per-wheel TPMS metrics of older firmware, then the vectors of
newer). Every bit of a bitfield is one entry; the field is their sum.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from protocol import fields


class Value(enum.Enum):
    """What text a metric must hold to be stored (checked in ``state.apply``)."""

    TEXT = "text"
    NUMBER = "number"
    BOOL = "bool"
    VECTOR = "vector"  # comma-separated numbers


class Convert(enum.Enum):
    """How the values of an entry's metrics become the field's text.

    ``kinds`` are the kinds of the metrics it reads, in order; ``text`` says what
    it does (the mapping table of docs/ovms-v3.md shows it).
    """

    TEXT = "text"
    NUMBER = "number"
    INT = "int"
    FLOAT2 = "float2"
    FLOAT3 = "float3"
    FLOAT6 = "float6"
    TENTHS = "tenths"
    BOOL = "bool"
    NOT = "not"
    BIT = "bit"
    DISTANCE = "distance"
    DISTANCE_TENTHS = "distance_tenths"
    DISTANCE2 = "distance2"
    SPEED = "speed"
    PSI = "psi"
    WHEEL_PSI = "wheel_psi"
    WHEEL = "wheel"
    SIGNAL = "signal"
    HEX = "hex"
    LOCKUNLOCK = "lockunlock"
    COOLDOWN = "cooldown"
    CHARGE_STATE = "charge_state"
    CHARGE_SUBSTATE = "charge_substate"
    CHARGE_MODE = "charge_mode"
    ETR_LIMIT = "etr_limit"
    CHARGE_POWER = "charge_power"
    DEFINED = "defined"
    CONST = "const"

    @property
    def kinds(self) -> tuple[Value, ...]:
        return _CONVERT_KINDS[self]

    @property
    def text(self) -> str:
        return _CONVERT_TEXT[self]


_N = (Value.NUMBER,)
_B = (Value.BOOL,)
_T = (Value.TEXT,)
_V = (Value.VECTOR,)
_CONVERT_KINDS: Final[dict[Convert, tuple[Value, ...]]] = {
    Convert.TEXT: _T,
    Convert.NUMBER: _N,
    Convert.INT: _N,
    Convert.FLOAT2: _N,
    Convert.FLOAT3: _N,
    Convert.FLOAT6: _N,
    Convert.TENTHS: _N,
    Convert.BOOL: _B,
    Convert.NOT: _B,
    Convert.BIT: _B,
    Convert.DISTANCE: _N,
    Convert.DISTANCE_TENTHS: _N,
    Convert.DISTANCE2: _N,
    Convert.SPEED: _N,
    Convert.PSI: _N,
    Convert.WHEEL_PSI: _V,
    Convert.WHEEL: _V,
    Convert.SIGNAL: _N,
    Convert.HEX: _N,
    Convert.LOCKUNLOCK: _B,
    Convert.COOLDOWN: _B,
    Convert.CHARGE_STATE: _T,
    Convert.CHARGE_SUBSTATE: _T,
    Convert.CHARGE_MODE: _T,
    Convert.ETR_LIMIT: (Value.NUMBER, Value.NUMBER),
    Convert.CHARGE_POWER: (Value.NUMBER, Value.BOOL),
    Convert.DEFINED: (),  # reads no value, only whether there is one
    Convert.CONST: (),
}

_CONVERT_TEXT: Final[dict[Convert, str]] = {
    Convert.TEXT: "text as it is, commas as ';' (the field separator)",
    Convert.NUMBER: "the number as the module writes it",
    Convert.INT: "truncated to a whole number",
    Convert.FLOAT2: "two decimals",
    Convert.FLOAT3: "three decimals",
    Convert.FLOAT6: "six decimals",
    Convert.TENTHS: "times 10, truncated (kWh as 1/10 kWh)",
    Convert.BOOL: "1 if true, else 0",
    Convert.NOT: "0 if true, else 1 (a fresh flag from a stale metric)",
    Convert.BIT: "sets the bit when true",
    Convert.DISTANCE: "km in the units of S (K or M), truncated",
    Convert.DISTANCE_TENTHS: "km in 1/10 of the units of S, truncated",
    Convert.DISTANCE2: "km/h in the units of S per hour, two decimals",
    Convert.SPEED: "km/h as is; mph with one decimal for units M",
    Convert.PSI: "kPa as psi, one decimal",
    Convert.WHEEL_PSI: "one wheel of the kPa vector, as psi",
    Convert.WHEEL: "one wheel of the vector",
    Convert.SIGNAL: "dBm as the 0..31 signal quality of GSM modems",
    Convert.HEX: "hexadecimal",
    Convert.LOCKUNLOCK: "4 if locked, else 5",
    Convert.COOLDOWN: "0 if cooling, else -1",
    Convert.CHARGE_STATE: "the state's number (see the numbers below)",
    Convert.CHARGE_SUBSTATE: "the substate's number (see the numbers below)",
    Convert.CHARGE_MODE: "the mode's number (see the numbers below)",
    Convert.ETR_LIMIT: "minutes to the range limit if set and sooner, else to the soc limit",
    Convert.CHARGE_POWER: "minus the battery power while charging, else 0 (two decimals)",
    Convert.DEFINED: "1 if any of the metrics has a value",
    Convert.CONST: "always the default",
}


@attrs.frozen
class FieldSource:
    """Field ``field`` of message ``code`` comes from ``metrics`` via ``convert``;
    ``default`` is its text while none of them has a value. For BIT, ``bit`` names
    the bit (``protocol.fields``); for WHEEL*, ``index`` is the vector element."""

    code: str
    field: str
    metrics: tuple[str, ...]
    convert: Convert
    default: str = "0"
    bit: str = ""
    index: int = 0

    def __attrs_post_init__(self) -> None:
        layout = fields.LAYOUTS[self.code]
        layout.index(self.field)  # KeyError: not a field of the layout
        if self.convert is not Convert.DEFINED and len(self.metrics) != len(
                self.convert.kinds):
            raise ValueError(f"{self.code}.{self.field}: {self.convert.name} reads "
                             f"{len(self.convert.kinds)} metrics")
        if self.convert is Convert.BIT:
            if layout.flag(self.bit).field.name != self.field:
                raise ValueError(f"{self.code}.{self.bit} is not a bit of {self.field}")
        elif layout.field(self.field).kind == "bitfield":
            raise ValueError(f"{self.code}.{self.field} is a bitfield: map its bits")


def _m(code: str, field: str, metric: str, convert: Convert = Convert.NUMBER,
       default: str = "0") -> FieldSource:
    return FieldSource(code, field, (metric,), convert, default)


def _bit(code: str, field: str, bit: str, metric: str) -> FieldSource:
    return FieldSource(code, field, (metric,), Convert.BIT, "0", bit)


def _const(code: str, field: str, value: str) -> FieldSource:
    return FieldSource(code, field, (), Convert.CONST, value)


def _wheel(field: str, old: str, vector: str, index: int, convert: Convert) -> tuple[
        FieldSource, FieldSource]:
    """A W field: the older per-wheel metric, else element ``index`` of the vector."""
    single = Convert.PSI if convert is Convert.WHEEL_PSI else Convert.NUMBER
    return (FieldSource("W", field, (old,), single),
            FieldSource("W", field, (vector,), convert, index=index))


C = Convert
# Wheel order of the v3 vectors (v.t.*): front left, front right, rear left, rear right.
FL, FR, RL, RR = range(4)

MAPPING: Final[tuple[FieldSource, ...]] = (
    # --- S: status ------------------------------------------------------------------
    FieldSource("S", "soc", ("v.b.soc",), C.NUMBER),
    # S.units is the state's distance unit, not a metric (see format.message_for).
    _m("S", "linevoltage", "v.c.voltage", C.INT),
    _m("S", "chargecurrent", "v.c.current", C.INT),
    _m("S", "chargestate", "v.c.state", C.TEXT, "stopped"),
    _m("S", "chargemode", "v.c.mode", C.TEXT, "standard"),
    _m("S", "idealrange", "v.b.range.ideal", C.DISTANCE),
    _m("S", "estimatedrange", "v.b.range.est", C.DISTANCE),
    _m("S", "chargelimit", "v.c.climit", C.INT),
    _m("S", "chargeduration", "v.c.time", C.INT),
    _const("S", "chargeb4", "0"),
    _m("S", "chargekwh", "v.c.kwh", C.TENTHS),
    _m("S", "chargesubstate", "v.c.substate", C.CHARGE_SUBSTATE),
    _m("S", "chargestate_n", "v.c.state", C.CHARGE_STATE, "21"),
    _m("S", "chargemode_n", "v.c.mode", C.CHARGE_MODE),
    _m("S", "chargetimermode", "v.c.timermode", C.BOOL),
    _m("S", "chargestarttime", "v.c.timerstart", C.INT),
    _const("S", "chargetimerstale", "0"),
    _m("S", "cac100", "v.b.cac", C.FLOAT2, "0.00"),
    _m("S", "charge_etr_full", "v.c.duration.full", C.INT),
    FieldSource("S", "charge_etr_limit", ("v.c.duration.range", "v.c.duration.soc"),
                C.ETR_LIMIT),
    _m("S", "charge_limit_range", "v.c.limit.range", C.DISTANCE),
    _m("S", "charge_limit_soc", "v.c.limit.soc", C.INT),
    _m("S", "cooldown_active", "v.e.cooling", C.COOLDOWN, "-1"),
    _const("S", "cooldown_tbattery", "0"),
    _const("S", "cooldown_timelimit", "0"),
    _const("S", "charge_estimate", "0"),
    _m("S", "charge_etr_range", "v.c.duration.range", C.INT),
    _m("S", "charge_etr_soc", "v.c.duration.soc", C.INT),
    _m("S", "idealrange_max", "v.b.range.full", C.DISTANCE),
    _m("S", "chargetype", "v.c.type", C.TEXT),
    FieldSource("S", "chargepower", ("v.b.power", "v.c.charging"), C.CHARGE_POWER, "0.00"),
    _m("S", "battvoltage", "v.b.voltage", C.FLOAT2, "0.00"),
    _m("S", "soh", "v.b.soh", C.INT),
    _m("S", "chargepowerinput", "v.c.power", C.FLOAT2, "0.00"),
    _m("S", "chargerefficiency", "v.c.efficiency", C.FLOAT2, "0.00"),
    # The fields after this are newer than the v2 server source this table was read
    # from; their formats follow the fields before them.
    _m("S", "battcurrent", "v.b.current", C.FLOAT2, "0.00"),
    _m("S", "battrangespeed", "v.b.range.speed", C.DISTANCE2, "0.00"),
    _m("S", "chargekwhgrid", "v.c.kwh.grid", C.FLOAT2, "0.00"),
    _m("S", "chargekwhgridtotal", "v.c.kwh.grid.total", C.FLOAT2, "0.00"),
    _m("S", "batt_capacity", "v.b.capacity", C.FLOAT2, "0.00"),
    _m("S", "charge_endtime", "v.c.timestamp", C.INT),
    # --- D: doors and environment ---------------------------------------------------
    _bit("D", "doors1", "fl_dooropen", "v.d.fl"),
    _bit("D", "doors1", "fr_dooropen", "v.d.fr"),
    _bit("D", "doors1", "cp_dooropen", "v.d.cp"),
    _bit("D", "doors1", "pilotpresent", "v.c.pilot"),
    _bit("D", "doors1", "charging", "v.c.charging"),
    _bit("D", "doors1", "handbrake", "v.e.handbrake"),
    _bit("D", "doors1", "caron", "v.e.on"),
    _bit("D", "doors2", "carlocked", "v.e.locked"),
    _bit("D", "doors2", "valetmode", "v.e.valet"),
    _bit("D", "doors2", "headlights", "v.e.headlights"),
    _bit("D", "doors2", "bt_open", "v.d.hood"),
    _bit("D", "doors2", "tr_open", "v.d.trunk"),
    _m("D", "lockunlock", "v.e.locked", C.LOCKUNLOCK, "5"),
    _m("D", "temp_pem", "v.i.temp"),
    _m("D", "temp_motor", "v.m.temp"),
    _m("D", "temp_battery", "v.b.temp"),
    _m("D", "tripmeter", "v.p.trip", C.DISTANCE_TENTHS),
    _m("D", "odometer", "v.p.odometer", C.DISTANCE_TENTHS),
    # Not converted to the message's units: a module's v2 server sends km/h here.
    _m("D", "speed", "v.p.speed"),
    _m("D", "parktimer", "v.e.parktime"),
    _m("D", "temp_ambient", "v.e.temp"),
    # Both awake bits (see protocol.fields), so REST, API v4 and v3-aware apps agree;
    # the v3 cooling pump bit (also bit 1) is therefore left out.
    _bit("D", "doors3", "carawake_v3", "v.e.awake"),
    _bit("D", "doors3", "carawake", "v.e.awake"),
    _bit("D", "doors3", "ctrl_login", "v.e.c.login"),
    _bit("D", "doors3", "ctrl_config", "v.e.c.config"),
    _const("D", "staletemps", "1"),
    _const("D", "staleambient", "1"),
    _m("D", "vehicle12v", "v.b.12v.voltage"),
    _bit("D", "doors4", "alarmsounding_v3", "v.e.alarm"),
    _bit("D", "doors4", "alarmsounding", "v.e.alarm"),
    _m("D", "vehicle12v_ref", "v.b.12v.voltage.ref"),
    _bit("D", "doors5", "rl_dooropen", "v.d.rl"),
    _bit("D", "doors5", "rr_dooropen", "v.d.rr"),
    _bit("D", "doors5", "charging_12v", "v.e.charging12v"),
    _bit("D", "doors5", "hvac", "v.e.hvac"),
    _m("D", "temp_charger", "v.c.temp"),
    _m("D", "vehicle12v_current", "v.b.12v.current"),
    _m("D", "temp_cabin", "v.e.cabintemp"),
    # --- L: location ----------------------------------------------------------------
    _m("L", "latitude", "v.p.latitude", C.FLOAT6, "0"),
    _m("L", "longitude", "v.p.longitude", C.FLOAT6, "0"),
    _m("L", "direction", "v.p.direction"),
    _m("L", "altitude", "v.p.altitude"),
    _m("L", "gpslock", "v.p.gpslock", C.BOOL),
    _m("L", "stalegps", "v.p.gpsstale", C.NOT, "1"),
    _m("L", "speed", "v.p.speed", C.SPEED),
    _m("L", "tripmeter", "v.p.trip", C.DISTANCE_TENTHS),
    _m("L", "drivemode", "v.e.drivemode", C.HEX),
    _m("L", "power", "v.b.power", C.FLOAT3),
    _m("L", "energyused", "v.b.energy.used", C.FLOAT3),
    _m("L", "energyrecd", "v.b.energy.recd", C.FLOAT3),
    _m("L", "invpower", "v.i.power"),
    _m("L", "invefficiency", "v.i.efficiency"),
    _m("L", "gpsmode", "v.p.gpsmode", C.TEXT, ""),
    _m("L", "satcount", "v.p.satcount"),
    _m("L", "hdop", "v.p.gpshdop"),
    _m("L", "gpsspeed", "v.p.gpsspeed"),
    _m("L", "gpsquality", "v.p.gpssq"),
    # --- W: TPMS, old style (psi) ---------------------------------------------------
    *_wheel("fr_pressure", "v.tp.fr.p", "v.t.pressure", FR, C.WHEEL_PSI),
    *_wheel("fr_temp", "v.tp.fr.t", "v.t.temp", FR, C.WHEEL),
    *_wheel("rr_pressure", "v.tp.rr.p", "v.t.pressure", RR, C.WHEEL_PSI),
    *_wheel("rr_temp", "v.tp.rr.t", "v.t.temp", RR, C.WHEEL),
    *_wheel("fl_pressure", "v.tp.fl.p", "v.t.pressure", FL, C.WHEEL_PSI),
    *_wheel("fl_temp", "v.tp.fl.t", "v.t.temp", FL, C.WHEEL),
    *_wheel("rl_pressure", "v.tp.rl.p", "v.t.pressure", RL, C.WHEEL_PSI),
    *_wheel("rl_temp", "v.tp.rl.t", "v.t.temp", RL, C.WHEEL),
    FieldSource("W", "staletpms", ("v.tp.fl.p", "v.tp.fr.p", "v.tp.rl.p", "v.tp.rr.p"),
                C.DEFINED, "-1"),
    FieldSource("W", "staletpms", ("v.t.pressure",), C.DEFINED, "-1"),
    # --- F: firmware ----------------------------------------------------------------
    _m("F", "version", "m.version", C.TEXT, ""),
    _m("F", "vin", "v.vin", C.TEXT, ""),
    _m("F", "signal_quality", "m.net.sq", C.SIGNAL),
    _const("F", "write_enabled", "1"),
    _m("F", "vehicle_type", "v.type", C.TEXT, ""),
    _m("F", "network", "m.net.provider", C.TEXT, ""),
    _m("F", "service_km", "v.e.serv.range", C.INT, ""),
    # service_seconds: v3 publishes the service date, not the seconds to it; empty.
    _m("F", "hardware", "m.hardware", C.TEXT, ""),
    _m("F", "modem_mode", "m.net.mdm.mode", C.TEXT, ""),
)


@attrs.frozen
class TpmsSeries:
    """One counted series of ``Y`` (kPa, degrees Celsius, percent, alert level)."""

    series: str
    metric: str

    def __attrs_post_init__(self) -> None:
        if self.series not in fields.NEW_TPMS.series:
            raise ValueError(f"Y has no series {self.series!r}")


TPMS_SERIES: Final[tuple[TpmsSeries, ...]] = (
    TpmsSeries("pressure", "v.t.pressure"),
    TpmsSeries("temperature", "v.t.temp"),
    TpmsSeries("health", "v.t.health"),
    TpmsSeries("alert", "v.t.alert"),
)
# Wheel names of Y for the usual four wheels (the module's vehicle knows its own
# layout; it is not a metric). Other counts get W1..Wn.
FOUR_WHEELS: Final = ("FL", "FR", "RL", "RR")

# Charge state, substate and mode names as numbers (the v2 ``S`` carries both).
CHARGE_STATES: Final = {"charging": 1, "topoff": 2, "done": 4, "prepare": 13,
                        "timerwait": 14, "heating": 15, "stopped": 21}
CHARGE_SUBSTATES: Final = {"scheduledstop": 1, "scheduledstart": 2, "onrequest": 3,
                           "timerwait": 5, "powerwait": 7, "stopped": 13, "interrupted": 14}
CHARGE_MODES: Final = {"standard": 0, "storage": 1, "range": 3, "performance": 4}


def sources(code: str) -> tuple[FieldSource, ...]:
    """The mapping entries of one message code, in mapping order."""
    return _BY_CODE.get(code, ())


def _index() -> tuple[dict[str, tuple[FieldSource, ...]], dict[str, frozenset[str]],
                      dict[str, Value]]:
    by_code: dict[str, list[FieldSource]] = {}
    codes: dict[str, set[str]] = {}
    kinds: dict[str, Value] = {}
    for source in MAPPING:
        by_code.setdefault(source.code, []).append(source)
        for metric in source.metrics:
            codes.setdefault(metric, set()).add(source.code)
        for metric, kind in zip(source.metrics, source.convert.kinds, strict=False):
            if kinds.setdefault(metric, kind) is not kind:
                raise ValueError(f"{metric} read as {kinds[metric].value} and {kind.value}")
    for tpms in TPMS_SERIES:
        codes.setdefault(tpms.metric, set()).add("Y")
        if kinds.setdefault(tpms.metric, Value.VECTOR) is not Value.VECTOR:
            raise ValueError(f"{tpms.metric} is not a vector")
    return ({c: tuple(s) for c, s in by_code.items()},
            {m: frozenset(c) for m, c in codes.items()}, kinds)


_BY_CODE, _CODES_BY_METRIC, KINDS = _index()
KNOWN_METRICS: Final = frozenset(_CODES_BY_METRIC)
CODES: Final = tuple(sorted({c for codes in _CODES_BY_METRIC.values() for c in codes}))


def codes_for(metric: str) -> frozenset[str]:
    """The v2 message codes a change of ``metric`` changes (empty if none)."""
    return _CODES_BY_METRIC.get(metric, frozenset())


__all__ = ["CHARGE_MODES", "CHARGE_STATES", "CHARGE_SUBSTATES", "CODES", "FOUR_WHEELS",
           "KINDS", "KNOWN_METRICS", "MAPPING", "TPMS_SERIES", "Convert", "FieldSource",
           "TpmsSeries", "Value", "codes_for", "sources"]
