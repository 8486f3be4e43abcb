"""The owner's pages: login, vehicles, one vehicle (status, map, charts, control, trips,
alerts), tokens and push subscriptions.

Reads and changes go through the REST endpoints (``Page.api``); what has no
endpoint (time series for charts, push subscriptions) through the same store
readers the endpoints use.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import parse_qs

from relay import accounts, db, permits
from relay.console import live
from relay.console.summary import summary
from relay.console.web import PREFIX, Page
from relay.http.authenticator import LoginBlocked
from relay.http.messages import Response
from relay.v4 import persist
from relay.v4.web import PREFIX as V4

log = logging.getLogger("relay.console")

_VEHICLE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_PARAM_RE = re.compile(r"parameter (\w+)")
# Points per chart request at most (uPlot draws 100,000 in a few milliseconds).
MAX_SERIES_ROWS = 400_000
SERIES = {
    "soc": "vehicle.energy.electric.level",
    "range": "vehicle.energy.electric.autonomy",
    "lat": "vehicle.position.latitude",
    "lon": "vehicle.position.longitude",
}
SPANS = {"1": 86400, "7": 7 * 86400, "30": 30 * 86400}
PERMITS = ("auth", "v4", "control", "token.admin", "*")
# Naming a vehicle changes the account: not for a read-only login (an "auth" token).
NAME_RIGHTS = (permits.CONTROL, permits.TOKEN_ADMIN, permits.V4)


def field_errors(message: str, names: tuple[str, ...]) -> dict[str, str]:
    """A REST validation message ("parameter pin: ...") as an error next to its field."""
    match = _PARAM_RE.search(message)
    if match is not None and match.group(1) in names:
        return {match.group(1): message}
    return {}


async def owned_vehicle(page: Page) -> str | None:
    """The path's vehicle id if the caller owns it (the REST API's own check), else None."""
    vehicleid = page.args.get("vehicleid", "").upper()
    if not _VEHICLE_RE.fullmatch(vehicleid):
        return None
    record = await page.console.api.services.store.get_vehicle(vehicleid)
    if record is None or record.owner != page.owner:
        log.info("%s: console access to vehicle %r refused", page.session.context()
                 if page.session else "-", vehicleid)
        return None
    return vehicleid


def not_yours(page: Page) -> Response:
    return page.render("error.html", 404, title="No such vehicle",
                       text="This vehicle is not one of yours.")


# --- login ------------------------------------------------------------------------------


async def login_form(page: Page) -> Response:
    if page.session is not None:
        return page.redirect(f"{PREFIX}/vehicles")
    return page.render("login.html", username="", errors={})


async def login(page: Page) -> Response:
    console = page.console
    request = page.request
    username = page.form.get("username", "").strip()
    password = page.form.get("password", "")
    errors = {}
    if not username:
        errors["username"] = "Enter your user name."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return page.render("login.html", 400, username=username, errors=errors)
    try:
        found = await console.api.auth.check(username, password, request.client_host)
    except LoginBlocked:
        return page.render("login.html", 429, username=username,
                           errors={"password": "Too many failed logins: try again later."})
    if found is None or permits.grants_nothing(found.permissions):
        log.info("console conn=%s addr=%s user=%r: login failed", request.conn_id,
                 request.client_host, username[:64])
        return page.render("login.html", 401, username=username,
                           errors={"password": "Wrong user name or password."})
    sessions = console.api.sessions
    if page.session is not None:
        sessions.end(page.session, "replaced by a new login")
    session = sessions.create(found.owner, found.permissions, request.client_host,
                              found.credential)
    log.info("%s addr=%s: console login", session.context(), request.client_host)
    return Response(303, b"", b"text/plain", (
        (b"location", f"{PREFIX}/vehicles".encode("ascii")),
        (b"set-cookie", console.login_cookie(session, request)),
        (b"cache-control", b"no-store")))


async def logout(page: Page) -> Response:
    if page.session is not None:
        page.console.api.sessions.end(page.session, "console logout")
    expired = b"ovmsapisession=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    return Response(303, b"", b"text/plain", (
        (b"location", f"{PREFIX}/".encode("ascii")), (b"set-cookie", expired)))


# --- vehicles -----------------------------------------------------------------------------


async def vehicles(page: Page) -> Response:
    result = await page.api("GET", "/api/vehicles")
    services = page.console.api.services
    rows = []
    for item in result.data or []:
        row = await summary(services.store, services.hub, str(item["id"]))
        row["name"] = await vehicle_name(page, row["id"])
        rows.append(row)
    return page.render("vehicles.html", vehicles=rows)


async def vehicle_name(page: Page, vehicleid: str) -> str:
    """The vehicle's display name ('' if none); the console's own, not in REST answers."""
    record = await page.console.api.services.store.get_vehicle(vehicleid)
    return record.name if record is not None else ""


def _items(result: Any, name: str) -> list[dict[str, Any]]:
    if not result.ok or not isinstance(result.data, dict):
        return []
    items = result.data.get("_embedded", {}).get(name, [])
    return items if isinstance(items, list) else []


async def vehicle(page: Page, *, errors: dict[str, str] | None = None,
                  status: int = 200) -> Response:
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return not_yours(page)
    services = page.console.api.services
    state = await summary(services.store, services.hub, vehicleid)
    base = f"{V4}/user/vehicles/{vehicleid}"
    trips = _items(await page.api("GET", f"{base}/trips", query={"pageSize": "20"}), "trips")
    alerts = _items(await page.api("GET", f"{base}/alerts", query={"pageSize": "20"}),
                    "alerts")
    charges = await page.api("GET", f"/api/historical/{vehicleid}/*-LOG-Charge")
    return page.render("vehicle.html", status, v=state, name=await vehicle_name(page, vehicleid),
                       max_name=db.MAX_VEHICLE_NAME, can_name=may_name(page),
                       trips=trips, alerts=alerts,
                       charges=_charges(charges.data if charges.ok else []),
                       errors=errors or {}, form=page.form)


def _charges(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``*-LOG-Charge`` records: kWh, SOC from and to, minutes, how it ended."""
    out = []
    for row in rows[-50:][::-1]:
        parts = str(row.get("h_data", "")).split(",")
        out.append({"when": row.get("h_timestamp"), "kwh": parts[0] if parts else "",
                    "soc_from": parts[1] if len(parts) > 1 else "",
                    "soc_to": parts[2] if len(parts) > 2 else "",
                    "minutes": parts[3] if len(parts) > 3 else "",
                    "end": parts[4] if len(parts) > 4 else ""})
    return out


