"""API v4 monitors end to end: a scripted car, a real callback receiver, restarts."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import trio

from relay.app import run_relay
from relay.config import Config
from tests.conftest import RelayUnderTest
from tests.http_helpers import F_MSG, client, scripted_car, sync
from tests.test_v4_http_support import (
    V4,
    Receiver,
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
CENTER = (48.8667, 2.3333)  # latitude, longitude


def location(lat: float, lon: float) -> str:
    return f"{lat:.6f},{lon:.6f},90,35,1,1"


def status(soc: int) -> str:
    return f"{soc},K,0,0,stopped,standard,200,150"


def monitor_body(target: str, **subscribe: Any) -> dict[str, Any]:
    return {
        "label": "Leaving the zone with a low battery",
        "subscribeParam": {
            "callback": {"target": target + "cb?fixed=1", "name": "HTTP_CB", "attributes": [
                {"type": "Query", "key": "vin", "value": "$vin"},
                {"type": "Query", "key": "car", "value": "$vehicleid"},
                {"type": "Header", "key": "Authorization", "value": "Basic c2VjcmV0"}]},
            **subscribe},
        "extendedEventParam": ["vehicle.status", "vehicle.position", "vehicle.alerts"],
        "triggerParam": {"triggers": [
            {"name": "leftZone", "zone": {"transition": "Out", "circle": {
                "radius": 1, "center": {"latitude": CENTER[0], "longitude": CENTER[1]}}}},
            {"name": "batteryLow", "data": {"data": "vehicle.energy.electric.level",
                                            "op": "lowerThan", "value": ["50"]}}],
            "bool.exp": "leftZone & batteryLow"},
    }


async def test_leaving_zone_with_low_battery_calls_back_once(
        v4relay: RelayUnderTest, v4api: httpx.AsyncClient, receiver: Receiver) -> None:
    headers = bearer(await make_token(v4api))
    car = await scripted_car(v4relay, messages=(("F", F_MSG), ("S", status(60)),
                                                ("L", location(*CENTER))))
    await car.send("P", "AInside the zone")
    created = assert_hal(await v4api.post(f"{VEH}/monitors", headers=headers,
                                          json=monitor_body(receiver.url)), 201)
    href = f"{VEH}/monitors/{created['id']}"
    assert_single(created, href)
    # Drive north out of the 1 km circle while the battery drains.
    lat = CENTER[0]
    for step, soc in enumerate((58, 55, 52, 49, 47, 45, 43, 41)):
        lat += 0.003  # ~333 m per step
        await car.send("S", status(soc))
        await car.send("L", location(lat, CENTER[1]))
        if step == 3:
            await sync(car)
    await sync(car)
    await drain(v4relay)
    [got] = await receiver.wait_for(1)
    await car.send("L", location(lat + 0.01, CENTER[1]))  # still out: no new edge
    await sync(car)
    await drain(v4relay)
    assert len(receiver.received()) == 1
    url = urlsplit(got.path)
    assert url.path == "/cb"
    assert parse_qs(url.query) == {"fixed": ["1"], "vin": ["VIN123456789012345"],
                                   "car": ["DEMO"]}
    assert got.headers["authorization"] == "Basic c2VjcmV0"
    body = got.body
    assert (body["monitorId"], body["vehicleId"], body["callback"]) == (
        created["id"], "DEMO", "HTTP_CB")
    [event] = body["events"]
    assert event["triggers"] == {"leftZone": True, "batteryLow": True}
    assert event["data"]["vehicle.energy.electric.level"] < 50
    assert event["position"]["latitude"] > CENTER[0]
    extended = body["extended"]
    assert extended["vehicle.status"]["energy"]["electric"]["level"]["unit"] == "%"
    assert extended["vehicle.position"]["geometry"]["type"] == "Point"
    assert extended["vehicle.alerts"][0]["text"] == "Inside the zone"


async def test_failing_target_is_retried_then_alerted(
        v4relay: RelayUnderTest, v4api: httpx.AsyncClient, receiver: Receiver) -> None:
    headers = bearer(await make_token(v4api))
    receiver.status = 500
    body = monitor_body(receiver.url, retryPolicy={
        "policy": "Transient", "maxRetryNumber": 2, "retryDelay": 1})
    body["triggerParam"] = {"triggers": [{"name": "low", "data": {
        "data": "vehicle.energy.electric.level", "op": "lowerThan", "value": ["50"]}}]}
    car = await scripted_car(v4relay, messages=(("S", status(60)),))
    assert_hal(await v4api.post(f"{VEH}/monitors", headers=headers, json=body), 201)
    await car.send("S", status(40))
    await sync(car)
    attempts = await receiver.wait_for(3)
    await drain(v4relay)
    assert len(receiver.received()) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # retryDelay apart, never sooner
    page = assert_hal(await v4api.get(f"{VEH}/alerts", headers=headers,
                                      params={"locale": "de"}))
    [alert] = page["_embedded"]["alerts"]
    assert (alert["source"], alert["key"]) == ("server", "monitor.callbackFailed")
    assert "nach 3 Versuchen" in alert["text"]


async def test_batch_notify_groups_events(
        v4relay: RelayUnderTest, v4api: httpx.AsyncClient, receiver: Receiver) -> None:
    headers = bearer(await make_token(v4api))
    body = monitor_body(receiver.url, batchNotify={"size": 3, "timeWindow": 3600})
    body["triggerParam"] = {"triggers": [{"name": "low", "data": {
        "data": "vehicle.energy.electric.level", "op": "lowerThan", "value": ["50"]}}]}
    car = await scripted_car(v4relay, messages=(("S", status(60)),))
    assert_hal(await v4api.post(f"{VEH}/monitors", headers=headers, json=body), 201)
    for _ in range(4):  # four edges: three go out together, the fourth waits
        await car.send("S", status(40))
        await car.send("S", status(60))
    await sync(car)
    [got] = await receiver.wait_for(1)
    await drain(v4relay)
    assert len(receiver.received()) == 1
    assert len(got.body["events"]) == 3
    assert all(e["triggers"] == {"low": True} for e in got.body["events"])


def _invalid_bodies(target: str) -> list[tuple[str | dict[str, Any], str]]:
    base = monitor_body(target)
    cases: list[tuple[str | dict[str, Any], str]] = []
    unbalanced = copy.deepcopy(base)
    unbalanced["triggerParam"]["bool.exp"] = "leftZone & (batteryLow"
    cases.append((unbalanced, "triggerParam.bool.exp: unbalanced parenthesis"))
    unknown = copy.deepcopy(base)
    unknown["triggerParam"]["bool.exp"] = "leftZone & lowBattery"
    cases.append((unknown, "unknown trigger name 'lowBattery'"))
    path = copy.deepcopy(base)
    path["triggerParam"]["triggers"][1]["data"]["data"] = "vehicle.energy.electric.levl"
    cases.append((path, "did you mean 'vehicle.energy.electric.level'"))
    duration = copy.deepcopy(base)
    duration["triggerParam"]["triggers"].append({"name": "monday", "time": {"times": [
        {"recurrence": "Daily", "start": "PT14H", "duration": "4h30"}]}})
    cases.append((duration, "bad ISO 8601 duration '4h30'"))
    refused = copy.deepcopy(base)
    refused["subscribeParam"]["callback"]["target"] = "http://10.0.0.1/x"
    cases.append((refused, "not an allowed callback target"))
    text = json.dumps(base)
    squeezed = text.replace('{"name": "batteryLow", ',
                            '{"name": "leftZone2", "zone": {}, "name": "batteryLow", ')
    cases.append((squeezed, 'duplicate key "name" in $.triggerParam.triggers[1]'))
    return cases


async def test_each_invalid_monitor_gets_its_own_400(
        v4relay: RelayUnderTest, v4api: httpx.AsyncClient, receiver: Receiver) -> None:
    headers = bearer(await make_token(v4api))
    messages = set()
    for body, expected in _invalid_bodies(receiver.url):
        content = body if isinstance(body, str) else json.dumps(body)
        response = await v4api.post(f"{VEH}/monitors", headers={
            **headers, "Content-Type": "application/json"}, content=content)
        messages.add(assert_error(response, 400, expected))
    assert len(messages) == 6
    page = assert_hal(await v4api.get(f"{VEH}/monitors", headers=headers))
    assert page["total"] == 0


async def test_monitors_survive_a_restart(relay_db: str,
                                         receiver: Receiver) -> None:
    path = relay_db
    config = Config(db=path, host="127.0.0.1", v2_port=0, http_port=0,
                    webhook_allow=[receiver.url])
    async with trio.open_nursery() as nursery:
        first = RelayUnderTest(await nursery.start(run_relay, config), config, path)
        async with client(first) as api:
            token = await make_token(api)
            created = assert_hal(await api.post(f"{VEH}/monitors", headers=bearer(token),
                                                json=monitor_body(receiver.url)), 201)
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        second = RelayUnderTest(await nursery.start(run_relay, config), config, path)
        async with client(second) as api:
            page = assert_hal(await api.get(f"{VEH}/monitors", headers=bearer(token)))
            [monitor] = page["_embedded"]["monitors"]
            assert monitor["id"] == created["id"]
            assert monitor["triggerParam"] == created["triggerParam"]
            assert monitor["subscribeParam"] == created["subscribeParam"]
            # It still works: the car leaves the zone with a low battery.
            car = await scripted_car(second, messages=(("S", status(40)),
                                                       ("L", location(*CENTER))))
            await car.send("L", location(CENTER[0] + 0.05, CENTER[1]))
            await sync(car)
            await receiver.wait_for(1)
            response = await api.delete(monitor["_links"]["self"]["href"],
                                        headers=bearer(token))
            assert response.status_code == 204
            assert_error(await api.get(monitor["_links"]["self"]["href"],
                                       headers=bearer(token)), 404)
            await car.aclose()
        nursery.cancel_scope.cancel()
