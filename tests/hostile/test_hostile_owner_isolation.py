"""Issue 9, attack suite: one owner can never read, watch or command another owner's vehicle.

Owner ``other`` (vehicle OTHERCAR) against owner ``demo`` (vehicles DEMO, TESTCAR),
over every way in: v2 scheme 0 and 1, REST reads, registrations and control, API v4,
tokens, push subscriptions and groups.
"""

from __future__ import annotations

import pytest

from protocol import ClientType
from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, OTHER_CREDS, S_MSG, client, scripted_car, sync
from tests.settle import pinged
from tools.v2client import LoginRefused

V4 = "/api/v4/user/vehicles"


async def test_v2_logins_never_cross_owners(start_relay: StartRelay) -> None:
    relay = await start_relay(allow_plain_login=True)
    # Scheme 0: OTHERCAR's secret does not open DEMO, for an app or a car.
    with pytest.raises(LoginRefused):
        await relay.app("DEMO", carpass="OTHERPASS")
    with pytest.raises(LoginRefused):
        await relay.car("DEMO", carpass="OTHERPASS")
    # Scheme 1: other's account does not reach demo's vehicle, and "*" is its own car.
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.APP, username="other", password="otherpass")
    app = await relay.connect("*", ClientType.APP, username="other", password="otherpass")
    assert app.welcome is not None and app.welcome.vehicleids == ("OTHERCAR",)
    await app.aclose()


async def test_rest_refuses_every_vehicle_route_of_another_owner(relay: RelayUnderTest) -> None:
    car = await scripted_car(relay, "DEMO", [("S", S_MSG)])
    async with client(relay) as api:
        listing = await api.get("/api/vehicles", params=OTHER_CREDS)
        assert [v["id"] for v in listing.json()] == ["OTHERCAR"]
        for path in ("/api/vehicle/DEMO", "/api/protocol/DEMO", "/api/status/DEMO",
                     "/api/charge/DEMO", "/api/location/DEMO", "/api/tpms/DEMO",
                     "/api/historical/DEMO", "/api/historical/DEMO/S"):
            answer = await api.get(path, params=OTHER_CREDS)
            assert answer.status_code == 403, (path, answer.text)
            assert "105" not in answer.text  # nothing of the car's data leaks
        for method, path in (("PUT", "/api/lock/DEMO"), ("DELETE", "/api/lock/DEMO"),
                             ("PUT", "/api/charge/DEMO"), ("PUT", "/api/reset/DEMO"),
                             ("POST", "/api/command/DEMO")):
            answer = await api.request(method, path,
                                       params={**OTHER_CREDS, "pin": "1234", "command": "5"})
            assert answer.status_code == 403, (method, path, answer.text)
    # Nothing reached the car: no command, and no app registration changed its Z.
    assert await sync(car) == []
    await car.aclose()


async def test_tokens_are_per_owner(relay: RelayUnderTest) -> None:
    async with client(relay) as api:
        made = await api.post("/api/token", params={**CREDS, "application": "mine"})
        assert made.status_code == 201
        token = made.json()["token"]
        # Another owner can neither see nor delete it, nor log in with it as themselves.
        listed = await api.get("/api/token", params=OTHER_CREDS)
        assert token not in listed.text
        # Deleting is idempotent (200 either way, as on the public server): what counts
        # is that the token still works for its owner afterwards.
        await api.delete(f"/api/token/{token}", params=OTHER_CREDS)
        as_other = await api.get("/api/vehicles",
                                 params={"username": "other", "password": token})
        assert as_other.status_code == 401
        still = await api.get("/api/vehicles", params={"username": "demo", "password": token})
        assert still.status_code == 200


async def test_v4_shows_only_the_owners_vehicles(relay: RelayUnderTest) -> None:
    car = await scripted_car(relay, "DEMO", [("S", S_MSG)])
    async with client(relay) as api:
        mine = await api.get(V4, params=OTHER_CREDS)
        assert mine.status_code == 200 and "DEMO" not in mine.text
        for path in (f"{V4}/DEMO", f"{V4}/DEMO/status", f"{V4}/DEMO/lastPosition",
                     f"{V4}/DEMO/alerts", f"{V4}/DEMO/trips", f"{V4}/DEMO/monitors"):
            answer = await api.get(path, params=OTHER_CREDS)
            assert answer.status_code in (403, 404), (path, answer.status_code, answer.text)
        action = await api.post(f"{V4}/DEMO/remote", params=OTHER_CREDS,
                                json={"action": "wakeup"})
        assert action.status_code in (403, 404)
    assert await sync(car) == []
    await car.aclose()


async def test_push_subscription_needs_the_vehicles_secret(relay: RelayUnderTest) -> None:
    """An app of OTHERCAR cannot subscribe to DEMO's alerts with a wrong netpass."""
    app = await relay.app("OTHERCAR", carpass="OTHERPASS")
    await pinged(app)
    await app.send("p", "evil,webhook,production,DEMO,OTHERPASS,https://example.org/x")
    await app.send("A")
    await app.receive_until("a")
    subscriptions = await relay.handle.store.push_subscriptions("DEMO")
    assert subscriptions == []
    await app.aclose()


async def test_group_data_is_one_message_naming_its_car(relay: RelayUnderTest) -> None:
    """Groups are shared across owners by design: what arrives is exactly the one ``g``."""
    watcher = await relay.app("DEMO")
    await pinged(watcher)
    await watcher.send("G", "FLEET")
    await sync(watcher)
    car = await relay.car("OTHERCAR", carpass="OTHERPASS")
    await pinged(car)
    await car.send("g", "FLEET,52.1,4.3")
    await sync(car)
    got = [m.text() for m in await watcher.receive_until("g")]
    assert got[-1] == "gOTHERCAR,FLEET,52.1,4.3"
    assert not any(text.startswith(("S", "c", "Z0")) for text in got)
    await watcher.aclose()
    await car.aclose()
