"""Operators' pages (owners with the ``admin`` permit): server status, owners and vehicles,
and each vehicle's connections and recent logins."""

from __future__ import annotations

import collections
import logging
import re
import time
from typing import Any

from protocol import ClientType
from relay import accounts, db
from relay.console.web import PREFIX, Console, Page
from relay.http.messages import Response

log = logging.getLogger("relay.console")

_PERMISSIONS_RE = re.compile(r"[A-Za-z0-9_.*,-]{1,200}")


def server_status(console: Console) -> dict[str, Any]:
    services = console.api.services
    counts = collections.Counter(p.client_type for p in services.hub.peers())
    now = time.monotonic()
    engine = console.engine
    messages = engine.stats.messages if engine is not None else 0
    rate = console.message_rate(now, messages)
    push = services.push
    return {
        "cars": counts[ClientType.CAR],
        "apps": counts[ClientType.APP],
        "batch": counts[ClientType.BATCH],
        "sessions": len(console.api.sessions),
        "rate": rate,
        "messages": messages,
        "store_queue": services.store.queue_depth,
        "push_queue": push.queue_depth if push is not None else None,
        "uptime": int(now - console.started),
    }


async def admin(page: Page, *, errors: dict[str, str] | None = None,
                shown: dict[str, str] | None = None, status: int = 200) -> Response:
    services = page.console.api.services
    owners = await accounts.list_owners(services)
    vehicles = await accounts.list_vehicles(services)
    for v in vehicles:
        v["online"] = services.hub.car_connected(v["vehicleid"])
        v["apps"] = services.hub.app_count(v["vehicleid"])
    return page.render("admin.html", status, server=server_status(page.console),
                       owners=owners, vehicles=vehicles, errors=errors or {},
                       form=page.form, shown=shown, max_name=db.MAX_VEHICLE_NAME)


def _missing(form: dict[str, str], names: dict[str, str]) -> dict[str, str]:
    return {name: f"Enter the {what}." for name, what in names.items()
            if not form.get(name, "").strip()}


async def owner_create(page: Page) -> Response:
    form = page.form
    errors = _missing(form, {"owner_name": "owner's name", "owner_password": "password"})
    permissions = form.get("owner_permissions", "").strip() or "*"
    if not _PERMISSIONS_RE.fullmatch(permissions):
        errors["owner_permissions"] = "Permits: comma-separated words, such as auth,v4."
    if errors:
        return await admin(page, errors=errors, status=400)
    try:
        await accounts.add_owner(page.console.api.services, form["owner_name"].strip(),
                                 form["owner_password"], permissions)
    except accounts.AccountError as exc:
        return await admin(page, errors={"owner_name": str(exc)}, status=400)
    page.notice(f"Owner {form['owner_name'].strip()} created.")
    return page.redirect(f"{PREFIX}/admin")


async def owner_password(page: Page) -> Response:
    name = page.form.get("name", "")
    password = page.form.get("password", "")
    if not password:
        return await admin(page, errors={f"password-{name}": "Enter the new password."},
                           status=400)
    try:
        await accounts.set_password(page.console.api.services, name, password)
    except accounts.AccountError as exc:
        return await admin(page, errors={f"password-{name}": str(exc)}, status=400)
    page.notice(f"Password of {name} reset.")
    return page.redirect(f"{PREFIX}/admin")


async def owner_delete(page: Page) -> Response:
    name = page.form.get("name", "")
    if name == page.owner:
        page.notice("You cannot delete your own account here.", ok=False)
        return page.redirect(f"{PREFIX}/admin")
    try:
        await accounts.delete_owner(page.console.api.services, name)
    except accounts.AccountError as exc:
        page.notice(str(exc), ok=False)
        return page.redirect(f"{PREFIX}/admin")
    page.notice(f"Owner {name} and their vehicles deleted.")
    return page.redirect(f"{PREFIX}/admin")


