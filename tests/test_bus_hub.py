"""Bus hubs in one trio run over a real NATS: what must hold across nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
import trio.testing

from protocol import ClientType, Message
from relay.bus import envelope as env
from relay.bus.bridge import NatsBridge
from relay.bus.bushub import BusSettings
from relay.commands import CommandService, Offline
from relay.hub import OWNER_GAINED
from tests.bus_helpers import WAIT, cluster, expect, flush_all, start_node, until
from tests.hub_helpers import memory_peer, texts
from tests.nats_server import nats_url, unique_prefix

CAR, APP, BATCH = ClientType.CAR, ClientType.APP, ClientType.BATCH


@pytest.fixture
def url() -> Iterator[str]:
    with nats_url() as found:
        yield found


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


async def test_relay_both_ways_and_z(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b"]) as nodes:
        a, b = nodes["a"].hub, nodes["b"].hub
        car, car_rx = memory_peer(a, CAR)
        assert texts(car_rx) == []  # Z waits for b's count ...
        assert await expect(car_rx, "Z0") == []  # ... which is none
        await until(lambda: b.car_connected("V"))
        app, app_rx = memory_peer(b, APP)
        assert texts(app_rx) == ["Z1"]
        await expect(car_rx, "Z1")
        assert a.app_count("V") == 1

        a.to_clients("V", Message("S", "80,K"), Message("T", "0"))
        assert await expect(app_rx, "T0") == ["S80,K"]
        assert b.to_car("V", Message("E", "MX"), sender=app)
        await expect(car_rx, "EMX")

        b.unregister(app)
        await expect(car_rx, "Z0")
        a.unregister(car)
        await until(lambda: not b.car_connected("V"))


async def test_car_login_waits_for_every_node_count(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b", "c"]) as nodes:
        a, b, c = (nodes[n].hub for n in "abc")
        memory_peer(b, APP)
        memory_peer(b, APP)
        c_app, _ = memory_peer(c, APP)
        memory_peer(c, BATCH)  # not counted in Z
        _car, car_rx = memory_peer(a, CAR)
        assert await expect(car_rx, "Z3") == []  # one Z, after b's and c's counts
        c.unregister(c_app)
        await expect(car_rx, "Z2")
        assert a.batch_count("V") == 1


async def test_no_traffic_without_remote_clients(url: str, prefix: str) -> None:
    spy = NatsBridge(url, name="spy")
    relayed: list[tuple[str, env.Envelope]] = []  # every car message on the bus
    spy.on_message = lambda subject, data: relayed.extend(
        (subject, e) for e in [env.unpack(data)] if isinstance(e, env.Relay))
    spy.subscribe(f"{prefix}.>")  # everything of this cluster
    async with cluster(url, prefix, ["a", "b", "c"]) as nodes, \
            trio.open_nursery() as nursery:
        await nursery.start(spy.run)
        await until(lambda: spy.connected)
        a, b = nodes["a"].hub, nodes["b"].hub
        memory_peer(a, CAR)
        for i in range(20):
            a.to_clients("V", Message("S", str(i)))
        await flush_all(*nodes.values())
        assert relayed == []
        _app, _ = memory_peer(b, APP)  # now b wants the traffic; c still does not
        await until(lambda: a.app_count("V") == 1)
        a.to_clients("V", Message("S", "x"))
        await until(lambda: bool(relayed))
        await flush_all(*nodes.values())
        assert relayed == [(f"{prefix}.n.b", env.Relay("a", "V", (Message("S", "x"),)))]
        nursery.cancel_scope.cancel()


async def test_commands_and_waiters_across_nodes(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b"]) as nodes:
        a, b = nodes["a"].hub, nodes["b"].hub
        car, car_rx = memory_peer(a, CAR)
        await until(lambda: b.car_connected("V"))
        app, app_rx = memory_peer(b, APP)
        # A v2 app's command; the answer comes back to it only.
        assert b.send_command(app, 1, Message("C", "1"))
        await expect(car_rx, "C1")
        a.command_response("V", Message("c", "1,0,1,2,x"))
        a.command_response("V", Message("c", "1,0,2,2,y"))
        await expect(app_rx, "c1,0,1,2,x")
        await expect(app_rx, "c1,0,2,2,y")
        # REST/v4 control goes through the command service on b.
        commands = CommandService(b, store=None, timeout=WAIT)  # type: ignore[arg-type]

        async def answer() -> None:
            await expect(car_rx, "C20,x")
            a.command_response("V", Message("c", "20,0,done"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            result = await commands.call("V", 20, "x", requester="t")
        assert (result.result, result.text) == (0, "done")

        # A waiter whose car leaves before answering is told at once (409, not 504).
        async def leave() -> None:
            await expect(car_rx, "C21")
            a.unregister(car)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(leave)
            with pytest.raises(Offline):
                await commands.call("V", 21, requester="t")


async def test_unasked_answer_goes_to_every_client(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b"]) as nodes:
        a, b = nodes["a"].hub, nodes["b"].hub
        _, car_rx = memory_peer(a, CAR)
        await until(lambda: b.car_connected("V"))
        _, app_rx = memory_peer(b, APP)
        await expect(car_rx, "Z1")
        a.command_response("V", Message("c", "5,0,hello"))
        await expect(app_rx, "c5,0,hello")


async def test_groups_span_nodes(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b"]) as nodes:
        a, b = nodes["a"].hub, nodes["b"].hub
        car, _ = memory_peer(a, CAR, vehicleid="V1")
        assert a.group_update(car, "fleet", "data1")
        app, app_rx = memory_peer(b, APP, vehicleid="V2")
        assert b.group_subscribe(app, "fleet")
        await expect(app_rx, "gV1,fleet,data1")  # the data the group had
        await flush_all(nodes["a"], nodes["b"])
        a.group_update(car, "fleet", "data2")
        await expect(app_rx, "gV1,fleet,data2")  # and live updates


async def test_duplicate_car_login_on_another_node_closes_the_older(
        url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b"]) as nodes:
        a, b = nodes["a"].hub, nodes["b"].hub
        old, _ = memory_peer(a, CAR)
        await until(lambda: b.car_connected("V"))
        app, app_rx = memory_peer(a, APP)
        assert texts(app_rx) == ["Z1"]
        new, new_rx = memory_peer(b, CAR)
        await until(lambda: old.close_reason == "duplicate car login")
        assert new.close_reason is None
        a.unregister(old)  # what the closed connection does next
        assert a.car_connected("V")  # the car is on b now: the app keeps Z1
        assert texts(app_rx) == []
        await expect(new_rx, "Z1")  # a's app counts for the new car
        assert a.to_car("V", Message("E", "Mx"), sender=app)
        await expect(new_rx, "EMx")


async def test_node_death_corrects_z_within_the_timeout(
        url: str, prefix: str, mock_clock: trio.testing.MockClock) -> None:
    mock_clock.rate = 1.0  # real time passes too (NATS is real); jumps do the rest
    settings = BusSettings(heartbeat=1.0, timeout=5.0, republish=30.0)
    async with cluster(url, prefix, ["a", "b", "c"], settings) as nodes:
        a = nodes["a"].hub
        memory_peer(nodes["b"].hub, APP)
        memory_peer(nodes["c"].hub, APP)
        _car, car_rx = memory_peer(a, CAR)
        await expect(car_rx, "Z2")
        nodes["c"].crash()
        seen: list[str] = []
        with trio.fail_after(WAIT):
            while "Z1" not in seen:
                # Steps below the heartbeat: the live nodes' beats keep arriving.
                mock_clock.jump(0.5)
                await flush_all(nodes["a"], nodes["b"])
                seen += texts(car_rx)
        assert set(a.alive_nodes()) == {"b"}
        assert seen == ["Z1"]


async def test_restarted_node_loses_its_old_entries(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b"]) as nodes:
        a = nodes["a"].hub
        memory_peer(nodes["b"].hub, APP)
        _, car_rx = memory_peer(a, CAR)
        await expect(car_rx, "Z1")
        nodes["b"].crash()
        async with trio.open_nursery() as nursery:
            # The same node id, started again: a higher restart counter.
            b2 = await start_node(nursery, url, prefix, "b",
                                  epoch=nodes["b"].hub.epoch + 1)
            await expect(car_rx, "Z0")
            b2.stop()


async def test_bus_outage_keeps_local_pairs_and_heals(prefix: str) -> None:
    from tests.nats_server import own_nats

    with own_nats() as server:
        async with cluster(server.url, prefix, ["a", "b"]) as nodes:
            a, b = nodes["a"].hub, nodes["b"].hub
            _car, car_rx = memory_peer(a, CAR)
            await until(lambda: b.car_connected("V"))
            _local, local_rx = memory_peer(a, APP)
            await expect(car_rx, "Z1")
            server.stop()
            await until(lambda: not nodes["a"].bridge.connected)
            a.to_clients("V", Message("S", "1"))
            await expect(local_rx, "S1")  # local pairs go on
            await trio.to_thread.run_sync(server.start)
            await until(lambda: nodes["a"].bridge.connected and nodes["b"].bridge.connected)
            _remote, remote_rx = memory_peer(b, APP)
            await expect(car_rx, "Z2")
            a.to_clients("V", Message("S", "2"))
            await expect(remote_rx, "S2")




async def test_one_owner_per_vehicle_and_notices(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b", "c"]) as nodes:
        hubs = [nodes[n].hub for n in "abc"]
        vehicles = [f"V{i}" for i in range(30)]
        # A car connected nowhere: exactly one node runs it, and not always the same one.
        owners = [[h.node for h in hubs if h.owns_vehicle(v)] for v in vehicles]
        assert all(len(o) == 1 for o in owners)
        assert len({o[0] for o in owners}) > 1
        a, b, c = hubs
        gained: list[str] = []
        a.on_notice(OWNER_GAINED, gained.append)
        car, _ = memory_peer(b, CAR, vehicleid="V7")
        await until(lambda: a.car_connected("V7") and c.car_connected("V7"))
        assert [h.owns_vehicle("V7") for h in hubs] == [False, True, False]
        # The car moves to a: a takes over and is told to read the vehicle afresh.
        memory_peer(a, CAR, vehicleid="V7")
        await until(lambda: car.close_reason is not None)
        b.unregister(car)  # what its connection does once closed
        assert [h.owns_vehicle("V7") for h in hubs] == [True, False, False]
        assert gained == ["V7"]

        heard: list[tuple[str, ...]] = []
        for hub in (b, c):
            hub.on_notice("test.topic", lambda *args: heard.append(args))
        a.announce("test.topic", "x", "y")
        await until(lambda: len(heard) == 2)
        assert heard == [("x", "y"), ("x", "y")]


async def test_app_push_reaches_clients_on_every_node(url: str, prefix: str) -> None:
    async with cluster(url, prefix, ["a", "b", "c"]) as nodes:
        a, b, c = (nodes[n].hub for n in "abc")
        sender, _ = memory_peer(a, APP)
        _near, near_rx = memory_peer(a, BATCH)
        _far, far_rx = memory_peer(c, APP)
        await flush_all(*nodes.values())  # c's subscription is in place
        a.to_other_clients(sender, Message("P", "Ihello"))
        assert texts(near_rx)[-1] == "PIhello"
        await expect(far_rx, "PIhello")
        assert not b.vehicle_peers("V")
