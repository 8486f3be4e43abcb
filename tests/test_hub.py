"""The hub on its own: delivery to a stalled peer, peer counts, command queue."""

from __future__ import annotations

import trio

from protocol import ClientType, Message
from relay.hub import Hub, Peer
from tests.hub_helpers import memory_peer, texts


def make_peer(hub: Hub, conn_id: str, client_type: ClientType, size: int = 4
              ) -> tuple[Peer, trio.MemoryReceiveChannel[Message]]:
    return memory_peer(hub, client_type, conn_id=conn_id, size=size, register=False)


drain = texts


def test_stalled_app_is_disconnected_without_slowing_others() -> None:
    hub = Hub()
    car, car_rx = make_peer(hub, "car", ClientType.CAR)
    slow, _slow_rx = make_peer(hub, "slow", ClientType.APP, size=3)
    fast, fast_rx = make_peer(hub, "fast", ClientType.APP, size=100)
    for p in (car, slow, fast):
        hub.register(p)
    for i in range(10):
        hub.to_clients("V", Message("S", str(i)))
        drain(car_rx)
    assert slow.close_reason == "outbound queue full"
    assert slow.cancel_scope.cancel_called
    assert fast.close_reason is None
    assert drain(fast_rx) == ["Z1"] + [f"S{i}" for i in range(10)]


def test_api_sessions_count_as_apps() -> None:
    hub = Hub()
    car, car_rx = make_peer(hub, "car", ClientType.CAR)
    hub.register(car)
    assert hub.add_api_session("V", "session-1") is True
    assert hub.add_api_session("V", "session-2") is False
    assert hub.app_count("V") == 2
    hub.remove_api_session("V", "session-1")
    assert drain(car_rx) == ["Z0", "Z1", "Z2", "Z1"]


def test_car_disconnect_forgets_waiting_commands() -> None:
    hub = Hub()
    car, _ = make_peer(hub, "car", ClientType.CAR)
    app, app_rx = make_peer(hub, "app", ClientType.APP)
    hub.register(car)
    hub.register(app)
    assert hub.send_command(app, 20, Message("C", "20,1"))
    hub.unregister(car)
    car2, _ = make_peer(hub, "car2", ClientType.CAR)
    hub.register(car2)
    drain(app_rx)
    hub.command_response("V", Message("c", "5,0"))  # unsolicited now: goes to everyone
    assert drain(app_rx) == ["c5,0"]


def test_a_car_alone_holds_no_empty_containers() -> None:
    """Issue 11: a vehicle's app, batch, REST-session and command-waiting containers
    exist only while they hold something (most of the thousands of cars have none)."""
    hub = Hub()
    car, car_rx = make_peer(hub, "car", ClientType.CAR, size=100)
    app, app_rx = make_peer(hub, "app", ClientType.APP, size=100)
    batch, _batch_rx = make_peer(hub, "batch", ClientType.BATCH)
    hub.register(car)
    links = hub._vehicles["V"]
    assert (links.apps, links.batch, links.api_sessions, links.waiting, car.groups) == (
        None, None, None, None, None)
    hub.register(app)
    hub.register(batch)
    hub.add_api_session("V", "session-1")
    assert hub.send_command(app, 20, Message("C", "20,1"))
    assert hub.group_update(car, "fleet", "data")
    assert (hub.app_count("V"), hub.batch_count("V")) == (2, 1)
    hub.command_response("V", Message("c", "20,0"))
    drain(app_rx)
    hub.unregister(app)
    hub.unregister(batch)
    hub.remove_api_session("V", "session-1")
    assert (links.apps, links.batch, links.api_sessions, links.waiting) == (
        None, None, None, None)
    assert (hub.app_count("V"), hub.batch_count("V")) == (0, 0)
    assert drain(car_rx)[-1] == "Z0"