async def owner_rename(page: Page) -> Response:
    name = page.form.get("name", "")
    new = page.form.get("new_name", "").strip()
    field = f"rename-{name}"
    if name == page.owner:
        # The session would end with the old name: an operator renames another operator.
        page.notice("You cannot rename your own account here.", ok=False)
        return page.redirect(f"{PREFIX}/admin")
    if not new:
        return await admin(page, errors={field: "Enter the new name."}, status=400)
    try:
        await accounts.rename_owner(page.console.api.services, name, new, page.console.engine)
    except accounts.AccountError as exc:
        return await admin(page, errors={field: str(exc)}, status=400)
    page.notice(f"Owner {name} renamed to {new}.")
    return page.redirect(f"{PREFIX}/admin")


async def vehicle_name(page: Page) -> Response:
    vehicleid = page.form.get("vehicleid", "")
    try:
        name = db.check_vehicle_name(page.form.get("name", ""))
    except accounts.AccountError as exc:
        return await admin(page, errors={f"name-{vehicleid.upper()}": str(exc)}, status=400)
    try:
        name = await accounts.set_vehicle_name(page.console.api.services, vehicleid, name)
    except accounts.AccountError as exc:  # no such vehicle (any more): no field to mark
        page.notice(str(exc), ok=False)
        return page.redirect(f"{PREFIX}/admin")
    vid = vehicleid.upper()
    page.notice(f"Vehicle {vid} named {name}." if name else f"Name of vehicle {vid} cleared.")
    return page.redirect(f"{PREFIX}/admin")


async def vehicle_create(page: Page) -> Response:
    form = page.form
    errors = _missing(form, {"vehicle_id": "vehicle id", "vehicle_owner": "owner",
                             "vehicle_carpass": "car password"})
    if errors:
        return await admin(page, errors=errors, status=400)
    try:
        vid = await accounts.add_vehicle(page.console.api.services, form["vehicle_id"].strip(),
                                         form["vehicle_owner"].strip(), form["vehicle_carpass"])
    except accounts.AccountError as exc:
        field = "vehicle_owner" if "owner" in str(exc) and "exists" not in str(exc) \
            else "vehicle_id"
        return await admin(page, errors={field: str(exc)}, status=400)
    page.notice(f"Vehicle {vid} created.")
    return page.redirect(f"{PREFIX}/admin")


async def vehicle_delete(page: Page) -> Response:
    vehicleid = page.form.get("vehicleid", "")
    try:
        await accounts.delete_vehicle(page.console.api.services, vehicleid)
    except accounts.AccountError as exc:
        page.notice(str(exc), ok=False)
        return page.redirect(f"{PREFIX}/admin")
    page.notice(f"Vehicle {vehicleid} and everything stored for it deleted.")
    return page.redirect(f"{PREFIX}/admin")


async def vehicle_carpass(page: Page) -> Response:
    vehicleid = page.form.get("vehicleid", "")
    try:
        carpass = await accounts.reset_carpass(page.console.api.services, vehicleid)
    except accounts.AccountError as exc:
        page.notice(str(exc), ok=False)
        return page.redirect(f"{PREFIX}/admin")
    # Shown once, on this answer only (like a new API token).
    return await admin(page, shown={"vehicleid": vehicleid.upper(), "carpass": carpass})


async def vehicle_log(page: Page) -> Response:
    services = page.console.api.services
    vehicleid = page.args.get("vehicleid", "").upper()[:32]
    record = await services.store.get_vehicle(vehicleid)
    now = time.monotonic()
    peers = [{"conn": p.conn_id, "type": p.client_type.label, "address": p.address,
              "owner": p.owner, "quiet": int(now - p.last_rx)}
             for p in services.hub.vehicle_peers(vehicleid)]
    return page.render("admin_vehicle.html", vehicleid=vehicleid, record=record, peers=peers,
                       logins=services.connlog.recent(vehicleid),
                       last=services.store.last_update(vehicleid))
