"""Cluster mode: an app logging in on any node is replayed what the database holds,
not what that node happened to cache before the car sent more. Two relays in this
process on one PostgreSQL database and one NATS."""

from __future__ import annotations

from protocol import Message
from tests.conftest import StartRelay
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)
from tests.test_cluster_accounts import two_nodes
from tools.v2client import V2Client

__all__ = ["pg_cluster", "pg_server"]  # fixtures


def replay(messages: list[Message]) -> dict[str, str]:
    """A login replay's stored messages by code (Z and T left out)."""
    return {m.code: m.data for m in messages if m.code not in "ZT"}


async def login_replay(app: V2Client) -> dict[str, str]:
    return replay(await app.receive_until("T"))


async def test_app_on_another_node_gets_what_the_car_sent_after_that_node_cached(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await a.car()
    await car.send("D", "first")
    await car.send("A")  # answered once D is stored (the car's messages in order)
    await car.receive_until("a")
    await a.handle.store.flush()
    first = await b.app()
    assert (await login_replay(first)).get("D") == "first"  # b has read the vehicle
    await first.aclose()
    await car.send("S", "80,K,0,0,stopped")
    await car.send("D", "second")
    await car.send("A")
    await car.receive_until("a")
    await a.handle.store.flush()
    second = await b.app()
    got = await login_replay(second)
    assert got.get("S") == "80,K,0,0,stopped"
    assert got.get("D") == "second"
    await second.aclose()
    await car.aclose()


async def test_car_back_on_a_node_after_sending_elsewhere_replays_the_newer_messages(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await b.car()
    await car.send("D", "on b")
    await car.send("A")
    await car.receive_until("a")
    await car.aclose()
    await b.handle.store.flush()
    car = await a.car()
    await car.send("D", "on a")
    await car.send("A")
    await car.receive_until("a")
    await car.aclose()
    await a.handle.store.flush()
    car = await b.car()  # back where it had been cached
    app = await b.app()
    assert (await login_replay(app)).get("D") == "on a"
    await app.aclose()
    await car.aclose()
