"""The public server's JSON shapes for stored car messages (PROTOCOL.md section 8).

Values the car sent stay the strings it sent; a field its message did not carry
is ``null``. Bitfield flags are the masked integers (``caron`` is 128, not true),
as the public server answers and clients expect. Every answer built from a
message also carries ``m_msgtime_<code>`` and ``m_msgage_<code>``, the age being
computed when the request is served.
"""

from __future__ import annotations

import time
from typing import Any

from protocol import NewTPMS
from relay.http.messages import HttpError
from relay.store import StoredMessage
from relay.timefmt import utc_text

# Field positions in the comma-separated message data, by the REST name.
STATUS_S = {
    "soc": 0, "units": 1, "chargestate": 4, "mode": 5, "idealrange": 6, "estimatedrange": 7,
    "cac100": 18, "cooldown_active": 23, "idealrange_max": 29, "soh": 33,
}
CHARGE_S = {
    "soc": 0, "units": 1, "linevoltage": 2, "chargecurrent": 3, "chargestate": 4, "mode": 5,
    "idealrange": 6, "estimatedrange": 7, "chargelimit": 8, "chargeduration": 9,
    "chargeb4": 10, "chargekwh": 11, "chargesubstate": 12, "chargetimermode": 15,
    "chargestarttime": 16, "chargetimerstale": 17, "cac100": 18, "charge_etr_full": 19,
    "charge_etr_limit": 20, "charge_limit_range": 21, "charge_limit_soc": 22,
    "cooldown_active": 23, "cooldown_tbattery": 24, "cooldown_timelimit": 25,
    "charge_estimate": 26, "charge_etr_range": 27, "charge_etr_soc": 28, "idealrange_max": 29,
    "chargetype": 30, "chargepower": 31, "battvoltage": 32, "soh": 33, "chargepowerinput": 34,
    "chargerefficiency": 35, "batt_current": 36, "batt_range_speed": 37,
    "charge_kwh_grid": 38, "charge_kwh_grid_total": 39, "batt_capacity": 40,
}
_D_VALUES_COMMON = {
    "temperature_pem": 3, "temperature_motor": 4, "temperature_battery": 5,
    "temperature_ambient": 10, "staletemps": 12, "staleambient": 13, "vehicle12v": 14,
    "vehicle12v_ref": 16, "temperature_charger": 18, "vehicle12v_current": 19,
    "temperature_cabin": 20,
}
STATUS_D = {**_D_VALUES_COMMON, "tripmeter": 6, "odometer": 7, "speed": 8, "parkingtimer": 9}
CHARGE_D = dict(_D_VALUES_COMMON)
# name: (field position, mask); PROTOCOL.md section 4 "Bitfields used by the REST API".
STATUS_D_FLAGS = {
    "fl_dooropen": (0, 0x01), "fr_dooropen": (0, 0x02), "cp_dooropen": (0, 0x04),
    "pilotpresent": (0, 0x08), "charging": (0, 0x10), "handbrake": (0, 0x40),
    "caron": (0, 0x80), "carlocked": (1, 0x08), "valetmode": (1, 0x10), "bt_open": (1, 0x40),
    "tr_open": (1, 0x80), "carawake": (11, 0x02), "alarmsounding": (15, 0x04),
    "charging_12v": (17, 0x10),
}
CHARGE_D_FLAGS = {
    name: STATUS_D_FLAGS[name]
    for name in ("cp_dooropen", "pilotpresent", "charging", "caron", "carawake", "charging_12v")
}
LOCATION_L = {
    "latitude": 0, "longitude": 1, "direction": 2, "altitude": 3, "gpslock": 4, "stalegps": 5,
    "speed": 6, "tripmeter": 7, "drivemode": 8, "power": 9, "energyused": 10,
    "energyrecd": 11, "invpower": 12, "invefficiency": 13,
}
TPMS_W = {
    "fr_pressure": 0, "fr_temperature": 1, "rr_pressure": 2, "rr_temperature": 3,
    "fl_pressure": 4, "fl_temperature": 5, "rl_pressure": 6, "rl_temperature": 7,
    "staletpms": 8,
}
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
    series = {
        "pressure": parsed.pressure, "temperature": parsed.temperature,
        "health": parsed.health, "alert": parsed.alert,
    }
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
