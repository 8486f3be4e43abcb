"""A v3 car through a real Mosquitto, seen by API v4 (monitors, trips), REST and push.

What ``test_mqtt_v3_e2e`` does not cover: a v4 monitor keeps the module active
with no app, fires on the module's metrics and calls a real HTTP server back; a
drive published as metrics becomes a v4 trip; ``/api/charge`` and ``/api/tpms``
read the module's metrics; ``notify/alert`` reaches a push subscription.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio

from relay.v4.datapaths import haversine_km
from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, client
from tests.mqtt_broker import broker_url, unique_prefix
from tests.test_push_support import FakeService
from tests.test_v4_http_support import (
    V4,
    Receiver,
    assert_error,
    assert_hal,
    bearer,
    drain,
    make_token,
    receiver,
)
from tests.v3_module import ScriptedModule, clear_retained

__all__ = ["receiver"]  # fixture

VEH = f"{V4}/user/vehicles/DEMO"
ROUTE = [(48.8667, 2.3333), (48.8700, 2.3400), (48.8800, 2.3450), (48.8950, 2.3500),
         (48.9000, 2.3700)]


@attrs.define
class Setup:
    relay: RelayUnderTest
    api: httpx.AsyncClient
    headers: dict[str, str]  # API v4 bearer token
    module: ScriptedModule

    async def latest(self, code: str, check: Any = lambda data: True) -> str:
        """The stored ``code`` message once ``check(data)`` holds (the burst is in)."""
        with trio.fail_after(10):
            while True:
                msg = (await self.relay.handle.store.latest("DEMO")).get(code)
                if msg is not None and check(msg.data):
                    return msg.data
                await trio.sleep(0.02)

    def actives(self) -> list[bytes]:
        return [p for t, p in self.module.messages(lambda t: t.endswith("/active"))]


@pytest.fixture
async def service(nursery: trio.Nursery) -> FakeService:
    return await FakeService().start(nursery)


@pytest.fixture
async def v3(start_relay: StartRelay, receiver: Receiver,
             service: FakeService) -> AsyncIterator[Setup]:
    with broker_url() as url:
        prefix = unique_prefix()
        relay = await start_relay(
            mqtt=url, mqtt_prefix=prefix, mqtt_persistent=False,
            api_rate_burst=0,  # the tests poll; the rate limiter is not under test
            webhook_allow=[receiver.url, service.url + "/"], trip_end_after=0.3,
            telemetry_interval=0.0, push_retry_base=0.01, push_retry_max=0.05)
        gateway = relay.handle.mqtt
        assert gateway is not None
        with trio.fail_after(10):
            while not gateway.bridge.connected:
                await trio.sleep(0.02)
        module = ScriptedModule(url, prefix, "demo", "DEMO")
        try:
            await module.ready()
            module.metric("v.vin", "VIN123456789012345")
            module.metric("v.b.soc", "60")
            module.online()
            with trio.fail_after(10):
                while not relay.handle.hub.car_connected("DEMO"):
                    await trio.sleep(0.02)
            async with client(relay) as api:
                headers = bearer(await make_token(api))
                yield Setup(relay, api, headers, module)
        finally:
            module.stop()
            await trio.to_thread.run_sync(clear_retained, url, prefix)


def low_soc_monitor(target: str) -> dict[str, Any]:
    return {
        "label": "Battery low",
        "subscribeParam": {"callback": {"target": target + "cb", "name": "HTTP_CB"}},
        "extendedEventParam": ["vehicle.status"],
        "triggerParam": {"triggers": [{"name": "low", "data": {
            "data": "vehicle.energy.electric.level", "op": "lowerThan", "value": ["50"]}}]},
    }


async def test_a_monitor_keeps_the_module_active_and_fires_on_its_metrics(
        v3: Setup, receiver: Receiver) -> None:
    await v3.latest("S", lambda data: data.startswith("60,"))
    assert v3.actives() == []  # no app, no REST registration, no monitor: idle
    created = assert_hal(await v3.api.post(f"{VEH}/monitors", headers=v3.headers,
                                           json=low_soc_monitor(receiver.url)), 201)
    # The monitor alone makes the module report at its connected interval.
    assert (await v3.module.wait_for(lambda t: t.endswith("/active")))[-1][1] == b"1"
    assert v3.relay.handle.hub.app_count("DEMO") == 0  # not an app (v2 Z unchanged)
    v3.module.metric("v.b.soc", "45")
    [got] = await receiver.wait_for(1)
    body = got.body
    assert (body["monitorId"], body["vehicleId"]) == (created["id"], "DEMO")
    [event] = body["events"]
    assert event["triggers"] == {"low": True}
    assert event["data"]["vehicle.energy.electric.level"] == 45
    level = body["extended"]["vehicle.status"]["energy"]["electric"]["level"]
    assert level["value"] == 45
    # Deleting the last monitor lets the module go idle.
    r = await v3.api.delete(f"{VEH}/monitors/{created['id']}", headers=v3.headers)
    assert r.status_code == 204, r.text
    active = await v3.module.wait_for(lambda t: t.endswith("/active"), count=2)
    assert active[-1][1] == b"0"
    v3.module.metric("v.b.soc", "44")
    await v3.latest("S", lambda data: data.startswith("44,"))
    await drain(v3.relay)
    assert len(receiver.received()) == 1


async def test_a_drive_published_as_metrics_is_a_v4_trip(v3: Setup) -> None:
    m = v3.module
    m.metric("v.p.gpslock", "yes")
    m.metric("v.b.soc", "80")
    m.metric("v.b.energy.used", "0")
    m.metric("v.p.latitude", str(ROUTE[0][0]))
    m.metric("v.p.longitude", str(ROUTE[0][1]))
    await v3.latest("L", lambda data: data.startswith(f"{ROUTE[0][0]:.6f},"))
    m.metric("v.e.on", "yes")  # ignition: the D caron bit
    await v3.latest("D", lambda data: int(data.split(",")[0]) & 128)
    for k, (lat, lon) in enumerate(ROUTE):
        m.metric("v.b.soc", str(80 - k))
        m.metric("v.b.energy.used", str(0.5 * k))
        m.metric("v.p.latitude", str(lat))
        m.metric("v.p.longitude", str(lon))
        # Each position its own burst: one L each, as a module's ticker sends them.
        await v3.latest("L", lambda data, lat=lat, lon=lon: data.startswith(
            f"{lat:.6f},{lon:.6f},"))
    await drain(v3.relay)
    progress = assert_hal(await v3.api.get(f"{VEH}/trips", headers=v3.headers))
    [open_trip] = progress["_embedded"]["trips"]
    assert open_trip["inProgress"] is True
    await trio.sleep(1.1)  # a drive that lasts at least a second
    m.metric("v.e.on", "no")
    with trio.fail_after(10):  # the trip ends trip_end_after (0.3 s) after ignition off
        while True:
            page = assert_hal(await v3.api.get(f"{VEH}/trips", headers=v3.headers))
            if page["total"] == 1 and not page["_embedded"]["trips"][0]["inProgress"]:
                break
            await trio.sleep(0.05)
    [trip] = page["_embedded"]["trips"]
    expected = sum(haversine_km(*a, *b) for a, b in itertools.pairwise(ROUTE))
    assert math.isclose(trip["distance"]["value"], expected, abs_tol=0.001)
    assert trip["energyUsed"] == {"value": 2, "unit": "kWh"}
    assert trip["startPosition"] == {"type": "Point", "coordinates": [2.3333, 48.8667]}
    assert trip["endPosition"] == {"type": "Point", "coordinates": [2.37, 48.9]}
    assert (trip["socStart"]["value"], trip["socEnd"]["value"]) == (80, 76)
    assert trip["durationSeconds"] >= 1
    assert_error(await v3.api.get(f"{VEH}/trips/1", headers=v3.headers), 404)


async def test_rest_charge_and_tpms_read_the_modules_metrics(v3: Setup) -> None:
    m = v3.module
    for name, value in (("v.c.state", "charging"), ("v.c.mode", "range"),
                        ("v.c.charging", "yes"), ("v.c.voltage", "230"),
                        ("v.c.current", "16"), ("v.c.kwh", "7.25"), ("v.d.cp", "yes"),
                        ("v.b.soc", "71"), ("v.t.pressure", "230,231,229,250"),
                        ("v.t.temp", "20,21,22,23")):
        m.metric(name, value)
    await v3.latest("S", lambda data: data.startswith("71,"))
    await v3.latest("Y", lambda data: "250" in data)
    params = CREDS
    r = await v3.api.get("/api/charge/DEMO", params=params)
    assert r.status_code == 200, r.text
    charge = r.json()
    assert (charge["chargestate"], charge["mode"]) == ("charging", "range")
    assert (charge["linevoltage"], charge["chargecurrent"]) == ("230", "16")
    assert charge["soc"] == "71" and charge["charging"] and charge["cp_dooropen"]
    r = await v3.api.get("/api/tpms/DEMO", params=params)
    assert r.status_code == 200, r.text
    tpms = r.json()
    assert (tpms["fl_pressure_kpa"], tpms["rr_pressure_kpa"]) == ("230", "250")
    assert float(tpms["rr_pressure"]) == pytest.approx(250 * 0.14503773773020923, abs=0.01)
    assert (tpms["fl_temperature"], tpms["rr_temperature"]) == ("20", "23")


async def test_notify_alert_reaches_a_push_subscription(v3: Setup,
                                                        service: FakeService) -> None:
    app = await v3.relay.app("DEMO")
    await app.drain()
    await app.send("p", f"hook1,webhook,url,DEMO,DEMO,{service.url}/hook")
    await app.send("A")
    await app.receive_until("a")
    v3.module.publish("notify/alert/charge/stopped", "Charging stopped\nSOC 71%")
    [request] = await service.wait_for(1, "/hook")
    body = request.json()
    assert {k: body[k] for k in ("vehicleid", "appid", "alerttype", "text")} == {
        "vehicleid": "DEMO", "appid": "hook1", "alerttype": "A",
        "text": "Charging stopped | SOC 71%"}
    # The app got it too, as the P a v2 module sends.
    texts = [msg.text() for msg in await app.receive_until("P")]
    assert texts[-1] == "PACharging stopped | SOC 71%"
    await app.aclose()
