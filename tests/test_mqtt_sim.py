"""``ovms-car --v3``: the simulated v3 module through Mosquitto, seen by apps, REST and v4."""

from __future__ import annotations

import attrs
import trio

from protocol.ovms_v3.state import VehicleState
from relay.mqtt.url import BrokerUrl
from tests.conftest import StartRelay
from tests.http_helpers import CREDS, client
from tests.mqtt_broker import broker_url, unique_prefix
from tests.v3_module import clear_retained
from tools import car
from tools import simulation as sim
from tools.car_v3 import SimModuleV3, V3Config, metrics


def test_every_simulated_metric_is_one_the_mapping_reads() -> None:
    state = VehicleState()
    values = metrics(sim.new_vehicle(3))
    for name, value in values.items():
        applied = state.apply(name, value.encode())
        assert applied.rejected is None, (name, value, applied.rejected)
    assert {m.code for m in state.messages("SDLWYF")} == set("SDLWYF")


def test_usage_errors() -> None:
    assert car.run(["--vehicle", "X", "--v3"]) == 2
    assert car.run(["--vehicle", "X", "--v3", "--mqtt", "mqtt://host"]) == 2


async def test_simulated_module_end_to_end(start_relay: StartRelay,
                                           nursery: trio.Nursery) -> None:
    with broker_url() as url:
        prefix = unique_prefix()
        relay = await start_relay(mqtt=url, mqtt_prefix=prefix, mqtt_persistent=False)
        parts = BrokerUrl.parse(url)
        module_url = attrs.evolve(parts, username="demo", password="pw")
        module = SimModuleV3(V3Config(module_url, "DEMO", prefix, idle_interval=600,
                                      connected_interval=1, time_scale=60), index=1)
        try:
            scope = trio.CancelScope()
            nursery.start_soon(_run, module, scope)
            await _until(lambda: relay.handle.hub.car_connected("DEMO"))
            await _until_async(lambda: _has_codes(relay.handle.store, "SDLWF"))
            app = await relay.app("DEMO")
            seen = {m.code: m.data for m in await app.receive_until("T")}
            assert seen["Z"] == "1" and {"S", "D", "L", "W", "F"} <= set(seen)
            # The app's presence makes the module report at its connected interval.
            await _until(lambda: module.peers == 1)
            async with client(relay) as api:
                r = await api.put("/api/lock/DEMO", params={**CREDS, "pin": "4321"})
                assert r.status_code == 200, r.text
                assert module.state.locked
                r = await api.delete("/api/lock/DEMO", params={**CREDS, "pin": "4321"})
                assert r.status_code == 200 and not module.state.locked
                status = (await api.get("/api/status/DEMO", params=CREDS)).json()
                # (the model moves on meanwhile: near, not equal)
                assert abs(float(status["soc"]) - float(module.sent["v.b.soc"])) < 5
                location = (await api.get("/api/location/DEMO", params=CREDS)).json()
                assert location["latitude"]
                token = (await api.post("/api/token", params={**CREDS, "permit": "v4"})
                         ).json()["token"]
                v4 = (await api.get("/api/v4/user/vehicles/DEMO",
                                    headers={"Authorization": f"Bearer {token}"})).json()
                assert v4["connected"] is True
            # A record the module logs is stored as a historical record.
            module.send_record(sim.HistoricalRecord("*-LOG-Test", 7, "1,2,3",
                                                    module.state.sim_time))
            await _until_async(lambda: _has_record(relay.handle.store))
            # Stopping the module says goodbye as its will would.
            scope.cancel()
            await _until(lambda: not relay.handle.hub.car_connected("DEMO"))
            assert (await app.receive_until("Z"))[-1].data == "0"
            await app.aclose()
        finally:
            await trio.to_thread.run_sync(clear_retained, url, prefix)


async def _run(module: SimModuleV3, scope: trio.CancelScope) -> None:
    with scope:
        await module.run()


async def _until(check: object, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not check():  # type: ignore[operator]
            await trio.sleep(0.02)


async def _until_async(check: object, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not await check():  # type: ignore[operator]
            await trio.sleep(0.05)


async def _has_record(store: object) -> bool:
    records = await store.historical_records("DEMO", "*-LOG-Test", None)  # type: ignore[attr-defined]
    return any(r.recordnumber == 7 and r.data == "1,2,3" for r in records)


async def _has_codes(store: object, codes: str) -> bool:
    latest = await store.latest("DEMO")  # type: ignore[attr-defined]
    return set(codes) <= set(latest)
