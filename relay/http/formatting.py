"""The public server's JSON shapes for stored car messages (PROTOCOL.md section 8).

Values the car sent stay the strings it sent; a field its message did not carry
is ``null``. Bitfield flags are the masked integers (``caron`` is 128, not true),
as the public server answers and clients expect. Every answer built from a
message also carries ``m_msgtime_<code>`` and ``m_msgage_<code>``, the age being
computed when the request is served. Field positions and flag bits come from
``protocol.fields``, the description API v4 reads too.
"""

from __future__ import annotations

import time
from typing import Any

from protocol import NewTPMS
from protocol import fields as layouts
from relay.http.messages import HttpError
from relay.store import StoredMessage
from relay.timefmt import utc_text

# REST name -> field of the message's layout (``protocol.fields``, imported as
# ``layouts``). The REST names are the public server's; positions and masks come
# from the layout.
STATUS_S_FIELDS = {
    "soc": "soc", "units": "units", "chargestate": "chargestate", "mode": "chargemode",
    "idealrange": "idealrange", "estimatedrange": "estimatedrange", "cac100": "cac100",
    "cooldown_active": "cooldown_active", "idealrange_max": "idealrange_max", "soh": "soh",
}
CHARGE_S_FIELDS = {
    "soc": "soc", "units": "units", "linevoltage": "linevoltage",
    "chargecurrent": "chargecurrent", "chargestate": "chargestate", "mode": "chargemode",
    "idealrange": "idealrange", "estimatedrange": "estimatedrange",
    "chargelimit": "chargelimit", "chargeduration": "chargeduration", "chargeb4": "chargeb4",
    "chargekwh": "chargekwh", "chargesubstate": "chargesubstate",
    "chargetimermode": "chargetimermode", "chargestarttime": "chargestarttime",
    "chargetimerstale": "chargetimerstale", "cac100": "cac100",
    "charge_etr_full": "charge_etr_full", "charge_etr_limit": "charge_etr_limit",
    "charge_limit_range": "charge_limit_range", "charge_limit_soc": "charge_limit_soc",
    "cooldown_active": "cooldown_active", "cooldown_tbattery": "cooldown_tbattery",
    "cooldown_timelimit": "cooldown_timelimit", "charge_estimate": "charge_estimate",
    "charge_etr_range": "charge_etr_range", "charge_etr_soc": "charge_etr_soc",
    "idealrange_max": "idealrange_max", "chargetype": "chargetype",
    "chargepower": "chargepower", "battvoltage": "battvoltage", "soh": "soh",
    "chargepowerinput": "chargepowerinput", "chargerefficiency": "chargerefficiency",
    "batt_current": "battcurrent", "batt_range_speed": "battrangespeed",
    "charge_kwh_grid": "chargekwhgrid", "charge_kwh_grid_total": "chargekwhgridtotal",
    "batt_capacity": "batt_capacity",
}
_D_VALUES_COMMON = {
    "temperature_pem": "temp_pem", "temperature_motor": "temp_motor",
    "temperature_battery": "temp_battery", "temperature_ambient": "temp_ambient",
    "staletemps": "staletemps", "staleambient": "staleambient", "vehicle12v": "vehicle12v",
    "vehicle12v_ref": "vehicle12v_ref", "temperature_charger": "temp_charger",
    "vehicle12v_current": "vehicle12v_current", "temperature_cabin": "temp_cabin",
}
STATUS_D_FIELDS = {**_D_VALUES_COMMON, "tripmeter": "tripmeter", "odometer": "odometer",
                   "speed": "speed", "parkingtimer": "parktimer"}
CHARGE_D_FIELDS = dict(_D_VALUES_COMMON)
# The flags are the layout's bits of the same name (PROTOCOL.md section 4).
STATUS_D_FLAG_NAMES = (
    "fl_dooropen", "fr_dooropen", "cp_dooropen", "pilotpresent", "charging", "handbrake",
    "caron", "carlocked", "valetmode", "bt_open", "tr_open", "carawake", "alarmsounding",
    "charging_12v",
)
CHARGE_D_FLAG_NAMES = ("cp_dooropen", "pilotpresent", "charging", "caron", "carawake",
                       "charging_12v")
