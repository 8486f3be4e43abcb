"""API v4 read resources end to end: auth, HAL shapes, paging, GeoJSON, status, alerts."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import httpx
import trio

from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import (
    CREDS,
    D_MSG,
    F_MSG,
    L_MSG,
    OTHER_CREDS,
    S_MSG,
    client,
    scripted_car,
    sync,
)
from tests.test_v4_http_support import (
    V4,
    assert_error,
    assert_hal,
    assert_single,
    bearer,
    drain,
    make_token,
    receiver,
    v4api,
    v4relay,
)

__all__ = ["receiver", "v4api", "v4relay"]  # fixtures

VEH = f"{V4}/user/vehicles/DEMO"


async def test_auth_bearer_permits_and_json_errors(v4relay: RelayUnderTest,
                                                   v4api: httpx.AsyncClient) -> None:
    assert_error(await v4api.get(f"{V4}/user"), 401, "authentication required")
    assert_error(await v4api.get(f"{V4}/user", headers=bearer("0" * 64)), 401, "token")
    no_v4 = await make_token(v4api, permit="v2")
    assert_error(await v4api.get(f"{V4}/user", headers=bearer(no_v4)), 403, "v4")
    token = await make_token(v4api)
    user = assert_hal(await v4api.get(f"{V4}/user", headers=bearer(token)))
    assert_single(user, f"{V4}/user")
    assert user["name"] == "demo" and user["authenticatedBy"] == "token"
    star = await make_token(v4api, permit="*")
    assert_hal(await v4api.get(f"{V4}/user", headers=bearer(star)))
    # A cookie session and username/password work too.
    cookie = (await v4api.get("/api/cookie", params=CREDS)).cookies["ovmsapisession"]
    v4api.cookies.clear()
    assert_hal(await v4api.get(f"{V4}/user", headers={"Cookie": f"ovmsapisession={cookie}"}))
    assert_hal(await v4api.get(f"{V4}/user", params=CREDS))
    assert_error(await v4api.get(f"{V4}/user", params={**CREDS, "password": "x"}), 401)
    # Another owner's vehicle, and an unknown one, are 403 alike.
    assert_error(await v4api.get(f"{V4}/user/vehicles/OTHERCAR/status", headers=bearer(token)),
                 403, "not one of your vehicles")
    assert_error(await v4api.get(f"{V4}/user/vehicles/NOSUCH", params=OTHER_CREDS), 403)
    # The route table's unknown routes stay the REST API's.
    assert (await v4api.get(f"{V4}/nothing", headers=bearer(token))).status_code == 404


async def test_vehicles_status_maintenance(v4relay: RelayUnderTest,
                                           v4api: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(v4api))
    assert_error(await v4api.get(f"{VEH}/status", headers=headers), 404, "no status")
    assert_error(await v4api.get(f"{VEH}/maintenance", headers=headers), 404)
    car = await scripted_car(v4relay, messages=(("F", F_MSG), ("S", S_MSG), ("D", D_MSG),
                                          ("L", L_MSG)))
    page = assert_hal(await v4api.get(f"{V4}/user/vehicles", headers=headers))
    assert page["total"] == 2 and [v["id"] for v in page["_embedded"]["vehicles"]] == [
        "DEMO", "TESTCAR"]
    demo = assert_hal(await v4api.get(f"{V4}/user/vehicles/demo", headers=headers))
    assert_single(demo, VEH)
    assert demo["vin"] == "VIN123456789012345" and demo["typeCode"] == "TRDM"
    assert demo["brand"] == "Tesla" and demo["connected"] is True
    assert car is not None
    assert demo["_links"]["lastPosition"]["href"] == f"{VEH}/lastPosition"
    status = assert_hal(await v4api.get(f"{VEH}/status", headers=headers))
    assert_single(status, f"{VEH}/status")
    assert status["energy"]["electric"]["level"] == {"value": 30, "unit": "%"}
    assert status["energy"]["electric"]["autonomy"] == {"value": 85, "unit": "km"}
    assert status["doors"]["locked"] is True and status["ignition"] is True
    assert status["battery"]["12v"] == {"value": 12, "unit": "V"}
    service = assert_hal(await v4api.get(f"{VEH}/maintenance", headers=headers))
    assert service["distanceToService"] == {"value": 25000, "unit": "km"}
    assert service["timeToService"] == {"value": 1, "unit": "d"}


async def test_last_position_is_geojson(v4relay: RelayUnderTest,
                                        v4api: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(v4api))
    car = await scripted_car(v4relay, messages=(("L", "0,0,0,0,0,1"),))
    assert_error(await v4api.get(f"{VEH}/lastPosition", headers=headers), 404,
                 "no position")
    await car.send("L", L_MSG)
    await sync(car)
    feature = assert_hal(await v4api.get(f"{VEH}/lastPosition", headers=headers),
                         content_type="application/vnd.geo+json")
    assert feature["type"] == "Feature"
    geometry = feature["geometry"]
    assert geometry["type"] == "Point"
    lon, lat, *alt = geometry["coordinates"]
    assert (lon, lat, alt) == (114.186994, 22.270553, [0])
    assert -180 <= lon <= 180 and -90 <= lat <= 90
    props = feature["properties"]
    assert props["heading"] == 90 and props["speed"] == 55 and props["gpsLock"] is True
    assert props["updatedAt"].endswith("Z")
    assert_single(feature, f"{VEH}/lastPosition")


async def test_alerts_collection_paging_and_locale(v4relay: RelayUnderTest,
                                                   v4api: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(v4api))
    car = await scripted_car(v4relay)
    for i in range(24):
        await car.send("P", f"AAlert number {i}")
    await car.send("P", "ETRDM,42,overheat")
    await sync(car)
    await drain(v4relay)
    push = v4relay.handle.services.router.push
    assert push is not None
    for _ in range(200):  # the push intake stores the history records in its own task
        records = await v4relay.handle.store.historical_records("DEMO", "*-Log-Notification")
        if len(records) == 25:
            break
        await trio.sleep(0.02)
    first = assert_hal(await v4api.get(f"{VEH}/alerts", headers=headers))
    assert (first["total"], first["currentPage"], first["totalPage"]) == (25, 1, 3)
    assert len(first["_embedded"]["alerts"]) == 10
    links = first["_links"]
    assert set(links) == {"self", "first", "next", "last"}
    assert links["next"]["href"] == f"{VEH}/alerts?indexRange=10-19&pageSize=10"
    assert links["last"]["href"] == f"{VEH}/alerts?indexRange=20-29&pageSize=10"
    for alert in first["_embedded"]["alerts"]:
        assert_single(alert, f"{VEH}/alerts/{alert['id']}")
        assert alert["source"] == "vehicle"
    # Follow next with the locale kept; the error alert has a French server text.
    page = assert_hal(await v4api.get(f"{VEH}/alerts", headers=headers,
                                      params={"indexRange": "20-", "locale": "fr-FR"}))
    assert (page["currentPage"], len(page["_embedded"]["alerts"])) == (3, 5)
    assert "next" not in page["_links"]
    assert parse_qs(urlsplit(page["_links"]["prev"]["href"]).query) == {
        "indexRange": ["10-19"], "pageSize": ["10"], "locale": ["fr-FR"]}
    small = assert_hal(await v4api.get(f"{VEH}/alerts", headers=headers,
                                       params={"pageSize": "7", "indexRange": "7-13"}))
    assert (small["currentPage"], small["totalPage"]) == (2, math.ceil(25 / 7))
    texts = {a["text"] for a in first["_embedded"]["alerts"]}
    fr = assert_hal(await v4api.get(f"{VEH}/alerts", headers=headers,
                                    params={"locale": "fr", "pageSize": "100"}))
    error = [a for a in fr["_embedded"]["alerts"] if a["type"] == "error"]
    assert len(error) == 1 and error[0]["text"].startswith("Erreur du véhicule 42")
    assert texts  # the car's own texts are never translated
    one = assert_hal(await v4api.get(error[0]["_links"]["self"]["href"], headers=headers))
    assert one["id"] == error[0]["id"]
    assert_error(await v4api.get(f"{VEH}/alerts", headers=headers,
                                 params={"pageSize": "0"}), 400, "pageSize")
    # Well-formed but reversed: the nearest page (one item from 9), not an error.
    reversed_page = await v4api.get(f"{VEH}/alerts", headers=headers,
                                    params={"indexRange": "9-5"})
    assert reversed_page.status_code == 200
    assert "indexRange=9-9" in reversed_page.json()["_links"]["self"]["href"]


async def test_rate_limit_is_a_json_429(start_relay: StartRelay) -> None:
    relay: RelayUnderTest = await start_relay(api_rate_burst=2, api_rate_per_minute=1,
                                              api_rate_max=2)
    async with client(relay) as api:
        statuses = [(await api.get(f"{V4}/user", params=CREDS)).status_code for _ in range(3)]
        assert statuses[:2] == [200, 200]
        assert_error(await api.get(f"{V4}/user", params=CREDS), 429, "Too many requests")