# action: (label, method, REST path template, fixed params, form fields passed on)
CONTROLS: dict[str, tuple[str, str, str, dict[str, str], tuple[str, ...]]] = {
    "lock": ("Lock", "PUT", "/api/lock/{}", {}, ("pin",)),
    "unlock": ("Unlock", "DELETE", "/api/lock/{}", {}, ("pin",)),
    "valet_on": ("Valet mode on", "PUT", "/api/valet/{}", {}, ("pin",)),
    "valet_off": ("Valet mode off", "DELETE", "/api/valet/{}", {}, ("pin",)),
    "charge_start": ("Start charging", "PUT", "/api/charge/{}", {"action": "start"}, ()),
    "charge_stop": ("Stop charging", "DELETE", "/api/charge/{}", {}, ()),
    "charge_mode": ("Charge mode", "PUT", "/api/charge/{}", {}, ("mode",)),
    "charge_current": ("Charge current", "PUT", "/api/charge/{}", {}, ("current",)),
    "climate_on": ("Climate on", "POST", "/api/command/{}",
                   {"command": "26", "parameters": "1"}, ()),
    "climate_off": ("Climate off", "POST", "/api/command/{}",
                    {"command": "26", "parameters": "0"}, ()),
    "wakeup": ("Wake up", "POST", "/api/command/{}", {"command": "18"}, ()),
    "homelink": ("Homelink", "PUT", "/api/homelink/{}", {}, ("button",)),
}
_FIELD_LABELS = {"pin": "PIN", "mode": "charge mode", "current": "current",
                 "button": "button"}


