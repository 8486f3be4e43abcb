"""REST authentication: passwords, cookies and their expiry, API tokens and rights."""

from __future__ import annotations

import re

import httpx
import trio

from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import (
    CREDS,
    OTHER_CREDS,
    api,
    assert_json,
    assert_text,
    client,
    scripted_car,
    sync,
)

__all__ = ["api"]  # fixtures


async def test_missing_or_wrong_credentials_are_401(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    for params in ({}, {"username": "demo"}, {"username": "demo", "password": "wrong"},
                   {"username": "nobody", "password": "demopass"},
                   {"username": "demo", "password": "0" * 64}):
        assert_text(await api.get("/api/vehicles", params=params), 401, "Authentication failed")
    # A cookie the server never issued, with no credentials besides.
    api.cookies.set("ovmsapisession", "12345678-1234-1234-1234-123456789012")
    assert_text(await api.get("/api/vehicles"), 401, "Authentication failed")


async def test_other_owners_and_unknown_vehicles_are_403(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    for vehicleid in ("OTHERCAR", "NOSUCH", "bad%20id", "x" * 40):
        for what in ("status", "vehicle", "protocol", "historical", "lock"):
            assert_text(await api.get(f"/api/{what}/{vehicleid}", params=CREDS), 403,
                        "Forbidden")
    # ... and the other owner sees their own car, not ours.
    assert_json(await api.get("/api/status/OTHERCAR", params=OTHER_CREDS))
    assert_text(await api.get("/api/status/DEMO", params=OTHER_CREDS), 403, "Forbidden")


async def test_unknown_routes_are_404_before_authentication(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    assert_text(await api.get("/api/nosuch", params=CREDS), 404, "Unrecognised API call")
    assert_text(await api.get("/api/nosuch"), 404, "Unrecognised API call")
    # A known path with a method it does not have: 405 (issue 9 defect 16), also unauthenticated.
    assert_text(await api.post("/api/status/DEMO", params=CREDS), 405, "Method not allowed")
    assert_text(await api.post("/api/status/DEMO"), 405, "Method not allowed")
    assert_text(await api.get("/api/status", params=CREDS), 404, "Unrecognised API call")
    assert_text(await api.get("/"), 404, "not found")
    assert_text(await api.get("/index.html"), 404, "not found")
    assert_text(await api.delete("/api/token", params=CREDS), 405, "Method not allowed")


async def test_expired_cookie_is_refused_and_its_registration_ends(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(api_idle_timeout=0.3, api_session_timeout=0.3)
    car = await scripted_car(relay)
    async with client(relay) as http:
        assert_text(await http.get("/api/cookie", params=CREDS), 200, "Login ok")
        assert_json(await http.get("/api/vehicle/DEMO"))
        assert await sync(car) == ["Z1"]
        await trio.sleep(0.6)
        assert_text(await http.get("/api/vehicles"), 401, "Authentication failed")
    assert (await car.receive()).text() == "Z0"


async def test_cookieless_registration_expires_after_idle_time(
    start_relay: StartRelay,
) -> None:
    # The public server keeps such a registration forever (PROTOCOL.md section 9).
    relay = await start_relay(api_idle_timeout=0.3)
    car = await scripted_car(relay)
    async with client(relay) as http:
        assert assert_json(await http.get("/api/vehicle/DEMO", params=CREDS))[
            "v_apps_connected"] == 1
        assert await sync(car) == ["Z1"]
        # Used again: still the same registration.
        assert_json(await http.get("/api/status/DEMO", params=CREDS))
        assert (await car.receive(timeout=5)).text() == "Z0"
        vehicles = assert_json(await http.get("/api/vehicles", params=CREDS))
        assert vehicles[0]["v_apps_connected"] == 0


async def test_sessions_of_different_callers_count_separately(
    relay: RelayUnderTest,
) -> None:
    car = await scripted_car(relay)
    async with client(relay) as one, client(relay) as two:
        for http in (one, two):
            assert_text(await http.get("/api/cookie", params=CREDS), 200, "Login ok")
        first = assert_json(await one.get("/api/vehicle/DEMO"))
        second = assert_json(await two.get("/api/vehicle/DEMO"))
        assert (first["v_first_peer"], second["v_first_peer"]) == (1, 0)
        assert second["v_apps_connected"] == 2
        assert await sync(car) == ["Z1", "Z2"]
        assert_text(await one.delete("/api/cookie"), 200, "Logout ok")
        assert await sync(car) == ["Z1"]


async def test_token_lifecycle_and_revocation(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    assert assert_json(await api.get("/api/token", params=CREDS)) == []
    created = assert_json(await api.post("/api/token", params=CREDS,
                                         data={"application": "evcc", "purpose": "charging"}),
                          201)
    token = created["token"]
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert created == {"owner": "demo", "token": token, "application": "evcc",
                       "purpose": "charging", "permit": "auth"}
    by_token = {"username": "demo", "password": token}
    assert len(assert_json(await api.get("/api/vehicles", params=by_token))) == 2
    listed = assert_json(await api.get("/api/token", params=CREDS))
    assert len(listed) == 1
    row = listed[0]
    # Only a digest of the token is stored, so the list names it by that digest.
    assert row["token"] != token and re.fullmatch(r"[0-9a-f]{64}", row["token"])
    assert {k: row[k] for k in ("owner", "application", "purpose", "permit")} == {
        "owner": "demo", "application": "evcc", "purpose": "charging", "permit": "auth"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["created"])
    deleted = assert_json(await api.delete(f"/api/token/{token}", params=CREDS))
    assert deleted == {"owner": "demo", "token": token}
    assert_text(await api.get("/api/vehicles", params=by_token), 401, "Authentication failed")
    assert assert_json(await api.get("/api/token", params=CREDS)) == []


async def test_token_delete_by_listed_digest(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    token = assert_json(await api.post("/api/token", params=CREDS), 201)["token"]
    digest = assert_json(await api.get("/api/token", params=CREDS))[0]["token"]
    assert_json(await api.delete(f"/api/token/{digest}", params=CREDS))
    assert_text(await api.get("/api/vehicles", params={"username": "demo", "password": token}),
                401, "Authentication failed")


async def test_token_rights_are_enforced(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    plain = assert_json(await api.post("/api/token", params=CREDS), 201)["token"]
    as_plain = {"username": "demo", "password": plain}
    # Reading is allowed; token administration, sessions and control are not.
    assert_json(await api.get("/api/status/DEMO", params=as_plain))
    assert_text(await api.post("/api/token", params=as_plain), 403, "Insufficient rights")
    assert_text(await api.get("/api/token", params=as_plain), 403, "Insufficient rights")
    assert_text(await api.get("/api/cookie", params=as_plain), 403, "Insufficient rights")
    assert_text(await api.put("/api/lock/DEMO", params={**as_plain, "pin": "1"}), 403,
                "Insufficient rights")
    admin = assert_json(await api.post("/api/token", params={**CREDS,
                                                             "permit": "token.admin,control"}),
                        201)["token"]
    as_admin = {"username": "demo", "password": admin}
    assert len(assert_json(await api.get("/api/token", params=as_admin))) == 2
    assert assert_json(await api.post("/api/token", params={**as_admin, "permit": "control"}),
                       201)["permit"] == "control"
    # No escalation: a token cannot mint a token with rights it lacks.
    assert_text(await api.post("/api/token", params={**as_admin, "permit": "*"}), 403,
                "Insufficient rights")
    # The control right gets past the rights check (the car is offline: 409).
    assert_text(await api.put("/api/lock/DEMO", params={**as_admin, "pin": "1"}), 409,
                "Vehicle not connected")
    none = assert_json(await api.post("/api/token", params={**CREDS, "permit": "none"}),
                       201)["token"]
    assert_text(await api.get("/api/vehicles", params={"username": "demo", "password": none}),
                401, "Authentication failed")


async def test_cookie_login_with_a_token_needs_the_session_right(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    token = assert_json(await api.post("/api/token", params={**CREDS, "permit": "session"}),
                        201)["token"]
    assert_text(await api.get("/api/cookie", params={"username": "demo", "password": token}),
                200, "Login ok")
    assert len(assert_json(await api.get("/api/vehicles"))) == 2
