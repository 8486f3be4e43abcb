"""Cluster mode with OVMS v3 modules: every node's gateway receives every message, one
node (the vehicle's owner) handles it. Two relays in this process on one PostgreSQL
database, one NATS and one Mosquitto."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from protocol import Message
from relay.app import RelayHandle, run_relay
from relay.config import Config
from relay.mqtt.gateway import V3Gateway
from tests.conftest import RelayUnderTest, make_db
from tests.mqtt_broker import broker_url
from tests.mqtt_broker import unique_prefix as topic_prefix
from tests.nats_server import unique_prefix
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)
from tests.v3_module import ScriptedModule, clear_retained
from tools.v2client import V2Client

__all__ = ["pg_cluster", "pg_server"]  # fixtures

WAIT = 30.0  # bound on what must happen (never a timing claim)


class Node:
    """A relay of the test's cluster that the test can stop on its own."""

    def __init__(self, relay: RelayUnderTest, scope: trio.CancelScope) -> None:
        self.relay = relay
        self.scope = scope
        self.handled: Counter[str] = Counter()  # codes the router got from v3 modules
        router = relay.handle.services.router
        from_car = router.from_car

        async def counting(peer: Any, msg: Message, nursery: trio.Nursery) -> None:
            if peer.address.startswith("mqtt:"):
                self.handled[msg.code] += 1
            await from_car(peer, msg, nursery)

        router.from_car = counting  # type: ignore[method-assign]

    @property
    def name(self) -> str:
        return self.relay.config.node_id

    @property
    def gateway(self) -> V3Gateway:
        assert self.relay.handle.mqtt is not None
        return self.relay.handle.mqtt

    def registered(self, vehicleid: str) -> bool:
        module = self.gateway.modules.get(vehicleid)
        return module is not None and module.peer is not None


async def _run_node(config: Config, *,
                    task_status: trio.TaskStatus[tuple[RelayHandle, trio.CancelScope]]
                    = trio.TASK_STATUS_IGNORED) -> None:
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(run_relay, config)
            task_status.started((handle, scope))


@pytest.fixture
def broker() -> Iterator[str]:
    with broker_url() as url:
        yield url


@pytest.fixture
async def nodes(nursery: trio.Nursery, pg_url: str, bus: str,  # noqa: F811
                broker: str) -> AsyncIterator[dict[str, Node]]:
    make_db(pg_url)
    bus_prefix, mqtt_prefix = unique_prefix(), topic_prefix()
    started: dict[str, Node] = {}
    for name in ("a", "b"):
        config = Config(db=pg_url, host="127.0.0.1", v2_port=0, http_port=0,
                        sweep_interval=0.05, bus=bus, node_id=name, bus_prefix=bus_prefix,
                        mqtt=broker, mqtt_prefix=mqtt_prefix, mqtt_persistent=False)
        handle, scope = await nursery.start(_run_node, config)
        started[name] = Node(RelayUnderTest(handle, config, pg_url), scope)
    with trio.fail_after(WAIT):
        while "b" not in started["a"].relay.handle.hub.alive_nodes() or not all(
                n.gateway.bridge.connected for n in started.values()):
            await trio.sleep(0.02)
    try:
        yield started
    finally:
        await trio.to_thread.run_sync(clear_retained, broker, mqtt_prefix)


async def until(check: Any) -> None:
    with trio.fail_after(WAIT):
        while not check():
            await trio.sleep(0.02)


async def receive_code(app: V2Client, code: str) -> str:
    return (await app.receive_until(code))[-1].data


async def answer(module: ScriptedModule, count: int, text: bytes) -> str:
    """Answer the ``count``-th command the module got; the client id it was sent as."""
    topic, _ = (await module.wait_for(lambda t: "/command/" in t, count=count))[-1]
    _, client_id, _, n = topic.split("/")
    module.publish(f"client/{client_id}/response/{n}", text)
    return client_id


async def test_a_v3_module_is_handled_once_and_moves_when_its_node_stops(
        nodes: dict[str, Node], broker: str) -> None:
    a, b = nodes["a"], nodes["b"]
    prefix = a.gateway.prefix
    module = ScriptedModule(broker, prefix, "demo", "DEMO")
    await module.ready()
    module.metric("v.b.soc", "81")
    module.online()
    await until(lambda: a.registered("DEMO") or b.registered("DEMO"))
    owner, other = (a, b) if a.registered("DEMO") else (b, a)
    await until(lambda: other.relay.handle.hub.car_connected("DEMO"))
    # Every node keeps the module's state; one registered its car.
    assert not other.registered("DEMO")
    assert other.gateway.modules["DEMO"].state.online

    # An app logging in reads the latest messages from the database: on the other
    # node, those the owner has committed.
    with trio.fail_after(WAIT):
        while not await trio.to_thread.run_sync(
                owner.relay.sql, "SELECT 1 FROM latest WHERE vehicleid='DEMO' AND code='S'"):
            await trio.sleep(0.05)
    app_there = await owner.relay.app("DEMO")
    app_here = await other.relay.app("DEMO")
    for app in (app_there, app_here):
        assert (await app.receive()).text() == "Z1"
        assert (await receive_code(app, "S")).startswith("81,")
    # A live update reaches the apps on both nodes once; a record is stored once.
    module.metric("v.b.soc", "79")
    module.publish("notify/data/log/trip/7/-30", b"*-LOG-Trip,0,86400,12.5,3")
    for app in (app_there, app_here):
        s = ""
        while not s.startswith("79,"):
            s = await receive_code(app, "S")
    await until(lambda: owner.handled["h"] == 1)
    # Handed over once; stored once (the durable write commits a moment later).
    with trio.fail_after(WAIT):
        while (rows := await trio.to_thread.run_sync(
                owner.relay.sql, "SELECT count(*) FROM historical WHERE vehicleid='DEMO'")
               ) == [(0,)]:
            await trio.sleep(0.05)
    assert rows == [(1,)]
    assert other.handled == Counter()
    # A command from an app on the other node is sent once, by the owner, and its
    # answer comes back to that app.
    await app_here.send("C", "20,1234")
    assert await answer(module, 1, b"Vehicle locked") == f"ovms-relay-{owner.name}"
    assert await receive_code(app_here, "c") == "20,0"
    await app_there.send("C", "11")
    await answer(module, 2, b"Charge started")
    assert await receive_code(app_there, "c") == "11,0"
    assert len(module.messages(lambda t: "/command/" in t)) == 2
    assert all(f"ovms-relay-{owner.name}" in t
               for t, _ in module.messages(lambda t: t.endswith("/active")))
    assert other.handled == Counter()
    await app_there.aclose()

    # The owner stops: the other node registers the car from its own state.
    owner.scope.cancel()
    await until(lambda: other.registered("DEMO"))
    assert (await receive_code(app_here, "S")).startswith("79,")
    module.metric("v.b.soc", "77")
    s = ""
    while not s.startswith("77,"):
        s = await receive_code(app_here, "S")
    await app_here.send("C", "20,1234")
    assert await answer(module, 3, b"Vehicle locked") == f"ovms-relay-{other.name}"
    assert await receive_code(app_here, "c") == "20,0"
    await until(lambda: any(f"ovms-relay-{other.name}" in t and p == b"1" for t, p in
                            module.messages(lambda t: t.endswith("/active"))))
    await app_here.aclose()
    module.stop()
