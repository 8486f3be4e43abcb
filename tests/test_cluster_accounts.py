"""Cluster mode: an account change made on one node (the console's operator pages, an
owner naming a vehicle) takes effect on every node. Two relays in this process on one
PostgreSQL database and one NATS."""

from __future__ import annotations

import pytest
import trio

from relay import accounts
from tests.conftest import OWNER, RelayUnderTest, StartRelay, make_db
from tests.nats_server import unique_prefix
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)
from tools.v2client import LoginRefused, V2Client

__all__ = ["pg_cluster", "pg_server"]  # fixtures

WAIT = 30.0  # bound on what must happen (never a timing claim)


async def two_nodes(start_relay: StartRelay, db: str, bus: str
                    ) -> tuple[RelayUnderTest, RelayUnderTest]:
    make_db(db)
    prefix = unique_prefix()
    a = await start_relay(db=db, bus=bus, node_id="a", bus_prefix=prefix)
    b = await start_relay(db=db, bus=bus, node_id="b", bus_prefix=prefix)
    with trio.fail_after(WAIT):
        while "b" not in a.handle.hub.alive_nodes():  # type: ignore[attr-defined]
            await trio.sleep(0.02)
    return a, b


async def closed(client: V2Client) -> None:
    """Read until the relay closes the connection."""
    with trio.fail_after(WAIT):
        try:
            while True:
                await client.receive(WAIT)
        except (LoginRefused, trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def test_deleting_a_vehicle_closes_its_car_on_another_node(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await b.car("TESTCAR")
    other = await b.car()  # another vehicle's car stays
    await accounts.delete_vehicle(a.handle.services, "TESTCAR")
    await closed(car)
    await other.send("A")
    await other.receive_until("a")
    with pytest.raises(LoginRefused):
        await b.car("TESTCAR", carpass="NETPASS")
    await other.aclose()


async def test_reset_carpass_on_one_node_refuses_the_old_one_on_another(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await b.car()
    carpass = await accounts.reset_carpass(a.handle.services, "DEMO")
    await closed(car)
    with pytest.raises(LoginRefused):  # b's cached vehicle record is gone
        await b.car(carpass="DEMO")
    again = await b.car(carpass=carpass)
    await again.aclose()


async def test_renaming_an_owner_logs_out_its_apps_on_another_node(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await b.car()
    app = await b.app()
    # The welcome comes before b registers the app (it reads the replay first); its T
    # comes after. Renamed before that, b has no app of the old owner to log out.
    await app.receive_until("T")
    await accounts.rename_owner(a.handle.services, OWNER, "renamed", a.handle.v4)
    await closed(app)
    await car.send("A")  # cars stay connected
    await car.receive_until("a")
    await car.aclose()


async def test_deleting_an_owner_closes_its_cars_on_another_node(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await b.car("OTHERCAR", carpass="OTHERPASS")
    await accounts.delete_owner(a.handle.services, "other")
    await closed(car)
