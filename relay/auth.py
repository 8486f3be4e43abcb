"""Deciding v2 logins: scheme 0 (vehicle shared secret) and scheme 1 (account)."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from protocol import ClientType, Scheme0Login, Scheme1Login
from relay.store import Store

# Token permits that grant v2 logins; a full password login has every permission.
V2_PERMITS = frozenset({"v2", "*", "all"})


@attrs.frozen
class Granted:
    owner: str
    vehicleid: str
    carpass: str = ""
    vehicleids: tuple[str, ...] = ()


@attrs.frozen
class Refused:
    reason: str
    # The digest did not match the carpass (for a car: push an authentication alert).
    wrong_secret: bool = False


async def check_scheme0(
    store: Store, login: Scheme0Login, digest_ok: Callable[[str], bool]
) -> Granted | Refused:
    """``digest_ok(carpass) -> bool`` is the session's digest check."""
    vehicle = await store.get_vehicle(login.vehicleid)
    if vehicle is None:
        return Refused("unknown vehicle")
    if (login.client_type is ClientType.SERVER) != (vehicle.vtype == "SERVER"):
        return Refused(f"client type {login.client_type.value} not allowed for a {vehicle.vtype}")
    if not digest_ok(vehicle.carpass):
        return Refused("digest does not match the carpass", wrong_secret=True)
    return Granted(vehicle.owner, vehicle.vehicleid, vehicle.carpass)


async def check_scheme1(store: Store, login: Scheme1Login) -> Granted | Refused:
    owner = await store.get_owner(login.username)
    if owner is None or owner.status != 1:
        return Refused("unknown or disabled account")
    # API tokens are 64 hex chars: try the cheap token lookup before the slow KDF.
    permit = await store.check_token(owner.name, login.password)
    if permit is None and not await store.check_password(owner.name, login.password):
        return Refused("wrong password or token")
    if permit is not None:
        permits = {p.strip() for p in permit.split(",")}
        if not permits & V2_PERMITS:
            return Refused("token lacks the v2 permission")
    vehicleids = tuple(await store.owner_vehicles(owner.name))
    if login.vehicleid == "*":
        if not vehicleids:
            return Refused("account has no vehicles")
        vehicleid = vehicleids[0]
    elif login.vehicleid in vehicleids:
        vehicleid = login.vehicleid
    else:
        return Refused("vehicle does not belong to the account")
    vehicle = await store.get_vehicle(vehicleid)
    if vehicle is None:
        return Refused("unknown vehicle")
    if (login.client_type is ClientType.SERVER) != (vehicle.vtype == "SERVER"):
        return Refused(f"client type {login.client_type.value} not allowed for a {vehicle.vtype}")
    return Granted(owner.name, vehicleid, vehicle.carpass, vehicleids)