LOCATION_L_FIELDS = {name: name for name in (
    "latitude", "longitude", "direction", "altitude", "gpslock", "stalegps", "speed",
    "tripmeter", "drivemode", "power", "energyused", "energyrecd", "invpower",
    "invefficiency")}
TPMS_W_FIELDS = {
    "fr_pressure": "fr_pressure", "fr_temperature": "fr_temp",
    "rr_pressure": "rr_pressure", "rr_temperature": "rr_temp",
    "fl_pressure": "fl_pressure", "fl_temperature": "fl_temp",
    "rl_pressure": "rl_pressure", "rl_temperature": "rl_temp", "staletpms": "staletpms",
}


def positions(layout: layouts.Layout, names: dict[str, str]) -> dict[str, int]:
    """REST name -> field position; KeyError for a field the layout does not have."""
    return {rest: layout.index(field) for rest, field in names.items()}


def flag_masks(layout: layouts.Layout, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """REST name -> (field position, mask) of the layout's bit of that name."""
    return {name: (layout.flag(name).index, layout.flag(name).bit.mask) for name in names}


# Field positions in the comma-separated message data, by the REST name.
STATUS_S = positions(layouts.STATUS, STATUS_S_FIELDS)
CHARGE_S = positions(layouts.STATUS, CHARGE_S_FIELDS)
STATUS_D = positions(layouts.DOORS, STATUS_D_FIELDS)
CHARGE_D = positions(layouts.DOORS, CHARGE_D_FIELDS)
# name: (field position, mask)
STATUS_D_FLAGS = flag_masks(layouts.DOORS, STATUS_D_FLAG_NAMES)
CHARGE_D_FLAGS = flag_masks(layouts.DOORS, CHARGE_D_FLAG_NAMES)
LOCATION_L = positions(layouts.LOCATION, LOCATION_L_FIELDS)
TPMS_W = positions(layouts.TPMS, TPMS_W_FIELDS)
KPA_TO_PSI = 0.14503773773020923
# Wheel names become JSON keys; past this many a Y message is not a real car's.
MAX_WHEELS = 16

PARANOID_TEXT = "Paranoid vehicles not supported by api"


def fields(data: str) -> list[str]:
    """Split message data as Perl's ``split /,/`` does: trailing empty fields vanish."""
    values = data.split(",") if data else []
    while values and values[-1] == "":
        values.pop()
    return values


def flag(values: list[str], index: int, mask: int) -> int:
    """``value & mask`` with Perl's numeric reading of the text (non-numbers are 0)."""
    if index >= len(values):
        return 0
    text = values[index].strip()
    try:
        number = int(text)
    except ValueError:
        try:
            number = int(float(text))
        except (ValueError, OverflowError):
            return 0
    return number & mask


def _pick(values: list[str], positions: dict[str, int], out: dict[str, Any]) -> None:
    n = len(values)
    for name, index in positions.items():
        out[name] = values[index] if index < n else None


def _flags(values: list[str], flags: dict[str, tuple[int, int]], out: dict[str, Any]) -> None:
    for name, (index, mask) in flags.items():
        out[name] = flag(values, index, mask)


def time_text(ts: float) -> str:
    """UTC text of a stored time; a car-supplied one out of calendar range stays a number."""
    try:
        return utc_text(ts)
    except (ValueError, OverflowError, OSError):
        return str(int(ts))


def stamp(msg: StoredMessage, suffix: str, out: dict[str, Any], now: float) -> None:
    """``m_msgtime_<suffix>`` (UTC text) and ``m_msgage_<suffix>`` (seconds, request time)."""
    sent = int(msg.msgtime)
    out["m_msgtime_" + suffix] = time_text(sent)
    out["m_msgage_" + suffix] = max(0, int(now) - sent)


def _usable(msg: StoredMessage | None) -> StoredMessage | None:
    if msg is not None and msg.paranoid:
        raise HttpError(502, PARANOID_TEXT)
    return msg


def status(latest: dict[str, StoredMessage], now: float | None = None) -> dict[str, Any]:
    return _s_and_d(latest, STATUS_S, STATUS_D, STATUS_D_FLAGS, now)


def charge(latest: dict[str, StoredMessage], now: float | None = None) -> dict[str, Any]:
    return _s_and_d(latest, CHARGE_S, CHARGE_D, CHARGE_D_FLAGS, now)


def _s_and_d(
    latest: dict[str, StoredMessage],
    s_fields: dict[str, int],
    d_fields: dict[str, int],
    d_flags: dict[str, tuple[int, int]],
    now: float | None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    s = _usable(latest.get("S"))
    if s is not None:
        stamp(s, "s", out, now)
        _pick(fields(s.data), s_fields, out)
    d = latest.get("D")
    # An undecodable (paranoid) D is left out rather than failing the answer.
    if d is not None and not d.paranoid:
        values = fields(d.data)
        stamp(d, "d", out, now)
        _pick(values, d_fields, out)
        _flags(values, d_flags, out)
    return out


def location(latest: dict[str, StoredMessage], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    msg = _usable(latest.get("L"))
    if msg is not None:
        stamp(msg, "l", out, now)
        _pick(fields(msg.data), LOCATION_L, out)
    return out


def door_flags(latest: dict[str, StoredMessage], names: tuple[str, ...],
               now: float | None = None) -> dict[str, Any]:
    """Selected ``D`` flags (lock and valet state) with the message's time."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    msg = _usable(latest.get("D"))
    if msg is not None:
        stamp(msg, "d", out, now)
        _flags(fields(msg.data), {n: STATUS_D_FLAGS[n] for n in names}, out)
    return out


def tpms(latest: dict[str, StoredMessage], now: float | None = None) -> dict[str, Any]:
    """From ``Y`` (new TPMS) when stored, else from ``W``."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    y = _usable(latest.get("Y"))
    if y is not None:
        _new_tpms(y, out, now)
        return out
    w = _usable(latest.get("W"))
    if w is not None:
        stamp(w, "w", out, now)
        _pick(fields(w.data), TPMS_W, out)
    return out


def _psi(kpa: str) -> float | None:
    try:
        value = float(kpa) * KPA_TO_PSI
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _new_tpms(msg: StoredMessage, out: dict[str, Any], now: float) -> None:
    parsed = NewTPMS.from_data(msg.data)
    stamp(msg, "y", out, now)
    names = parsed.names or ()
    series = {kind: getattr(parsed, kind) for kind in layouts.NEW_TPMS.series
              if kind not in layouts.NEW_TPMS.optional}
    for i, raw in enumerate(names[:MAX_WHEELS]):
        wheel = raw.lower()
        if i < len(parsed.pressure.values):
            out[f"{wheel}_pressure_kpa"] = parsed.pressure.values[i]
            out[f"{wheel}_pressure"] = _psi(parsed.pressure.values[i])
        for kind in ("temperature", "health", "alert"):
            values = series[kind].values
            if i < len(values):
                out[f"{wheel}_{kind}"] = values[i]
    stale: list[int] = []
    for kind, s in series.items():
        out[f"stale_{kind}"] = s.validity
        if s.validity is not None:
            try:
                stale.append(int(s.validity))
            except ValueError:
                pass
    # Older clients read the W-era fields: the same time, and the overall staleness.
    stamp(msg, "w", out, now)
    out["staletpms"] = str(max(stale)) if stale else None


def replay_order(msg: StoredMessage) -> tuple[int, str]:
    """``F`` first, then ``S``, then the rest by code (the public server's order)."""
    return ({"F": 0, "S": 1}.get(msg.code, 2), msg.code)


def protocol_rows(latest: dict[str, StoredMessage], ptoken: str) -> list[dict[str, Any]]:
    rows = []
    for msg in sorted(latest.values(), key=replay_order):
        if msg.paranoid and msg.ptoken != ptoken:
            continue  # stored under an older paranoid token: no longer valid
        rows.append({
            "m_code": msg.code,
            "m_msg": msg.data,
            "m_msgtime": time_text(int(msg.msgtime)),
            "m_paranoid": 1 if msg.paranoid else 0,
            "m_ptoken": msg.ptoken,
        })
    return rows
