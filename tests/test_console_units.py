"""Issue 14: the pieces under the web console, without sockets: hub watchers, login log."""

from __future__ import annotations

import trio

from protocol import Message
from relay.connlog import ConnectionLog
from relay.hub import Hub


def test_watchers_hear_the_vehicles_messages_and_never_block() -> None:
    hub = Hub()
    send, receive = trio.open_memory_channel[tuple[str, Message]](2)
    hub.watch("DEMO", send)
    hub.to_clients("DEMO", Message("S", "50"), Message("T", "0"))
    hub.to_clients("OTHER", Message("S", "1"))
    # A full watcher misses messages instead of holding up the car.
    hub.to_clients("DEMO", Message("S", "51"))
    assert [receive.receive_nowait()[1].data for _ in range(2)] == ["50", "0"]
    hub.unwatch("DEMO", send)
    hub.to_clients("DEMO", Message("S", "52"))
    assert receive.statistics().current_buffer_used == 0
    assert hub.app_count("DEMO") == 0  # a watcher is not an app


def test_connection_log_keeps_the_last_logins_server_wide() -> None:
    """Bounded by one ring, not per vehicle: idle cars cost no per-vehicle list."""
    log = ConnectionLog(per_vehicle=2, max_events=4)
    log.login("A", "car", "1.2.3.4:5", accepted=False, reason="digest does not match")
    log.login("A", "car", "1.2.3.4:6", accepted=True)
    log.login("A", "app", "1.2.3.4:7", accepted=True)
    assert [e.address for e in log.recent("A")] == ["1.2.3.4:7", "1.2.3.4:6"]
    log.login("B", "car", "x", accepted=True)
    log.login("C" * 100, "car", "x", accepted=False, reason="r" * 500)
    log.login("D", "car", "x", accepted=True)
    log.login("D", "car", "y", accepted=True)
    assert log.recent("A") == []  # the oldest logins left the ring first
    event = log.recent("C" * 32)[0]
    assert len(event.reason) == 200 and not event.accepted
