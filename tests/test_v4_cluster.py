"""The v4 engine in a cluster: two engines (two nodes) on one store, joined by hubs that
pass notices to each other. Monitors made on either node run on the owner only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from relay.commands import CommandService
from relay.config import Config
from relay.hub import OWNER_GAINED, Hub
from relay.store import Store, open_store
from relay.v4.engine import V4Engine
from tests.conftest import copy_db
from tests.test_v4_engine import EPOCH, WINDOW, FollowingWallClock, parse


class TwinHub(Hub):
    """A hub whose notices reach its twins, and that owns the vehicles it is told to."""

    def __init__(self) -> None:
        super().__init__()
        self.twins: list[TwinHub] = []
        self.owned: set[str] = set()

    def owns_vehicle(self, vehicleid: str) -> bool:
        return vehicleid in self.owned

    def announce(self, topic: str, *args: str) -> None:
        for twin in self.twins:
            twin._notice(topic, args)

    def gain(self, vehicleid: str) -> None:
        self.owned.add(vehicleid)
        self._notice(OWNER_GAINED, (vehicleid,))


async def _store(path: str, *, task_status: trio.TaskStatus[Store]) -> None:
    async with open_store(path, read_timeout=1e6) as store:
        task_status.started(store)
        await trio.sleep_forever()


async def engines(nursery: trio.Nursery, path: Path, names: Iterable[str]
                  ) -> dict[str, tuple[V4Engine, TwinHub, trio.MemoryReceiveChannel[Any]]]:
    store: Store = await nursery.start(_store, str(path))
    config = Config(db=str(path), store_timeout=1e6, monitor_tick=25)
    out = {}
    for name in names:
        hub = TwinHub()
        engine = V4Engine(config, store, CommandService(hub, store, 10),
                          clock=FollowingWallClock(EPOCH))
        send, fired = trio.open_memory_channel[Any](100)
        engine.callbacks.submit = send.send_nowait  # type: ignore[method-assign]
        engine.join(hub)
        await nursery.start(engine.run)
        out[name] = (engine, hub, fired)
    hubs = [hub for _, hub, _ in out.values()]
    for hub in hubs:
        hub.twins = [h for h in hubs if h is not hub]
    return out


@pytest.fixture
def db_path(tmp_path: Path, template_db: Path) -> Path:
    path = tmp_path / "relay.db"
    copy_db(template_db, path)
    return path


async def test_monitor_made_on_another_node_fires_once_on_the_owner(
    autojump_clock: trio.testing.MockClock, db_path: Path, nursery: trio.Nursery,
) -> None:
    autojump_clock.autojump_threshold = 0.02  # the store's threads run in real time
    nodes = await engines(nursery, db_path, "ab")
    (a, a_hub, a_fired), (b, _b_hub, b_fired) = nodes["a"], nodes["b"]
    a_hub.owned.add("DEMO")  # the car is on a
    await b.put_monitor("DEMO", "demo", parse([WINDOW], "morning"))  # REST on b
    await a.drain()
    assert [e.monitorid for e in a.monitors_of("DEMO")] == \
        [e.monitorid for e in b.monitors_of("DEMO")]
    with trio.fail_after(3600):
        job = await a_fired.receive()  # the window opens at 10:00, on a's tick
    assert job.vehicleid == "DEMO"
    with trio.move_on_after(600):  # several ticks of both engines
        await b_fired.receive()
        raise AssertionError("the node without the car fired too")
    # Deleting it on b removes it on a as well.
    await b.delete_monitor(b.monitors_of("DEMO")[0])
    await a.drain()
    assert a.monitors_of("DEMO") == []


async def test_gaining_a_vehicle_reads_its_state_afresh(
    autojump_clock: trio.testing.MockClock, db_path: Path, nursery: trio.Nursery,
) -> None:
    autojump_clock.autojump_threshold = 0.02
    nodes = await engines(nursery, db_path, "ab")
    (a, a_hub, _), (b, b_hub, _) = nodes["a"], nodes["b"]
    a_hub.owned.add("DEMO")
    soc = {"name": "low", "data": {"data": "vehicle.energy.electric.level",
                                   "op": "lowerThan", "value": ["50"]}}
    assert "S" not in await b.snapshot("DEMO")  # b has a copy of the vehicle's state
    await a.put_monitor("DEMO", "demo", parse([soc], "low"))
    await a.store.put_latest("DEMO", "S", "60,K,0,0,stopped,standard,200,150")  # a's router
    a.car_message("DEMO", "S", "60,K,0,0,stopped,standard,200,150")
    await a.drain()
    await trio.sleep(1)  # the state's write is group-committed
    # The car moves to b: b reads a's state (the condition was false at 60) ...
    a_hub.owned.clear()
    b_hub.gain("DEMO")
    await b.drain()
    [entry] = b.monitors_of("DEMO")
    assert entry.state == a.monitors_of("DEMO")[0].state
    assert (await b.snapshot("DEMO"))["S"].startswith("60,")
