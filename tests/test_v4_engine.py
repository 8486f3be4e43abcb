"""Issue 11: the v4 engine's time windows on trio's MockClock, with an injected wall clock.

The engine waits on trio's clock and reads wall time only through its ``Clock``;
here the wall clock follows the MockClock from a fixed instant, so an hour of
monitor windows and batch windows runs in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from relay.commands import CommandService
from relay.config import Config
from relay.hub import Hub
from relay.store import open_store
from relay.v4 import monitor_model, monitor_parse
from relay.v4.engine import V4Engine
from tests.settle import drive_clock

# Monday 5 January 2026, 09:59:00 UTC: the monitors' windows open at 10:00.
EPOCH = dt.datetime(2026, 1, 5, 9, 59, tzinfo=dt.UTC).timestamp()


@attrs.frozen
class FollowingWallClock:
    """Wall time that starts at ``epoch`` and moves with trio's (mock) clock."""

    epoch: float

    def now(self) -> float:
        return trio.current_time()

    def wall(self) -> float:
        return self.epoch + trio.current_time()


@attrs.define
class Running:
    engine: V4Engine
    fired: trio.MemoryReceiveChannel[tuple[float, Any]]


@pytest.fixture
async def running(
    autojump_clock: trio.testing.MockClock, relay_db: str,
    nursery: trio.Nursery,
) -> AsyncIterator[Any]:
    # The store's SQLite work runs in threads, during which the clock must not move.
    nursery.start_soon(drive_clock, autojump_clock)

    async def start(**overrides: Any) -> Running:
        path = relay_db
        config = attrs.evolve(Config(db=path, store_timeout=1e6), **overrides)
        store = await nursery.start(_store, path)
        commands = CommandService(Hub(), store, config.command_timeout)
        engine = V4Engine(config, store, commands, clock=FollowingWallClock(EPOCH))
        send, fired = trio.open_memory_channel[tuple[float, Any]](100)
        # The callback sender is tested on its own: here, what the engine hands it, when.
        engine.callbacks.submit = (  # type: ignore[method-assign]
            lambda job: send.send_nowait((trio.current_time(), job)))
        await nursery.start(engine.run)
        return Running(engine, fired)

    yield start


async def _store(path: str, *, task_status: trio.TaskStatus[Any]) -> None:
    async with open_store(path, read_timeout=1e6) as store:
        task_status.started(store)
        await trio.sleep_forever()


def parse(triggers: list[dict[str, Any]], expression: str, **subscribe: Any
          ) -> monitor_model.Monitor:
    return monitor_parse.monitor_from_json({
        "label": "test",
        "subscribeParam": {"callback": {"target": "http://192.0.2.1/cb", "name": "HTTP_CB"},
                           **subscribe},
        "triggerParam": {"triggers": triggers, "bool.exp": expression},
    }, url_allowed=lambda url: True)


WINDOW = {"name": "morning", "time": {"times": [
    {"recurrence": "Daily", "start": "PT10H", "duration": "PT1H"}]}}


async def test_time_window_opening_fires_on_the_monitor_tick(
    autojump_clock: trio.testing.MockClock, running: Any,
) -> None:
    """Issue 11 item 5: a time window opening with no car message at all fires the
    monitor on the first tick inside the window (10:00 is 60 s after the start)."""
    run: Running = await running(monitor_tick=25)
    await run.engine.put_monitor("DEMO", "demo", parse([WINDOW], "morning"))
    with trio.fail_after(3600):
        at, job = await run.fired.receive()
    assert 60 <= at <= 60 + 25
    assert job.vehicleid == "DEMO"
    # The window stays open: no second firing on the next ticks (an edge, not a level).
    with trio.move_on_after(200):
        await run.fired.receive()
        raise AssertionError("fired twice in one window")


async def test_batch_window_closes_on_time_without_a_tick(
    autojump_clock: trio.testing.MockClock, running: Any,
) -> None:
    """Issue 11 item 5: a batch's time window ends at a wall moment; the engine turns it
    into a trio deadline and hands the batch over then, not at the next tick."""
    run: Running = await running(monitor_tick=100_000)
    soc = {"name": "low", "data": {"data": "vehicle.energy.electric.level",
                                   "op": "lowerThan", "value": ["50"]}}
    monitor = parse([soc], "low", batchNotify={"size": 10, "timeWindow": 300})
    await run.engine.put_monitor("DEMO", "demo", monitor)
    run.engine.car_message("DEMO", "S", "60,K,0,0,stopped,standard,200,150")
    await trio.sleep(10)
    run.engine.car_message("DEMO", "S", "40,K,0,0,stopped,standard,200,150")
    with trio.fail_after(3600):
        at, job = await run.fired.receive()
    assert 10 + 300 <= at <= 10 + 300 + 1
    assert job.vehicleid == "DEMO"


async def test_vehicles_with_monitors_are_wanted(
    autojump_clock: trio.testing.MockClock, running: Any, nursery: trio.Nursery,
) -> None:
    """Issue 13: the v3 gateway keeps a module active while its vehicle has monitors;
    the engine says which vehicles have some, monitors loaded at start included."""
    run: Running = await running()
    heard: list[tuple[str, bool]] = []
    run.engine.wanted.listen(lambda vid, wanted: heard.append((vid, wanted)))
    assert not run.engine.wanted.wanted("DEMO")
    first = await run.engine.put_monitor("DEMO", "demo", parse([WINDOW], "morning"))
    second = await run.engine.put_monitor("DEMO", "demo", parse([WINDOW], "morning"))
    assert run.engine.wanted.wanted("DEMO") and heard == [("DEMO", True)]
    await run.engine.delete_monitor(first)
    assert run.engine.wanted.wanted("DEMO")
    # A second engine on the same store (a restart) loads the remaining monitor.
    again = V4Engine(run.engine.config, run.engine.store, run.engine.commands,
                     clock=FollowingWallClock(EPOCH))
    await nursery.start(again.run)
    assert again.wanted.wanted("DEMO")
    await run.engine.delete_monitor(second)
    assert not run.engine.wanted.wanted("DEMO")
    assert heard == [("DEMO", True), ("DEMO", False)]
