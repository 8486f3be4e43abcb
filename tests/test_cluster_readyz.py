"""Cluster mode: ``/readyz`` counts the bus. A node cut off from NATS keeps serving its
own pairs, but a load balancer should send new cars and apps elsewhere meanwhile."""

from __future__ import annotations

import trio

from tests.conftest import StartRelay, make_db
from tests.http_helpers import assert_text, client
from tests.nats_server import own_nats, unique_prefix
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)

__all__ = ["pg_cluster", "pg_server"]  # fixtures

WAIT = 30.0  # bound on what must happen (never a timing claim)


async def test_readyz_is_503_while_the_bus_is_down(
        start_relay: StartRelay, pg_url: str) -> None:  # noqa: F811
    make_db(pg_url)
    with own_nats() as server:
        relay = await start_relay(db=pg_url, bus=server.url, node_id="a",
                                  bus_prefix=unique_prefix())
        async with client(relay) as api:

            async def readiness(status: int) -> None:
                with trio.fail_after(WAIT):
                    while (await api.get("/readyz")).status_code != status:
                        await trio.sleep(0.05)

            await readiness(200)
            assert_text(await api.get("/readyz"), 200, "ready")
            await trio.to_thread.run_sync(server.stop)
            await readiness(503)
            assert_text(await api.get("/readyz"), 503,
                        "not ready: the cluster bus (NATS) is not connected")
            assert_text(await api.get("/healthz"), 200, "ok")
            await trio.to_thread.run_sync(server.start)
            await readiness(200)
