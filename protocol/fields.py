"""The field layout of every car message, described once (PROTOCOL.md section 4).

Each ``Layout`` names a message's comma-separated fields in order, with their
kind: ``number``, ``string`` or ``bitfield`` (whose bits are named, bit 0 being
the value 1). ``Y`` (new TPMS) is made of counted lists instead and has a
``CountedLayout``. Everything that reads a car message by field goes through
these descriptions: the typed views of ``protocol.messages``, the REST answers
(``relay.http.formatting``) and the API v4 data paths (``relay.v4.datapaths``).
Looking up a name that is not described raises ``KeyError``, so a reader cannot
quietly drift from the layout.

Bit names are unique within a layout, so a flag can be named without its field.
Where the REST API exposes a flag, the bit carries the REST name.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import attrs

Kind: TypeAlias = Literal["number", "string", "bitfield"]


@attrs.frozen
class Bit:
    name: str
    bit: int  # bit 0 = value 1
    description: str = ""

    @property
    def mask(self) -> int:
        return 1 << self.bit


@attrs.frozen
class Field:
    name: str
    kind: Kind = "number"
    bits: tuple[Bit, ...] = ()


@attrs.frozen
class FlagPosition:
    """Where a named bit lives: the field's position in the message and its mask."""

    field: Field
    index: int
    bit: Bit


@attrs.frozen
class Layout:
    """Positional fields; values after the last described one are kept, unnamed."""

    code: str
    title: str
    fields: tuple[Field, ...]
    _index: dict[str, int] = attrs.field(init=False, repr=False, eq=False)
    _flags: dict[str, FlagPosition] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        index = {f.name: i for i, f in enumerate(self.fields)}
        flags = {b.name: FlagPosition(f, i, b)
                 for i, f in enumerate(self.fields) for b in f.bits}
        if len(index) != len(self.fields):
            raise ValueError(f"{self.code}: duplicate field name")
        if len(flags) != sum(len(f.bits) for f in self.fields):
            raise ValueError(f"{self.code}: duplicate bit name")
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_flags", flags)

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def index(self, name: str) -> int:
        """Position of field ``name``; KeyError if the layout has no such field."""
        return self._index[name]

    def field(self, name: str) -> Field:
        return self.fields[self._index[name]]

    def flag(self, name: str) -> FlagPosition:
        """The bit called ``name`` in any of the layout's bitfields; KeyError if none."""
        return self._flags[name]

    def flags(self) -> tuple[FlagPosition, ...]:
        return tuple(self._flags.values())


@attrs.frozen
class CountedLayout:
    """Counted lists (``n, item1..itemN``): first ``lists``, then ``series``, each of
    which is followed by a validity flag. ``optional`` series may be absent."""

    code: str
    title: str
    lists: tuple[str, ...]
    series: tuple[str, ...]
    optional: tuple[str, ...] = ()


@attrs.frozen
class ListLayout:
    """Every comma-separated value is one item of the same kind (``V``), or the
    message is carried whole without fields the server reads (``X``)."""

    code: str
    title: str
    item: str | None


def _n(*names: str) -> tuple[Field, ...]:
    return tuple(Field(name) for name in names)


def _s(*names: str) -> tuple[Field, ...]:
    return tuple(Field(name, "string") for name in names)


def _bits(name: str, *bits: tuple[int, str, str]) -> Field:
    return Field(name, "bitfield", tuple(Bit(n, b, d) for b, n, d in bits))


STATUS: Final = Layout("S", "status", (
    *_n("soc"), *_s("units"), *_n("linevoltage", "chargecurrent"),
    *_s("chargestate", "chargemode"),
    *_n("idealrange", "estimatedrange", "chargelimit", "chargeduration", "chargeb4",
        "chargekwh", "chargesubstate", "chargestate_n", "chargemode_n", "chargetimermode",
        "chargestarttime", "chargetimerstale", "cac100", "charge_etr_full",
        "charge_etr_limit", "charge_limit_range", "charge_limit_soc", "cooldown_active",
        "cooldown_tbattery", "cooldown_timelimit", "charge_estimate", "charge_etr_range",
        "charge_etr_soc", "idealrange_max"),
    *_s("chargetype"),
    *_n("chargepower", "battvoltage", "soh", "chargepowerinput", "chargerefficiency",
        "battcurrent", "battrangespeed", "chargekwhgrid", "chargekwhgridtotal",
        "batt_capacity", "charge_endtime"),
))

