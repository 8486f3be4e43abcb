"""Cluster mode: ``/readyz`` and the bus. A node is ready once it has joined NATS; one
that loses NATS later stays ready (it keeps serving its own connections, and NATS
down cuts off every node alike), saying so in the answer."""

from __future__ import annotations

import httpx
import trio

from tests.conftest import StartRelay, make_db
from tests.http_helpers import assert_text, client
from tests.nats_server import own_nats, unique_prefix
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)

__all__ = ["pg_cluster", "pg_server"]  # fixtures

WAIT = 30.0  # bound on what must happen (never a timing claim)
# The checks poll /readyz: this client is exempt from the per-address request quota.


async def readiness(api: httpx.AsyncClient, status: int, text: str) -> None:
    with trio.fail_after(WAIT):
        while (await api.get("/readyz")).text != text + "\n":
            await trio.sleep(0.05)
    assert_text(await api.get("/readyz"), status, text)


async def test_readyz_stays_200_and_says_so_while_the_bus_is_lost(
        start_relay: StartRelay, pg_url: str) -> None:  # noqa: F811
    make_db(pg_url)
    with own_nats() as server:
        relay = await start_relay(db=pg_url, bus=server.url, node_id="a",
                                  bus_prefix=unique_prefix(), api_rate_exempt="127.0.0.1")
        async with client(relay) as api:
            await readiness(api, 200, "ready")
            await trio.to_thread.run_sync(server.stop)
            await readiness(api, 200,
                            "ready (cluster bus lost: serving this node's connections only)")
            assert_text(await api.get("/healthz"), 200, "ok")
            await trio.to_thread.run_sync(server.start)
            await readiness(api, 200, "ready")


async def test_readyz_is_503_until_the_node_first_joins_the_bus(
        start_relay: StartRelay, pg_url: str) -> None:  # noqa: F811
    make_db(pg_url)
    with own_nats() as server:
        await trio.to_thread.run_sync(server.stop)
        relay = await start_relay(db=pg_url, bus=server.url, node_id="a",
                                  bus_prefix=unique_prefix(), api_rate_exempt="127.0.0.1")
        async with client(relay) as api:
            await readiness(api, 503, "not ready: not yet connected to the cluster bus (NATS)")
            await trio.to_thread.run_sync(server.start)
            await readiness(api, 200, "ready")