async def control(page: Page) -> Response:
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return not_yours(page)
    action = page.form.get("action", "")
    spec = CONTROLS.get(action)
    if spec is None:
        return await vehicle(page, errors={"action": "Unknown action."}, status=400)
    label, method, path, fixed, names = spec
    params = dict(fixed)
    for name in names:
        value = page.form.get(name, "").strip()
        if not value:
            return await vehicle(
                page, errors={name: f"{label} needs the {_FIELD_LABELS[name]}."}, status=400)
        params[name] = value
    result = await page.api(method, path.format(vehicleid), params=params)
    if result.status == 400:
        errors = field_errors(result.message, names)
        if errors:
            return await vehicle(page, errors=errors, status=400)
    if result.ok:
        text = f"{label}: done ({result.status})."
    else:
        text = f"{label}: {result.message} ({result.status})."
    page.notice(text, ok=result.ok)
    return page.redirect(f"{PREFIX}/vehicles/{vehicleid}#control")


def may_name(page: Page) -> bool:
    return page.session is not None and any(
        permits.may(page.session.permissions, right) for right in NAME_RIGHTS)


async def rename(page: Page) -> Response:
    """The owner names their vehicle (the id stays: the car module is configured with it)."""
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return not_yours(page)
    if not may_name(page):
        return page.render("error.html", 403, title="Not allowed",
                           text="This login is read-only: it cannot name vehicles.")
    try:
        name = await accounts.set_vehicle_name(page.console.api.services, vehicleid,
                                               page.form.get("name", ""), page.owner)
    except accounts.AccountError as exc:
        return await vehicle(page, errors={"name": str(exc)}, status=400)
    page.notice(f"Vehicle {vehicleid} named {name}." if name
                else f"Name of vehicle {vehicleid} cleared.")
    return page.redirect(f"{PREFIX}/vehicles/{vehicleid}")


async def series(page: Page) -> Response:
    """Chart data: SOC, range and position samples as aligned columns (uPlot's shape)."""
    vehicleid = await owned_vehicle(page)
    if vehicleid is None:
        return Response(404, b"{}", b"application/json")
    span = SPANS.get(page.form.get("days", "1"), SPANS["1"])
    until = int(time.time()) + 1
    since = until - span
    try:
        since = max(since, int(page.form["since"]))
        until = min(until, int(page.form["until"]))
    except (KeyError, ValueError):
        pass
    store = page.console.api.services.store
    rows = await persist.samples(
        store, vehicleid, list(SERIES.values()), since, until, MAX_SERIES_ROWS)
    names = {path: name for name, path in SERIES.items()}
    by_time: dict[int, dict[str, float]] = {}
    for row in rows:
        by_time.setdefault(row.ts, {})[names[row.metric]] = row.value
    times = sorted(by_time)
    data: dict[str, Any] = {"t": times}
    for name in SERIES:
        data[name] = [by_time[t].get(name) for t in times]
    return Response(200, live.json_bytes(data), b"application/json",
                    ((b"cache-control", b"no-store"),))


