"""A v3 module through a real Mosquitto, and a v2 app, REST and v4 on the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from relay.mqtt.gateway import V3Gateway
from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, client
from tests.mqtt_broker import broker_url, own_mosquitto, unique_prefix
from tests.v3_module import ScriptedModule, clear_retained
from tools.v2client import V2Client


@attrs.define
class V3Setup:
    relay: RelayUnderTest
    url: str
    prefix: str

    @property
    def gateway(self) -> V3Gateway:
        assert self.relay.handle.mqtt is not None
        return self.relay.handle.mqtt

    async def module(self, vehicleid: str = "DEMO", owner: str = "demo") -> ScriptedModule:
        module = ScriptedModule(self.url, self.prefix, owner, vehicleid)
        await module.ready()
        return module

    async def until_online(self, vehicleid: str, online: bool = True) -> None:
        with trio.fail_after(10):
            while self.relay.handle.hub.car_connected(vehicleid) != online:
                await trio.sleep(0.02)


@pytest.fixture
async def v3(start_relay: StartRelay) -> AsyncIterator[V3Setup]:
    with broker_url() as url:
        prefix = unique_prefix()
        # No persistent session on a shared broker: it would keep one per test.
        relay = await start_relay(mqtt=url, mqtt_prefix=prefix, mqtt_persistent=False)
        setup = V3Setup(relay, url, prefix)
        with trio.fail_after(10):
            while not setup.gateway.bridge.connected:
                await trio.sleep(0.02)
        try:
            yield setup
        finally:
            await trio.to_thread.run_sync(clear_retained, url, prefix)


async def receive_code(app: V2Client, code: str) -> str:
    msgs = await app.receive_until(code)
    return msgs[-1].data


async def test_app_sees_v3_car_live_and_commands_reach_it(v3: V3Setup) -> None:
    module = await v3.module()
    module.metric("v.b.soc", "81")
    module.metric("v.c.state", "charging")
    module.online()
    await v3.until_online("DEMO")
    app = await v3.relay.app("DEMO")
    assert (await app.receive()).text() == "Z1"
    s = await receive_code(app, "S")
    assert s.startswith("81,")
    # Presence: an app is connected, the module is told so.
    active = await module.wait_for(lambda t: t.endswith("/active"))
    assert active[-1][1] == b"1"
    # Live updates (one S per burst: tests/test_mqtt_gateway.py).
    module.metric("v.b.soc", "80")
    module.metric("v.c.voltage", "230")
    module.metric("v.c.current", "16")
    with trio.fail_after(10):
        while not s.startswith("80,K,230,16,"):
            s = await receive_code(app, "S")
    # A v2 command becomes a shell command; the module's output is the c answer.
    await app.send("C", "20,1234")
    command = await module.wait_for(lambda t: "/command/" in t)
    topic, payload = command[-1]
    assert payload == b"lock 1234"
    n = topic.rsplit("/", 1)[1]
    module.publish(f"client/ovms-relay/response/{n}", b"Vehicle locked")
    assert await receive_code(app, "c") == "20,0"
    # A command with no v3 equivalent is answered at once, unsupported.
    await app.send("C", "49,1")
    assert (await receive_code(app, "c")).startswith("49,2")
    # So is a failure the module reports.
    await app.send("C", "22,1234")
    command = await module.wait_for(lambda t: "/command/" in t, count=2)
    topic, payload = command[-1]
    module.publish(f"client/ovms-relay/response/{topic.rsplit('/', 1)[1]}",
                   b"Error: vehicle not responding")
    assert await receive_code(app, "c") == "22,1,Error: vehicle not responding"
    await app.aclose()
    active = await module.wait_for(lambda t: t.endswith("/active"), count=2)
    assert active[-1][1] == b"0"
    module.stop()


async def test_rest_sees_v3_car_and_last_will_marks_it_offline(v3: V3Setup) -> None:
    module = await v3.module()
    module.metric("v.b.soc", "64")
    module.online()
    await v3.until_online("DEMO")
    async with client(v3.relay) as api:
        r = await api.get("/api/status/DEMO", params=CREDS)
        assert r.status_code == 200, r.text
        assert r.json()["soc"] == "64"
        r = await api.get("/api/vehicles", params=CREDS)
        demo = next(v for v in r.json() if v["id"] == "DEMO")
        assert demo["v_net_connected"] == 1
        app = await v3.relay.app("DEMO")
        assert (await app.receive()).text() == "Z1"
        module.die()
        assert (await receive_code(app, "Z")) == "0"
        await v3.until_online("DEMO", online=False)
        r = await api.get("/api/vehicles", params=CREDS)
        demo = next(v for v in r.json() if v["id"] == "DEMO")
        assert demo["v_net_connected"] == 0
        await app.aclose()


async def test_other_owners_topics_are_ignored(v3: V3Setup) -> None:
    intruder = await v3.module("DEMO", owner="other")
    intruder.metric("v.b.soc", "1")
    intruder.online()
    unknown = await v3.module("NOSUCHCAR", owner="demo")
    unknown.online()
    # Processed in order: once the real module's flag is seen, the rest was too.
    module = await v3.module()
    module.metric("v.b.soc", "70")
    module.online()
    await v3.until_online("DEMO")
    latest = await v3.relay.handle.store.latest("DEMO")
    assert latest["S"].data.startswith("70,")
    assert "NOSUCHCAR" not in v3.gateway.modules
    for m in (intruder, unknown, module):
        m.stop()


async def test_broker_restart_mid_stream_recovers(start_relay: StartRelay) -> None:
    with own_mosquitto() as broker:
        relay = await start_relay(mqtt=broker.url, mqtt_prefix="ovms")
        v3 = V3Setup(relay, broker.url, "ovms")
        module = await v3.module()
        module.metric("v.b.soc", "50")
        module.online()
        await v3.until_online("DEMO")
        app = await relay.app("DEMO")
        assert (await app.receive()).text() == "Z1"
        assert (await receive_code(app, "S")).startswith("50,")
        module.stop()
        # Not persistent: the broker forgets retained flags and sessions.
        await trio.to_thread.run_sync(broker.restart)
        module = await v3.module()  # the module reconnects and sends everything again
        module.metric("v.b.soc", "49")
        module.online()
        with trio.fail_after(20):
            s = ""
            while not s.startswith("49,"):
                s = await receive_code(app, "S")
        # Presence reaches the module again, and commands flow.
        await module.wait_for(lambda t: t.endswith("/active"), timeout=20)
        await app.send("C", "11")
        command = await module.wait_for(lambda t: "/command/" in t, timeout=20)
        n = command[-1][0].rsplit("/", 1)[1]
        module.publish(f"client/ovms-relay/response/{n}", b"Charge started")
        assert await receive_code(app, "c") == "11,0"
        await app.aclose()
        module.stop()
