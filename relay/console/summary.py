"""A vehicle's state as the console shows it, from the store's latest messages.

The REST API's own formatting (``relay.http.formatting``) reads the messages, so a
value means the same on a page as in ``GET /api/status``. The same dict fills the
vehicle list, the vehicle page and each live update sent to the browser.
"""

from __future__ import annotations

import time
from typing import Any

from relay.http import formatting
from relay.http.messages import HttpError
from relay.hubapi import HubApi
from relay.store import Store

# What a live update carries (and the pages show), by source.
STATUS_KEYS = (
    "soc", "units", "chargestate", "mode", "idealrange", "estimatedrange", "soh",
    "temperature_battery", "temperature_motor", "temperature_pem", "temperature_ambient",
    "temperature_cabin", "temperature_charger", "vehicle12v", "odometer", "speed",
    "carlocked", "valetmode", "fl_dooropen", "fr_dooropen", "cp_dooropen", "bt_open",
    "tr_open", "charging", "caron", "pilotpresent",
)
CHARGE_KEYS = ("chargepower", "linevoltage", "chargecurrent", "chargelimit", "chargekwh",
               "chargetype", "battvoltage", "charge_etr_full")
LOCATION_KEYS = ("latitude", "longitude", "direction", "altitude", "gpslock", "power")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


async def summary(store: Store, hub: HubApi, vehicleid: str, now: float | None = None
                  ) -> dict[str, Any]:
    now = time.time() if now is None else now
    latest = await store.latest(vehicleid)
    out: dict[str, Any] = {"id": vehicleid, "online": hub.car_connected(vehicleid),
                           "paranoid": False}
    try:
        status = formatting.status(latest, now)
        charge = formatting.charge(latest, now)
        location = formatting.location(latest, now)
        tpms = formatting.tpms(latest, now)
    except HttpError:
        # A paranoid car's messages are encrypted for its apps: nothing to show.
        out["paranoid"] = True
        status, charge, location, tpms = {}, {}, {}, {}
    for keys, source in ((STATUS_KEYS, status), (CHARGE_KEYS, charge),
                         (LOCATION_KEYS, location)):
        for key in keys:
            out[key] = source.get(key)
    out["tpms"] = {k: v for k, v in tpms.items() if not k.startswith("m_msg")}
    firmware = latest.get("F")
    if firmware is not None and not firmware.paranoid:
        parts = formatting.fields(firmware.data)
        out["firmware"] = parts[0] if parts else None
        out["vin"] = parts[1] if len(parts) > 1 else None
        out["vtype"] = parts[4] if len(parts) > 4 else None
    else:
        out["firmware"] = out["vin"] = out["vtype"] = None
    last = store.last_update(vehicleid)
    if last is None and latest:
        last = max(m.msgtime for m in latest.values())
    out["updated"] = last
    out["age"] = None if last is None else max(0, int(now - last))
    out["lat"] = _number(out["latitude"])
    out["lon"] = _number(out["longitude"])
    if out["lat"] is None or out["lon"] is None or (out["lat"] == 0 and out["lon"] == 0):
        out["lat"] = out["lon"] = None
    return out
