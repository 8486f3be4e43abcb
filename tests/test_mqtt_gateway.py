"""The v3 gateway on trio's MockClock: an in-memory hub, a fake broker and a fake router.

What the broker side decides, without a broker: one S per burst, presence refreshed
inside the module's 120 s expiry, commands and answers kept in step with the hub's
waiting senders, bad input and foreign owners ignored (and logged once).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from protocol import ClientType, Message
from relay.hub import Hub
from relay.mqtt.bridge import Received
from relay.mqtt.gateway import V3Gateway
from relay.store import VehicleRecord
from tests.hub_helpers import memory_peer, texts

P = "ovms"
BASE = f"{P}/alice/CAR1"


@attrs.define
class FakeBridge:
    published: list[tuple[str, bytes]] = attrs.field(factory=list)
    acked: list[str] = attrs.field(factory=list)
    connected: bool = True
    persistent: bool = True

    def ack(self, message: Received) -> None:
        self.acked.append(message.topic.split("/", 2)[2])

    def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                retain: bool = False) -> bool:
        assert not retain
        self.published.append((topic, payload))
        return True

    async def run(self, handler: object, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def active(self) -> list[bytes]:
        return [p for t, p in self.published if t.endswith("/client/ovms-relay/active")]

    def commands(self) -> list[tuple[str, bytes]]:
        return [(t.rsplit("/", 1)[1], p) for t, p in self.published if "/command/" in t]


@attrs.define
class FakeStore:
    vehicles: dict[str, VehicleRecord]
    lookups: int = 0

    async def get_vehicle(self, vehicleid: str) -> VehicleRecord | None:
        self.lookups += 1
        return self.vehicles.get(vehicleid)


@attrs.define
class FakeRouter:
    hub: Hub
    store: FakeStore
    sent: list[tuple[str, str]] = attrs.field(factory=list)

    commits: list[tuple[Any, str]] = attrs.field(factory=list)

    async def from_car(self, peer: Any, msg: Message, nursery: trio.Nursery) -> None:
        self.sent.append((peer.vehicleid, msg.text()))
        if msg.code == "h":  # acked (to the peer) once committed: see commit()
            self.commits.append((peer, msg.data.split(",", 1)[0]))
            return
        self.hub.to_clients(peer.vehicleid, msg)

    def commit(self) -> None:
        for peer, ackcode in self.commits:
            self.hub.deliver(peer, Message("h", ackcode))
        self.commits.clear()


@attrs.define
class Setup:
    hub: Hub
    router: FakeRouter
    bridge: FakeBridge
    gateway: V3Gateway

    async def feed(self, *items: tuple[str, bytes | str]) -> None:
        batch = [Received(f"{BASE}/{path}" if not path.startswith(P + "/") else path,
                          p.encode() if isinstance(p, str) else p, False)
                 for path, p in items]
        await self.gateway.on_messages(batch)
        await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
async def g(nursery: trio.Nursery) -> AsyncIterator[Setup]:
    hub = Hub()
    store = FakeStore({"CAR1": VehicleRecord("CAR1", "alice", "x", "", ""),
                       "CAR2": VehicleRecord("CAR2", "bob", "x", "", "")})
    router = FakeRouter(hub, store)
    bridge = FakeBridge()
    gateway = V3Gateway(router, bridge, P, command_timeout=30.0)  # type: ignore[arg-type]
    await nursery.start(gateway.run, nursery)
    yield Setup(hub, router, bridge, gateway)


async def online(g: Setup) -> None:
    await g.feed(("metric/s/v3/connected", "yes"))
    assert g.hub.car_connected("CAR1")


async def test_a_burst_of_metrics_is_one_s(autojump_clock: trio.testing.MockClock,
                                            g: Setup) -> None:
    await g.feed(("metric/v/b/soc", "80"), ("metric/v/c/voltage", "230"),
                 ("metric/v/c/current", "16"), ("event", "ticker.1"))
    s = [text for vid, text in g.router.sent if text.startswith("S")]
    assert len(s) == 1 and s[0].startswith("S80,K,230,16")
    # The same value again changes nothing: no S at all.
    await g.feed(("metric/v/b/soc", "80"))
    assert len(g.router.sent) == 1


async def test_online_flag_and_will_register_the_car(autojump_clock: trio.testing.MockClock,
                                                     g: Setup) -> None:
    _app, to_app = memory_peer(g.hub, ClientType.APP, vehicleid="CAR1")
    assert texts(to_app) == ["Z0"]
    await online(g)
    assert texts(to_app) == ["Z1"]
    await g.feed(("metric/s/v3/connected", "no"))  # the last will
    assert not g.hub.car_connected("CAR1") and texts(to_app) == ["Z0"]


async def test_presence_follows_apps_and_is_refreshed(autojump_clock: trio.testing.MockClock,
                                                      g: Setup) -> None:
    await online(g)
    await trio.testing.wait_all_tasks_blocked()
    assert g.bridge.active() == []  # nobody watching: the module stays idle
    app, _ = memory_peer(g.hub, ClientType.APP, vehicleid="CAR1")
    await trio.testing.wait_all_tasks_blocked()
    assert g.bridge.active() == [b"1"]
    stamps: list[float] = [trio.current_time()]
    for _ in range(40):  # ~10 minutes
        before = len(g.bridge.active())
        await trio.sleep(15)
        if len(g.bridge.active()) > before:
            stamps.append(trio.current_time())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps and max(gaps) <= 60  # well inside the module's 120 s
    assert set(g.bridge.active()) == {b"1"}
    g.hub.unregister(app)
    await trio.testing.wait_all_tasks_blocked()
    assert g.bridge.active()[-1] == b"0"
    count = len(g.bridge.active())
    await trio.sleep(300)
    assert len(g.bridge.active()) == count  # no refresh for nobody


async def test_commands_and_answers_stay_in_step(autojump_clock: trio.testing.MockClock,
                                                 g: Setup) -> None:
    await online(g)
    app, to_app = memory_peer(g.hub, ClientType.APP, vehicleid="CAR1", size=100)
    texts(to_app)
    for data in ("20,1234", "22,1234"):
        assert g.hub.send_command(app, 20, Message("C", data))
    await trio.testing.wait_all_tasks_blocked()
    (_n1, p1), (n2, p2) = g.bridge.commands()
    assert (p1, p2) == (b"lock 1234", b"unlock 1234")
    # The first is never answered: when the second's answer comes, the first is
    # answered as failed first, so each waiting sender gets its own answer.
    await g.feed((f"client/ovms-relay/response/{n2}", "Vehicle unlocked"))
    assert texts(to_app) == ["c20,1,no answer", "c22,0"]
    # Another client's answers and unknown numbers are not ours.
    await g.feed(("client/someone/response/1", "x"), ("client/ovms-relay/response/99", "y"))
    assert texts(to_app) == []
    # A module that stays silent: the command is given up after command_timeout.
    assert g.hub.send_command(app, 11, Message("C", "11"))
    await trio.sleep(40)
    assert texts(to_app) == ["c11,1,no answer from the module"]
    # Unsafe parameters never reach the module's shell.
    assert g.hub.send_command(app, 20, Message("C", "20,1;reboot"))
    await trio.testing.wait_all_tasks_blocked()
    assert texts(to_app)[0].startswith("c20,1,")
    assert len(g.bridge.commands()) == 3


async def test_foreign_owner_and_unknown_vehicle_logged_once(
        autojump_clock: trio.testing.MockClock, g: Setup,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "relay.mqtt")
    for _ in range(50):
        await g.feed((f"{P}/alice/CAR2/metric/v/b/soc", "1"),
                     (f"{P}/mallory/CAR1/metric/s/v3/connected", "yes"),
                     (f"{P}/alice/NOPE/metric/v/b/soc", "2"))
    assert g.router.sent == [] and not g.hub.car_connected("CAR1")
    refused = [r.getMessage() for r in caplog.records if "ignored:" in r.getMessage()]
    assert len(refused) == 3
    assert g.router.store.lookups == 3  # remembered, not looked up again and again


async def test_bad_input_is_ignored(autojump_clock: trio.testing.MockClock, g: Setup,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "relay.mqtt")
    await g.feed(("metric/v/b/soc", b"\xff\xfe"),
                 ("metric/v/b/soc", b"9" * 100000),
                 ("metric/v/b/soc", "not a number"),
                 (f"{P}/alice/CAR1/metric/v/../soc", "5"),
                 (f"{P}/alice/CAR1/metric/v/b\nS/soc", "5"),
                 ("notify/alert/x", b"\xff"),
                 ("notify/data/x/1/-5", "no record here"),
                 ("metric/no/such/metric", "5"))
    assert g.router.sent == []
    assert len([r for r in caplog.records if "ignored" in r.getMessage()]) >= 6


async def test_notifications_become_p_and_h(autojump_clock: trio.testing.MockClock,
                                            g: Setup) -> None:
    await g.feed(("notify/alert/charge/stopped", "Charge stopped"),
                 ("notify/data/log/trip/17/-30", "*-LOG-Trip,0,86400,12.5,3"))
    assert [t for _, t in g.router.sent] == ["PACharge stopped",
                                             "h17,-30,*-LOG-Trip,0,86400,12.5,3"]


async def test_a_v2_car_login_takes_over(autojump_clock: trio.testing.MockClock,
                                         g: Setup) -> None:
    await online(g)
    car, _ = memory_peer(g.hub, ClientType.CAR, vehicleid="CAR1")
    await trio.sleep(10)  # a tick
    assert g.gateway.modules["CAR1"].peer is None
    assert g.hub.vehicle_peers("CAR1")[0] is car


async def test_after_a_broker_outage_online_modules_must_confirm(
        autojump_clock: trio.testing.MockClock, g: Setup) -> None:
    await online(g)
    await g.feed(("metric/s/v3/connected", "yes"))  # unchanged: no second registration
    g.gateway.on_connected()  # the relay is back on the broker
    await trio.sleep(60)
    await g.feed(("metric/s/v3/connected", "yes"))  # the retained flag, or a reconnect
    await trio.sleep(300)
    assert g.hub.car_connected("CAR1")
    # A module that died while the broker was down left no will: it never confirms.
    g.gateway.on_connected()
    await trio.sleep(300)
    assert not g.hub.car_connected("CAR1")
    await online(g)  # and comes back when it does


async def test_records_are_acknowledged_to_the_broker_after_their_commit(
        autojump_clock: trio.testing.MockClock, g: Setup) -> None:
    await g.feed(("metric/v/b/soc", "50"), ("notify/data/log/trip/5/-1", "*-LOG-Trip,0,86400,x"),
                 ("metric/v/b/soc", b"\xff"), (f"{P}/alice/NOPE/metric/v/b/soc", "1"))
    # Everything else at once (refused messages included), the record not yet.
    assert g.bridge.acked == ["CAR1/metric/v/b/soc", "CAR1/metric/v/b/soc",
                              "NOPE/metric/v/b/soc"]
    g.router.commit()
    await trio.testing.wait_all_tasks_blocked()
    assert g.bridge.acked[-1] == "CAR1/notify/data/log/trip/5/-1"


async def test_a_v4_monitor_keeps_the_module_active_without_apps(
        autojump_clock: trio.testing.MockClock, g: Setup) -> None:
    g.gateway.wanted.set("CAR1", True)  # a monitor before the module is online
    await online(g)
    await trio.testing.wait_all_tasks_blocked()
    assert g.bridge.active() == [b"1"]
    await trio.sleep(120)
    assert len(g.bridge.active()) >= 3  # refreshed as for an app
    # An app coming and going changes nothing while the monitor stays.
    app, _ = memory_peer(g.hub, ClientType.APP, vehicleid="CAR1")
    g.hub.unregister(app)
    await trio.testing.wait_all_tasks_blocked()
    assert set(g.bridge.active()) == {b"1"}
    g.gateway.wanted.set("CAR1", False)
    assert g.bridge.active()[-1] == b"0"
    # With an app, the last monitor leaving keeps it active.
    app, _ = memory_peer(g.hub, ClientType.APP, vehicleid="CAR1")
    await trio.testing.wait_all_tasks_blocked()
    g.gateway.wanted.set("CAR1", True)
    g.gateway.wanted.set("CAR1", False)
    assert g.bridge.active()[-1] == b"1"
    g.hub.unregister(app)
    await trio.testing.wait_all_tasks_blocked()
    assert g.bridge.active()[-1] == b"0"
    # Another vehicle's monitors are not this module's.
    count = len(g.bridge.active())
    g.gateway.wanted.set("CAR2", True)
    assert len(g.bridge.active()) == count