async def events(page: Page) -> Response:
    """The page's live updates (server-sent events) for the vehicles it shows."""
    assert page.session is not None
    services = page.console.api.services
    owned = set(await services.store.owner_vehicles(page.owner))
    try:
        wanted = parse_qs(page.request.query, max_num_fields=64).get("v", [])
    except ValueError:
        wanted = []
    ids = sorted({w.upper() for w in wanted} & owned)
    session = page.session
    sessions = page.console.api.sessions

    def alive() -> bool:
        return sessions.get(session.sid) is session

    heartbeat = min(live.HEARTBEAT, max(0.05, sessions.idle_timeout / 3))
    updates = live.stream(services.store, services.hub, session, ids, alive, heartbeat)
    # A vehicle's own page counts as an app watching it, as a phone app would: the car
    # hears of it (Z) and reports often while the page is open.
    watched = ids if page.form.get("app") == "1" and len(ids) == 1 else []
    console = page.console

    async def body() -> AsyncGenerator[bytes, None]:
        for vehicleid in watched:
            console.watching(session, vehicleid, +1)
        try:
            async with contextlib.aclosing(updates):
                async for chunk in updates:
                    yield chunk
        finally:
            for vehicleid in watched:
                console.watching(session, vehicleid, -1)

    return Response(200, b"", b"text/event-stream", (
        (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")), stream=body())


# --- tokens -------------------------------------------------------------------------------


async def tokens(page: Page, *, created: dict[str, Any] | None = None,
                 errors: dict[str, str] | None = None, status: int = 200) -> Response:
    result = await page.api("GET", "/api/token")
    listed = result.data if result.ok and isinstance(result.data, list) else []
    if not result.ok:
        page.notice(f"Tokens: {result.message} ({result.status}).", ok=False)
    return page.render("tokens.html", status, tokens=listed, created=created,
                       errors=errors or {}, form=page.form, permits=PERMITS)


async def token_create(page: Page) -> Response:
    permits = [p for p in PERMITS if page.form.get(f"permit_{p}")]
    if not permits:
        return await tokens(page, errors={"permit": "Choose at least one permit."},
                            status=400)
    params = {"application": page.form.get("application", "").strip(),
              "purpose": page.form.get("purpose", "").strip(),
              "permit": ",".join(permits)}
    result = await page.api("POST", "/api/token", params=params)
    if result.status == 400:
        errors = field_errors(result.message, ("application", "purpose", "permit"))
        return await tokens(page, errors=errors or {"permit": result.message}, status=400)
    if not result.ok:
        return await tokens(page, errors={"permit": f"{result.message} ({result.status})"},
                            status=result.status)
    return await tokens(page, created=result.data, status=201)


async def token_delete(page: Page) -> Response:
    digest = page.form.get("token", "")
    if not re.fullmatch(r"[0-9a-fA-F]{1,128}", digest):
        page.notice("No such token.", ok=False)
        return page.redirect(f"{PREFIX}/tokens")
    result = await page.api("DELETE", f"/api/token/{digest}")
    page.notice("Token revoked." if result.ok else f"Revoke failed: {result.message}",
                ok=result.ok)
    return page.redirect(f"{PREFIX}/tokens")


# --- push subscriptions -------------------------------------------------------------------


def _key_id(value: str) -> str:
    # The push key (a device token or URL) never goes into the page; its digest names it.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]


async def push(page: Page) -> Response:
    store = page.console.api.services.store
    rows = []
    for vehicleid in await store.owner_vehicles(page.owner):
        for sub in await store.push_subscriptions(vehicleid):
            rows.append({"vehicleid": sub.vehicleid, "appid": sub.appid,
                         "pushtype": sub.pushtype, "pushkeytype": sub.pushkeytype,
                         "key": _key_id(sub.pushkeyvalue)})
    return page.render("push.html", subscriptions=rows)


async def push_deactivate(page: Page) -> Response:
    store = page.console.api.services.store
    vehicleid = page.form.get("vehicleid", "").upper()
    owned = await store.owner_vehicles(page.owner)
    done = False
    if vehicleid in owned:
        for sub in await store.push_subscriptions(vehicleid):
            if sub.appid == page.form.get("appid") and _key_id(sub.pushkeyvalue) == \
                    page.form.get("key"):
                await store.deactivate_push_subscription(vehicleid, sub.appid,
                                                         sub.pushkeyvalue)
                log.info("%s vehicle=%s: push subscription %s deactivated in the console",
                         page.session.context() if page.session else "-", vehicleid,
                         sub.appid)
                done = True
    page.notice("Subscription deactivated." if done else "No such subscription.", ok=done)
    return page.redirect(f"{PREFIX}/push")
