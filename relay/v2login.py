"""Deciding v2 logins: scheme 0 (vehicle shared secret) and scheme 1 (account).

Every login asks the login guard (relay.loginguard), shared with the REST API,
first and again right before its secret is compared, and tells it the outcome.
Refusals must not tell an id that exists from one that does not: unknown vehicles
and accounts cost the same work as a wrong secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from functools import partial

import attrs

from protocol import ClientType, Scheme0Login, Scheme1Login
from relay import permits
from relay.loginguard import GuardRefusal, LoginGuard, owner_account, vehicle_account
from relay.store import Store

# The digest of a login for an unknown vehicle is checked against this (it never matches).
_DUMMY_CARPASS = secrets.token_urlsafe(16)


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
    # Unknown id or wrong secret: a failed login for the guard (not: right secret, but
    # the wrong client type or no v2 right).
    bad_credentials: bool = False
    # Refused unchecked by the login guard, which logs a block once: not worth a line each.
    blocked: bool = False


async def _guarded(
    guard: LoginGuard, host: str, account: str,
    check: Callable[[Callable[[], None]], Awaitable[Granted | Refused]],
) -> Granted | Refused:
    """``check(admit)`` calls ``admit()`` right before comparing the secret."""
    admit = partial(guard.admit, host, account)
    try:
        admit()
        result = await check(admit)
    except GuardRefusal as exc:
        return Refused(str(exc), blocked=True)
    if isinstance(result, Refused) and result.bad_credentials:
        guard.failed(host, account)
    else:
        guard.succeeded(host, account)
    return result


async def check_scheme0(
    store: Store, login: Scheme0Login, digest_ok: Callable[[str], bool],
    guard: LoginGuard, host: str,
) -> Granted | Refused:
    """``digest_ok(carpass) -> bool`` is the session's digest check; ``host`` the client's."""
    return await _guarded(guard, host, vehicle_account(login.vehicleid),
                          partial(_scheme0, store, login, digest_ok))


async def _scheme0(
    store: Store, login: Scheme0Login, digest_ok: Callable[[str], bool],
    admit: Callable[[], None],
) -> Granted | Refused:
    # Known and unknown vehicles take the same path: one database read (the cache
    # would answer only for known ones) and one digest check.
    vehicle = await store.get_vehicle(login.vehicleid, fresh=True)
    # No checkpoint from here until the guard counts the outcome.
    admit()
    matches = digest_ok(_DUMMY_CARPASS if vehicle is None else vehicle.carpass)
    if vehicle is None:
        return Refused("unknown vehicle", bad_credentials=True)
    if not matches:
        return Refused("digest does not match the carpass", wrong_secret=True,
                       bad_credentials=True)
    if (login.client_type is ClientType.SERVER) != (vehicle.vtype == "SERVER"):
        return Refused(f"client type {login.client_type.value} not allowed for a {vehicle.vtype}")
    return Granted(vehicle.owner, vehicle.vehicleid, vehicle.carpass)


async def check_scheme1(
    store: Store, login: Scheme1Login, guard: LoginGuard, host: str
) -> Granted | Refused:
    return await _guarded(guard, host, owner_account(login.username),
                          partial(_scheme1, store, login))


async def _scheme1(
    store: Store, login: Scheme1Login, admit: Callable[[], None]
) -> Granted | Refused:
    owner = await store.get_owner(login.username)
    active = owner is not None and owner.status == 1
    # Try the cheap token lookup before the slow KDF (also for unknown accounts: the
    # same work either way). Tokens are 64 hex chars, or up to 64 of anything when
    # imported from the Perl server.
    permit = None
    if permits.token_candidate(login.password):
        permit = await store.check_token(login.username, login.password)
    # Unknown and disabled accounts get the same (dummy) argon2 check as a wrong password.
    if permit is None and not await store.check_password(login.username, login.password,
                                                         admit=admit):
        return Refused("wrong password or token" if active else "unknown or disabled account",
                       bad_credentials=True)
    if owner is None or not active:
        return Refused("unknown or disabled account", bad_credentials=True)
    # A full password login has every permission.
    if permit is not None and not permits.may(permit, permits.V2_LOGIN):
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