DOORS: Final = Layout("D", "doors and environment", (
    _bits("doors1",
          (0, "fl_dooropen", "front left door open"),
          (1, "fr_dooropen", "front right door open"),
          (2, "cp_dooropen", "charge port open"),
          (3, "pilotpresent", "charge pilot signal present"),
          (4, "charging", "charging"),
          (6, "handbrake", "handbrake engaged"),
          (7, "caron", "car on")),
    _bits("doors2",
          (3, "carlocked", "locked"),
          (4, "valetmode", "valet mode"),
          (5, "headlights", "headlights on"),
          (6, "bt_open", "bonnet open"),
          (7, "tr_open", "trunk open")),
    *_n("lockunlock", "temp_pem", "temp_motor", "temp_battery", "tripmeter", "odometer",
        "speed", "parktimer", "temp_ambient"),
    # As for doors4 below, the generations disagree: the public server's REST field
    # reads bit 1, OVMS v3 modules set bit 0 (and bit 1 for the cooling pump).
    _bits("doors3", (0, "carawake_v3", "car awake (OVMS v3 modules)"),
          (1, "carawake", "car awake (the REST field)"),
          (6, "ctrl_login", "logged into the car's controller"),
          (7, "ctrl_config", "car's controller in configuration mode")),
    *_n("staletemps", "staleambient", "vehicle12v"),
    # The two firmware generations disagree: v2 modules set bit 2 (what the public
    # server's REST field reads), v3 modules set bit 1. Both are named here, so REST
    # can stay the public server's and v4 can read either.
    _bits("doors4", (1, "alarmsounding_v3", "alarm sounding (OVMS v3 modules)"),
          (2, "alarmsounding", "alarm sounding (OVMS v2 modules; the REST field)")),
    *_n("vehicle12v_ref"),
    # Not in the public server's REST answers; as OVMS v3 modules set them.
    _bits("doors5",
          (0, "rl_dooropen", "rear left door open"),
          (1, "rr_dooropen", "rear right door open"),
          (4, "charging_12v", "12 V battery charging"),
          (7, "hvac", "climate control running")),
    *_n("temp_charger", "vehicle12v_current", "temp_cabin"),
))

LOCATION: Final = Layout("L", "location", (
    *_n("latitude", "longitude", "direction", "altitude", "gpslock", "stalegps", "speed",
        "tripmeter"),
    *_s("drivemode"),
    *_n("power", "energyused", "energyrecd", "invpower", "invefficiency"),
    *_s("gpsmode"),
    *_n("satcount", "hdop", "gpsspeed", "gpsquality"),
))

# Pressures in psi.
TPMS: Final = Layout("W", "TPMS (old style)", _n(
    "fr_pressure", "fr_temp", "rr_pressure", "rr_temp", "fl_pressure", "fl_temp",
    "rl_pressure", "rl_temp", "staletpms"))

FIRMWARE: Final = Layout("F", "firmware", (
    *_s("version", "vin"), *_n("signal_quality", "write_enabled"),
    *_s("vehicle_type", "network"), *_n("service_km", "service_seconds"),
    *_s("hardware", "modem_mode"),
))

# Pressures in kPa. Layout: n, names...; then each series as n, values..., validity.
NEW_TPMS: Final = CountedLayout(
    "Y", "TPMS (new style)", lists=("names",),
    series=("pressure", "temperature", "health", "alert", "mapping"),
    optional=("mapping",))

CAPABILITIES: Final = ListLayout("V", "capabilities", item="capability")
GENERATOR: Final = ListLayout("X", "power export / generator metrics", item=None)

LAYOUTS: Final[dict[str, Layout]] = {
    layout.code: layout for layout in (STATUS, DOORS, LOCATION, TPMS, FIRMWARE)}
ALL: Final[dict[str, Layout | CountedLayout | ListLayout]] = {
    **LAYOUTS, "Y": NEW_TPMS, "V": CAPABILITIES, "X": GENERATOR}
