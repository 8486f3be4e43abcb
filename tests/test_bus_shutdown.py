"""A node that stops (the server cancelled, as on SIGTERM) says bye on the bus: the
others drop it at once, not after ``bus_timeout``."""

from __future__ import annotations

import attrs
import trio

from relay.app import run_relay
from relay.bus import envelope as env
from relay.bus.bushub import BusHub
from tests.conftest import StartRelay
from tests.nats_server import bus, unique_prefix
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)

__all__ = ["bus", "pg_cluster", "pg_server"]  # fixtures

WAIT = 30.0  # bound on what must happen (never a timing claim)


async def test_a_cancelled_node_says_bye(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    prefix = unique_prefix()
    # Silence alone would take an hour to notice: only the bye ends b here in time.
    a = await start_relay(db=pg_url, bus=bus, node_id="a", bus_prefix=prefix,
                          bus_timeout=3600.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_relay, attrs.evolve(a.config, node_id="b"))
        with trio.fail_after(WAIT):
            while "b" not in a.handle.hub.alive_nodes():
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    with trio.fail_after(WAIT):
        while "b" in a.handle.hub.alive_nodes():
            await trio.sleep(0.02)


class Recorder:
    """A bus link that keeps what the hub publishes."""

    def __init__(self) -> None:
        self.sent: list[object] = []

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.sent.append(env.unpack(payload))

    def subscribe(self, subject: str) -> None:
        pass

    def unsubscribe(self, subject: str) -> None:
        pass


async def test_a_node_that_said_bye_sends_nothing_more() -> None:
    """Until its bridge stops, a stopping node still dispatches what arrives, and a beat
    due at the cancellation may still run. Anything it sent after its bye made the
    others count it alive again: here its answer to the first beat of a node it had not
    seen yet (a SyncRequest), which a's hub answers by adding b back, for bus_timeout."""
    link = Recorder()
    hub = BusHub(link, "b")
    hub.bye()
    assert link.sent == [env.Beat("b", hub.epoch, bye=True)]
    hub.on_bus_message("x", env.pack(env.Beat("a", 1)))  # a's answer to b's hello
    hub.on_bus_state(True)  # would beat at once
    assert link.sent == [env.Beat("b", hub.epoch, bye=True)]
