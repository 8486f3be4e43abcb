"""API v4 trips and telemetry end to end: a scripted drive, then the derived resources."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time

import httpx
import trio

from relay.app import run_relay
from relay.config import Config
from relay.v4.datapaths import haversine_km
from tests.conftest import RelayUnderTest
from tests.http_helpers import CREDS, client, scripted_car, sync
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
ROUTE = [(48.8667, 2.3333), (48.8700, 2.3400), (48.8800, 2.3450), (48.8950, 2.3500),
         (48.9000, 2.3700)]


def doors(ignition: bool) -> str:
    return f"{160 if ignition else 32},8,4,35,45,30,0,0,55,0,25,1,1,1,12.0,0,0,25,13.5,30"


def location(lat: float, lon: float, used: float) -> str:
    return f"{lat},{lon},90,35,1,1,50,0,0,10,{used},0"


def seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_scripted_drive_makes_a_trip_and_telemetry(
        v4relay: RelayUnderTest, v4api: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(v4api))
    car = await scripted_car(v4relay, messages=(("S", "80,K,0,0,stopped,standard,300,250"),
                                                ("D", doors(False)),
                                                ("L", location(*ROUTE[0], 0))))
    empty = assert_hal(await v4api.get(f"{VEH}/trips", headers=headers))
    assert (empty["total"], empty["_embedded"]["trips"]) == (0, [])
    before = time.time()
    await car.send("D", doors(True))
    for k, (lat, lon) in enumerate(ROUTE):
        await car.send("L", location(lat, lon, 0.5 * k))
        await car.send("S", f"{80 - k},K,0,0,stopped,standard,300,250")
    await sync(car)
    await drain(v4relay)
    progress = assert_hal(await v4api.get(f"{VEH}/trips", headers=headers))
    [open_trip] = progress["_embedded"]["trips"]
    assert open_trip["inProgress"] is True
    await trio.sleep(1.1)  # a drive that lasts at least a second
    await car.send("D", doors(False))
    await sync(car)
    after = time.time()
    with trio.fail_after(10):  # the trip ends trip_end_after (0.3 s) after ignition off
        while True:
            page = assert_hal(await v4api.get(f"{VEH}/trips", headers=headers))
            if page["total"] == 1 and not page["_embedded"]["trips"][0]["inProgress"]:
                break
            await trio.sleep(0.05)
    [trip] = page["_embedded"]["trips"]
    assert_single(trip, f"{VEH}/trips/{trip['id']}")
    expected = sum(haversine_km(*a, *b) for a, b in itertools.pairwise(ROUTE))
    assert math.isclose(trip["distance"]["value"], expected, abs_tol=0.001)
    assert trip["distance"]["unit"] == "km"
    started, ended = seconds(trip["startedAt"]), seconds(trip["endedAt"])
    assert math.floor(before) <= started <= ended <= after
    assert trip["durationSeconds"] == round(ended - started) or abs(
        trip["durationSeconds"] - (ended - started)) <= 1
    assert trip["durationSeconds"] >= 1
    assert trip["energyUsed"] == {"value": 2, "unit": "kWh"}
    assert trip["startPosition"] == {"type": "Point", "coordinates": [2.3333, 48.8667]}
    assert trip["endPosition"] == {"type": "Point", "coordinates": [2.37, 48.9]}
    assert (trip["socStart"]["value"], trip["socEnd"]["value"]) == (80, 76)
    one = assert_hal(await v4api.get(trip["_links"]["self"]["href"], headers=headers))
    assert one["id"] == trip["id"]
    assert_error(await v4api.get(f"{VEH}/trips/1", headers=headers), 404)

    # Telemetry: every S of the drive was sampled (telemetry_interval is 0 here).
    series = assert_hal(await v4api.get(f"{VEH}/telemetry", headers=headers, params={
        "metrics": "vehicle.energy.electric.level,vehicle.ignition"}))
    level, ignition = series["_embedded"]["telemetry"]
    assert level["path"] == "vehicle.energy.electric.level" and level["unit"] == "%"
    assert [p["value"] for p in level["points"]] == [80, 79, 78, 77, 76]
    assert [p["value"] for p in ignition["points"]] == [False, True, False]
    assert_error(await v4api.get(f"{VEH}/telemetry", headers=headers,
                                 params={"metrics": "vehicle.energy.electric.levl"}), 400,
                 "did you mean")
    future = assert_hal(await v4api.get(f"{VEH}/telemetry", headers=headers, params={
        "since": "2099-01-01T00:00:00Z", "until": "2099-01-02T00:00:00+02:00"}))
    assert all(s["points"] == [] for s in future["_embedded"]["telemetry"])
    assert_error(await v4api.get(f"{VEH}/telemetry", headers=headers,
                                 params={"since": "yesterday"}), 400, "RFC 3339")


async def test_trip_in_progress_survives_a_restart(relay_db: str,) -> None:
    """Half the drive, a relay restart, the other half: one trip, all of its distance."""
    path = relay_db
    config = Config(db=path, host="127.0.0.1", v2_port=0, http_port=0,
                    trip_end_after=0.3)
    for part, points in enumerate((ROUTE[:3], ROUTE[2:])):
        async with trio.open_nursery() as nursery:
            relay = RelayUnderTest(await nursery.start(run_relay, config), config, path)
            car = await scripted_car(relay, messages=(("D", doors(True)),))
            for lat, lon in points:
                await car.send("L", location(lat, lon, 0))
            if part == 1:
                await car.send("D", doors(False))
            await sync(car)
            await drain(relay)
            if part == 1:
                async with client(relay) as api:
                    with trio.fail_after(10):
                        while not (trips := assert_hal(await api.get(
                                f"{VEH}/trips", params=CREDS))["_embedded"]["trips"]) or \
                                trips[0]["inProgress"]:
                            await trio.sleep(0.05)
            await car.aclose()
            nursery.cancel_scope.cancel()
    [trip] = trips
    expected = sum(haversine_km(*a, *b) for a, b in itertools.pairwise(ROUTE))
    assert math.isclose(trip["distance"]["value"], expected, abs_tol=0.001)
    assert trip["startPosition"]["coordinates"] == [ROUTE[0][1], ROUTE[0][0]]
