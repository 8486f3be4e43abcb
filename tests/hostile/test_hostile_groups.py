"""Issue 9 defect 7: group subscriptions (``G``) and a car's group data (``g``) are bounded.

One app subscribing to 60,000 names of 10 KB took the server from 59 to 706 MB.
Refused subscriptions and updates are logged (a bounded number of lines) and the
connection stays open.
"""

from __future__ import annotations

import logging

import pytest
import trio

from protocol import ClientType
from relay.hub import GroupLimits, Hub, Peer
from tests.conftest import StartRelay
from tests.http_helpers import sync
from tests.settle import pinged


def hub_peer(hub: Hub, vehicleid: str, client_type: ClientType) -> Peer:
    peer = Peer(hub.new_id("t-"), "owner", vehicleid, client_type,
                trio.open_memory_channel[object](100)[0],  # type: ignore[arg-type]
                trio.CancelScope())
    hub.register(peer)
    return peer


async def test_app_group_subscriptions_are_bounded(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 7: at most max_groups names per connection, each at most
    max_group_name long; the rest is refused, logged, and the app stays connected."""
    caplog.set_level(logging.WARNING, logger="relay.hub")
    relay = await start_relay()
    app = await relay.app()
    await pinged(app)
    await app.send("G", "X" * 65)  # too long
    for n in range(1_000):
        await app.send("G", f"group{n}")
    await app.send("G", "group0")  # already subscribed: fine
    await sync(app)
    (peer,) = [p for p in relay.handle.hub.peers() if p.client_type is ClientType.APP]
    assert list(peer.groups) == [f"group{n}" for n in range(32)]
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(refusals) <= 4  # 969 refusals: the 1st, 10th, 100th logged
    assert "max_group_name" in refusals[0].getMessage()

    # A car's data for a subscribed group still arrives.
    car = await relay.car()
    await car.send("g", "group1,some data")
    await sync(car)
    seen = await sync(app) + [m.text() for m in await app.drain()]
    assert "gDEMO,group1,some data" in seen


async def test_car_group_data_is_bounded(start_relay: StartRelay) -> None:
    """Issue 9 defect 7: a car's g is bounded in groups, name length and data size."""
    relay = await start_relay(max_groups=3, max_group_data=100)
    car = await relay.car()
    await pinged(car)
    await car.send("g", "big," + "x" * 101)
    await car.send("g", "Y" * 65 + ",data")
    for n in range(10):
        await car.send("g", f"fleet{n},data {n}")
    await car.send("g", "fleet0,newer data")  # updating a group it is in is fine
    await sync(car)
    hub = relay.handle.hub
    (peer,) = [p for p in hub.peers() if p.is_car]
    assert list(peer.groups) == ["fleet0", "fleet1", "fleet2"]
    app = await relay.app()
    await pinged(app)
    await app.send("G", "fleet0")
    await app.send("G", "fleet5")
    await app.send("G", "big")
    seen = await sync(app) + [m.text() for m in await app.drain()]
    assert [text for text in seen if text.startswith("g")] == ["gDEMO,fleet0,newer data"]


def test_hub_group_limits_unit() -> None:
    """Issue 9 defect 7: the hub's bounds, without the network."""
    hub = Hub(GroupLimits(groups=2, name=5, data=10))
    app = hub_peer(hub, "V", ClientType.APP)
    car = hub_peer(hub, "V", ClientType.CAR)
    assert hub.group_subscribe(app, "a")
    assert not hub.group_subscribe(app, "toolong")
    assert hub.group_subscribe(app, "b")
    assert not hub.group_subscribe(app, "c")
    assert hub.group_subscribe(app, "a")
    assert not hub.group_update(car, "a", "x" * 11)
    assert hub.group_update(car, "a", "x" * 10)
    assert app.group_refusals == 2 and car.group_refusals == 1
