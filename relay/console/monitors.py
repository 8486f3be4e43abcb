"""A vehicle's v4 monitors: list, create from a form (zone, time window, data condition),
delete. The form becomes the same JSON body a v4 client would POST; the v4
endpoint validates it, and its messages are shown next to the field they name.
"""

from __future__ import annotations

import re
from typing import Any

from relay.console.pages import not_yours, owned_vehicle
from relay.console.summary import summary
from relay.console.web import PREFIX, Page
from relay.http.messages import Response
from relay.v4 import datapaths, monitor_model
from relay.v4.web import PREFIX as V4

DAYS = monitor_model.DAYS
OPS = monitor_model.OPS
_TIME_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_MONITOR_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _float(form: dict[str, str], name: str, low: float, high: float, what: str,
           errors: dict[str, str]) -> float | None:
    text = form.get(name, "").strip()
    try:
        value = float(text)
    except ValueError:
        errors[name] = f"{what}: enter a number."
        return None
    if not low <= value <= high or value != value:
        errors[name] = f"{what}: must be from {low:g} to {high:g}."
        return None
    return value


def build(form: dict[str, str]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """The v4 body, the form field behind each trigger (in order), and form errors."""
    errors: dict[str, str] = {}
    triggers: list[dict[str, Any]] = []
    fields: list[str] = []
    label = form.get("label", "").strip()
    if not label:
        errors["label"] = "Give the monitor a name."
    target = form.get("target", "").strip()
    if not target:
        errors["target"] = "Enter the URL to call back."
    if any(form.get(n, "").strip() for n in ("zone_lat", "zone_lon", "zone_radius")):
        lat = _float(form, "zone_lat", -90, 90, "Latitude", errors)
        lon = _float(form, "zone_lon", -180, 180, "Longitude", errors)
        radius = _float(form, "zone_radius", 0.001, monitor_model.MAX_RADIUS_KM, "Radius", errors)
        transition = form.get("zone_transition", "Out")
        if transition not in ("In", "Out"):
            errors["zone_transition"] = "Choose entering or leaving."
        if lat is not None and lon is not None and radius is not None:
            triggers.append({"name": "zone", "zone": {"transition": transition, "circle": {
                "radius": radius, "center": {"latitude": lat, "longitude": lon}}}})
            fields.append("zone_lat")
    recurrence = form.get("time_recurrence", "")
    if recurrence in ("Daily", "Weekly"):
        start = _TIME_RE.fullmatch(form.get("time_start", "").strip())
        if start is None:
            errors["time_start"] = "Start: a time of day such as 14:30."
        hours = _float(form, "time_hours", 0.01, 24 if recurrence == "Daily" else 168,
                       "Duration in hours", errors)
        days = [d for d in DAYS if form.get(f"day_{d}")]
        if recurrence == "Weekly" and not days:
            errors["time_days"] = "Choose at least one day."
        if start is not None and hours is not None and "time_days" not in errors:
            window: dict[str, Any] = {
                "recurrence": recurrence,
                "start": f"PT{int(start.group(1))}H{int(start.group(2))}M",
                "duration": f"PT{round(hours * 60)}M"}
            if recurrence == "Weekly":
                window["occurence"] = {"day": days}
            zone = form.get("time_zone", "").strip() or "UTC"
            triggers.append({"name": "window", "time": {"times": [window],
                                                        "time.zone": zone}})
            fields.append("time_start")
    elif recurrence:
        errors["time_recurrence"] = "Choose daily or weekly."
    path = form.get("data_path", "")
    if path:
        op = form.get("data_op", "")
        if op not in OPS:
            errors["data_op"] = "Choose a comparison."
        values = [v.strip() for v in form.get("data_value", "").split(",") if v.strip()]
        if not values:
            errors["data_value"] = "Enter the value to compare with."
        if "data_op" not in errors and values:
            triggers.append({"name": "data", "data": {"data": path, "op": op,
                                                      "value": values}})
            fields.append("data_value")
    if not triggers and not errors:
        errors["triggers"] = "Set a zone, a time window or a data condition (or several)."
    body = {
        "label": label,
        "subscribeParam": {"callback": {"target": target, "name": "console"}},
        "triggerParam": {"triggers": triggers,
                         "bool.exp": " & ".join(t["name"] for t in triggers)},
    }
    return body, fields, errors


def describe(trigger: dict[str, Any]) -> str:
    """One trigger of a stored monitor in words, for the list."""
    zone = trigger.get("zone")
    if isinstance(zone, dict):
        circle = zone.get("circle", {})
        center = circle.get("center", {})
        verb = "enters" if zone.get("transition") == "In" else "leaves"
        return (f"car {verb} {circle.get('radius')} km around "
                f"{center.get('latitude')}, {center.get('longitude')}")
    timing = trigger.get("time")
    if isinstance(timing, dict):
        windows = []
        for window in timing.get("times", []):
            days = ",".join(window.get("occurence", {}).get("day", []))
            windows.append(" ".join(filter(None, (
                str(window.get("recurrence", "")).lower(), days, "from",
                str(window.get("start", "")), "for", str(window.get("duration", ""))))))
        return f"{'; '.join(windows)} ({timing.get('time.zone', 'UTC')})"
    data = trigger.get("data")
    if isinstance(data, dict):
        values = " and ".join(str(v) for v in data.get("value", []))
        return f"{data.get('data')} {data.get('op')} {values}"
    return str(trigger.get("name", ""))


def error_field(message: str, fields: list[str]) -> str:
    """The form field a v4 validation message is about (``triggers`` when unsure)."""
    if message.startswith("subscribeParam.callback"):
        return "target"
    if message.startswith("label"):
        return "label"
    match = re.match(r"triggerParam\.triggers\[(\d+)\]", message)
    if match is not None and int(match.group(1)) < len(fields):
        return fields[int(match.group(1))]
    return "triggers"


async def monitors_page(page: Page, vehicleid: str, *, errors: dict[str, str] | None = None,
                        status: int = 200) -> Response:
    result = await page.api("GET", f"{V4}/user/vehicles/{vehicleid}/monitors",
                            query={"pageSize": "100"})
    items = []
    if result.ok and isinstance(result.data, dict):
        items = result.data.get("_embedded", {}).get("monitors", [])
    services = page.console.api.services
    state = await summary(services.store, services.hub, vehicleid)
    for item in items:
        triggers = item.get("triggerParam", {}).get("triggers", [])
        item["described"] = [describe(t) for t in triggers if isinstance(t, dict)]
    return page.render("monitors.html", status, v=state, monitors=items,
                       errors=errors or {}, form=page.form, days=DAYS, ops=OPS,
                       paths=sorted(datapaths.PATHS))


async def list_monitors(page: Page) -> Response:
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return not_yours(page)
    return await monitors_page(page, vehicleid)


async def create(page: Page) -> Response:
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return not_yours(page)
    body, fields, errors = build(page.form)
    if errors:
        return await monitors_page(page, vehicleid, errors=errors, status=400)
    result = await page.api("POST", f"{V4}/user/vehicles/{vehicleid}/monitors", body=body)
    if not result.ok:
        message = result.message
        return await monitors_page(page, vehicleid, status=result.status,
                                   errors={error_field(message, fields): message})
    page.notice(f"Monitor {body['label']!s} created.")
    return page.redirect(f"{PREFIX}/vehicles/{vehicleid}/monitors")


async def delete(page: Page) -> Response:
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return not_yours(page)
    monitorid = page.form.get("monitor", "")
    if not _MONITOR_ID_RE.fullmatch(monitorid):
        page.notice("No such monitor.", ok=False)
    else:
        result = await page.api("DELETE",
                                f"{V4}/user/vehicles/{vehicleid}/monitors/{monitorid}")
        page.notice("Monitor deleted." if result.ok else f"Delete failed: {result.message}",
                    ok=result.ok)
    return page.redirect(f"{PREFIX}/vehicles/{vehicleid}/monitors")
