"""Account administration while the relay runs: owners and vehicles (the web console's
operator pages, and an owner naming their vehicle).

The store has no administrative writes: these run ``relay.db``'s admin functions,
the very ones ``ovms-admin`` uses, on a connection of their own in a worker
thread (as ``ovms-admin`` does from another process), then make the running
relay forget what they made stale: cached owner and vehicle records, cached
logins, the sessions and app connections of a renamed owner, and the car
connection of a vehicle that was deleted or got a new car password. In a cluster
(relay.bus) that forgetting is also announced: every other node does the same for
its own caches and connections (``listen``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from relay import db
from relay.http.api import HttpApi
from relay.services import Services
from relay.v4.engine import MONITORS_CHANGED, V4Engine

log = logging.getLogger("relay.accounts")

T = TypeVar("T")
AccountError = db.AdminError

# Notices (HubApi.announce): what another node changed, for this node to forget.
VEHICLE_CHANGED = "accounts.vehicle"  # (vehicle id, why its car is closed, or "")
OWNER_CHANGED = "accounts.owner"  # (owner, "logins" if its cached logins are stale, or "")
OWNER_RENAMED = "accounts.renamed"  # (old, new)


async def _run(services: Services, fn: Callable[..., T], *args: Any) -> T:
    path = services.config.db

    def work() -> T:
        conn = db.connect(path)
        try:
            return fn(conn, *args)
        finally:
            conn.close()

    return await trio.to_thread.run_sync(work)


def listen(services: Services) -> None:
    """Do here what another node's account change makes stale (a cluster)."""
    hub = services.hub
    hub.on_notice(VEHICLE_CHANGED, lambda vid, reason: _vehicle_changed(services, vid, reason))
    hub.on_notice(OWNER_CHANGED, lambda name, logins: _owner_changed(services, name, logins))
    hub.on_notice(OWNER_RENAMED, lambda old, new: _owner_renamed(services, old, new))


def _vehicle_changed(services: Services, vehicleid: str, reason: str) -> None:
    services.store.forget_cached(vehicleid=vehicleid)
    if reason:
        for peer in services.hub.vehicle_peers(vehicleid):
            if peer.is_car:
                log.info("%s: closing: %s", peer.context(), reason)
                peer.close(reason)


def _owner_changed(services: Services, name: str, logins: str) -> None:
    services.store.forget_cached(owner=name)
    if logins:
        _forget_logins(services, name)


def _owner_renamed(services: Services, old: str, new: str) -> tuple[int, int]:
    """Log out whoever is logged in under the old name: (sessions, app connections)."""
    services.store.forget_cached(owner=old)
    services.store.forget_cached(owner=new)
    _forget_logins(services, old)
    ended = _end_sessions(services, old, f"owner renamed to {new}")
    apps = [p for p in services.hub.peers() if p.owner == old and not p.is_car]
    for peer in apps:
        peer.close("owner renamed")
    return ended, len(apps)


def _vehicle(services: Services, vehicleid: str, reason: str = "") -> None:
    """Here and on every other node."""
    _vehicle_changed(services, vehicleid, reason)
    services.hub.announce(VEHICLE_CHANGED, vehicleid, reason)


def _owner(services: Services, name: str, logins: bool = False) -> None:
    """Here and on every other node."""
    _owner_changed(services, name, "logins" if logins else "")
    services.hub.announce(OWNER_CHANGED, name, "logins" if logins else "")


async def list_owners(services: Services) -> list[dict[str, Any]]:
    return await _run(services, db.list_owners)


async def list_vehicles(services: Services) -> list[dict[str, Any]]:
    return await _run(services, db.list_vehicles)


async def add_owner(services: Services, name: str, password: str, permissions: str) -> None:
    await _run(services, db.add_owner, name, password, permissions)
    _owner(services, name)
    log.info("owner=%s: created (permissions %r)", name, permissions)


async def set_password(services: Services, name: str, password: str) -> None:
    await _run(services, db.set_password, name, password)
    _owner(services, name, logins=True)
    log.info("owner=%s: password reset", name)


