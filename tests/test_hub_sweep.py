"""Issue 11: the hub's liveness sweep, groups and flood rule on their own, on trio's MockClock.

Liveness used to be on ``time.monotonic`` and could only be tested with real
timeouts; now every timeout is on trio's clock, so these run in milliseconds.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from protocol import ClientType, Message
from relay.app import sweep_forever
from relay.config import Config
from relay.hub import GroupLimits, Hub, Peer
from relay.hubapi import Liveness
from relay.outbox import Outbox
from tests.hub_helpers import memory_peer, texts

TIMEOUTS = {ClientType.CAR: 60.0, ClientType.APP: 30.0, ClientType.BATCH: 10.0}


def make_peer(hub: Hub, client_type: ClientType, vehicleid: str = "V", size: int = 16
              ) -> tuple[Peer, trio.MemoryReceiveChannel[Message]]:
    return memory_peer(hub, client_type, vehicleid=vehicleid, size=size)


def sweep(hub: Hub, ping_after: float = 100.0, ping_every: float = 100.0) -> None:
    hub.sweep(trio.current_time(), Liveness(TIMEOUTS, ping_after, ping_every))


async def test_each_client_type_times_out_after_its_own_silence(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Issue 11 item 5: car, app and batch timeouts, each on trio's clock."""
    hub = Hub()
    car, _ = make_peer(hub, ClientType.CAR)
    app, _ = make_peer(hub, ClientType.APP)
    batch, _ = make_peer(hub, ClientType.BATCH)
    mock_clock.jump(10.001)
    sweep(hub)
    assert (car.close_reason, app.close_reason, batch.close_reason) == (None, None, "timeout")
    mock_clock.jump(20)
    app.last_rx = trio.current_time() - 29  # heard from recently: stays
    sweep(hub)
    assert app.close_reason is None
    mock_clock.jump(1.5)
    sweep(hub)
    assert app.close_reason == "timeout" and app.cancel_scope.cancel_called
    assert car.close_reason is None
    mock_clock.jump(30)
    sweep(hub)
    assert car.close_reason == "timeout"


async def test_quiet_car_is_pinged_at_most_once_per_interval(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Issue 11 item 5: a car we sent nothing to for ping_after gets ``A``, then at
    most one more per ping_every; apps are never pinged."""
    hub = Hub()
    car, car_rx = make_peer(hub, ClientType.CAR)
    _app, app_rx = make_peer(hub, ClientType.APP)
    texts(car_rx), texts(app_rx)
    # Binary fractions: the comparisons are exact.
    mock_clock.jump(0.25)
    sweep(hub, ping_after=0.375, ping_every=1.0)
    assert texts(car_rx) == []
    mock_clock.jump(0.25)
    sweep(hub, ping_after=0.375, ping_every=1.0)
    assert texts(car_rx) == ["A"]
    mock_clock.jump(0.5)
    sweep(hub, ping_after=0.375, ping_every=1.0)
    assert texts(car_rx) == []  # still quiet, but pinged 0.5 s ago
    mock_clock.jump(0.5)
    sweep(hub, ping_after=0.375, ping_every=1.0)
    assert texts(car_rx) == ["A"]
    car.last_tx = trio.current_time()  # we just sent it something: not quiet
    mock_clock.jump(1.0)
    sweep(hub, ping_after=3, ping_every=1.0)
    assert texts(car_rx) == [] and texts(app_rx) == []


class NoUsageStore:
    """The sweeper hands usage to the store; these peers have none to hand over."""

    def add_usage(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no usage expected")


async def test_the_sweeper_runs_on_trio_clock(autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 item 5: ``sweep_forever`` closes a silent app, pings a quiet car and
    closes it when it stays silent, with second-long settings run on MockClock."""
    config = Config(sweep_interval=0.5, car_timeout=20, app_timeout=5, batch_timeout=5,
                    car_ping_after=3, car_ping_every=4)
    hub = Hub()
    car, car_rx = make_peer(hub, ClientType.CAR)
    app, _ = make_peer(hub, ClientType.APP)
    texts(car_rx)
    start = trio.current_time()
    pings: list[float] = []

    async def car_reads() -> None:
        async for msg in car_rx:
            assert msg.text() == "A"
            pings.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sweep_forever, hub, NoUsageStore(), config)  # type: ignore[arg-type]
        nursery.start_soon(car_reads)
        while app.close_reason is None:
            await trio.sleep(0.1)
        closed_app_at = trio.current_time() - start
        while car.close_reason is None:
            await trio.sleep(0.1)
        closed_car_at = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert 5 < closed_app_at <= 5.6
    assert 20 < closed_car_at <= 20.6
    # 3 s of quiet, then every 4 s: the sweeper runs every 0.5 s.
    assert [round(t) for t in pings] == [3, 7, 11, 15, 19]


async def test_flooding_app_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11: an app filling the car's queue beyond half is closed with one
    warning; the lines it had already buffered (handed over by its reader after
    close) are refused without a warning each."""
    caplog.set_level(logging.WARNING, logger="relay.hub")
    hub = Hub()

    async def never(batch: list[Message]) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        car = Peer(conn_id="car", owner="o", vehicleid="V", client_type=ClientType.CAR,
                   outbox=Outbox(8, never, nursery), cancel_scope=trio.CancelScope())
        hub.register(car)
        app, _ = make_peer(hub, ClientType.APP)
        sent = [hub.to_car("V", Message("C", "1"), sender=app) for _ in range(20)]
        sent += [hub.send_command(app, 1, Message("C", "1")) for _ in range(5)]
        nursery.cancel_scope.cancel()
    assert sent.count(True) == 2  # Z and the first 2 commands fill half of 8 (4)
    assert app.close_reason == "flooding the car"
    warnings = [r for r in caplog.records if "faster than the car reads" in r.getMessage()]
    assert len(warnings) == 1


async def test_groups_relay_replay_and_forget() -> None:
    """Issue 11: a car's group data reaches subscribers, is replayed to a new
    subscriber, and is forgotten when the car leaves; a leaving app is unsubscribed."""
    hub = Hub(GroupLimits(groups=2))
    car, car_rx = make_peer(hub, ClientType.CAR, "CAR1")
    other, _ = make_peer(hub, ClientType.CAR, "CAR2")
    early, early_rx = make_peer(hub, ClientType.APP, "CAR1")
    texts(car_rx), texts(early_rx)
    assert hub.group_subscribe(early, "fleet")
    assert hub.group_update(car, "fleet", "1,2")
    assert hub.group_update(other, "fleet", "3,4")
    assert texts(early_rx) == ["gCAR1,fleet,1,2", "gCAR2,fleet,3,4"]
    late, late_rx = make_peer(hub, ClientType.BATCH, "CAR2")
    texts(late_rx)
    assert hub.group_subscribe(late, "fleet")
    assert texts(late_rx) == ["gCAR1,fleet,1,2", "gCAR2,fleet,3,4"]
    # Limits: a third group per connection is refused, the connection stays.
    assert hub.group_subscribe(late, "b") and not hub.group_subscribe(late, "c")
    assert late.close_reason is None and late.group_refusals == 1
    hub.unregister(car)
    assert texts(early_rx) == ["Z0"]
    late2, late2_rx = make_peer(hub, ClientType.APP, "CAR2")
    texts(late2_rx)
    hub.group_subscribe(late2, "fleet")
    assert texts(late2_rx) == ["gCAR2,fleet,3,4"]  # CAR1's data left with it
    hub.unregister(early)
    assert hub.group_update(other, "fleet", "5")
    assert texts(early_rx) == []
    assert texts(late_rx) == ["gCAR2,fleet,5"]