async def delete_owner(services: Services, name: str) -> None:
    vehicles = [v["vehicleid"] for v in await _run(services, db.list_vehicles, name)]
    await _run(services, db.delete_owner, name)
    _owner(services, name, logins=True)
    for vehicleid in vehicles:
        _vehicle(services, vehicleid, "vehicle deleted")
    log.info("owner=%s: deleted with %d vehicle(s)", name, len(vehicles))


async def rename_owner(services: Services, old: str, new: str,
                       engine: V4Engine | None = None) -> None:
    """Rename an owner. Whoever is logged in under the old name is logged out (API and
    console sessions, app connections); cars stay connected. ``engine``: API v4's, whose
    monitors in memory follow the new name."""
    vehicles = [v["vehicleid"] for v in await _run(services, db.list_vehicles, old)]
    # The v4 engine writes its monitors back with the owner it holds: give them the new
    # name before the database has it, and the old back if the rename is refused.
    entries = [] if engine is None else [
        e for vehicleid in vehicles for e in engine.monitors_of(vehicleid) if e.owner == old]
    for entry in entries:
        entry.owner = new
    try:
        await _run(services, db.rename_owner, old, new)
    except BaseException:
        for entry in entries:
            entry.owner = old
        raise
    for vehicleid in vehicles:
        _vehicle(services, vehicleid)
        # Other nodes' monitors in memory still hold the old name: they read them again.
        services.hub.announce(MONITORS_CHANGED, vehicleid)
    ended, apps = _owner_renamed(services, old, new)
    services.hub.announce(OWNER_RENAMED, old, new)
    log.info("owner=%s: renamed to %s (%d vehicle(s), %d session(s) and %d app "
             "connection(s) ended on this node)", old, new, len(vehicles), ended, apps)


async def set_vehicle_name(services: Services, vehicleid: str, name: str,
                           owner: str | None = None) -> str:
    """Set a vehicle's display name (``owner``: only if it is theirs); returns it as stored."""
    vid = db.normalize_vehicleid(vehicleid)
    stored = await _run(services, db.set_vehicle_name, vid, name, owner)
    _vehicle(services, vid)
    log.info("vehicle=%s: display name %s%s", vid, "set" if stored else "cleared",
             "" if owner is None else f" by its owner {owner}")
    return stored


async def add_vehicle(services: Services, vehicleid: str, owner: str, carpass: str) -> str:
    vid = await _run(services, db.add_vehicle, vehicleid, owner, carpass)
    _vehicle(services, vid)
    log.info("vehicle=%s: created for owner %s", vid, owner)
    return vid


async def delete_vehicle(services: Services, vehicleid: str) -> None:
    vid = db.normalize_vehicleid(vehicleid)
    _vehicle(services, vid, "vehicle deleted")
    await _run(services, db.delete_vehicle, vid)
    # Again after the delete: a car that logged in meanwhile, or a cached record.
    _vehicle(services, vid, "vehicle deleted")
    log.info("vehicle=%s: deleted", vid)


async def reset_carpass(services: Services, vehicleid: str) -> str:
    """A new random car password (returned, to be shown once); the car must log in again."""
    vid = db.normalize_vehicleid(vehicleid)
    carpass = secrets.token_urlsafe(12)
    await _run(services, db.set_carpass, vid, carpass)
    _vehicle(services, vid, "car password reset")
    log.info("vehicle=%s: car password reset", vid)
    return carpass


def _forget_logins(services: Services, owner: str) -> None:
    api = services.http_api
    if isinstance(api, HttpApi):
        api.auth.forget(owner)


def _end_sessions(services: Services, owner: str, reason: str) -> int:
    """End every API and console session of ``owner``; how many ended."""
    api = services.http_api
    if not isinstance(api, HttpApi):
        return 0
    held = {pair for pair in api.sessions.credentials() if pair[0] == owner}
    ended: int = api.sessions.end_revoked(held, reason)
    return ended
