"""Cluster mode end to end: two and three ``ovms-relay serve`` processes on one
PostgreSQL database and one NATS, a car on one node and its clients on others."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.nats_server import own_nats
from tests.pg_server import PgServer, pg_cluster, pg_server, pg_url, run_sql  # noqa: F401
from tests.relay_processes import (
    CREDS,
    WAIT,
    app_on,
    car_on,
    db,
    expect,
    relays,
)
from tools.v2client import LoginRefused

__all__ = ["db"]  # a fixture


async def test_two_nodes_relay_z_commands_groups_and_rest(
        db: str, bus: str, tmp_path: Path) -> None:
    async with relays(db, bus, tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        car = await car_on(a)
        await expect(car, "Z0")  # after b's count: b knows the car now
        app = await app_on(b)
        await expect(app, "Z1")
        await expect(car, "Z1")

        await car.send("S", "80,K,220,13,charging")
        await expect(app, "S80,K,220,13,charging")
        await app.send("C", "7,stat")
        await expect(car, "C7,stat")
        await car.send("c", "7,0,all fine")
        await expect(app, "c7,0,all fine")

        await car.send("g", "fleet,here")
        await app.send("G", "fleet")
        await expect(app, "gDEMO,fleet,here")

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.http_port}",
                                     timeout=WAIT) as api:
            counts = (await api.get("/api/vehicle/DEMO", params=CREDS)).json()
            assert (counts["v_net_connected"], counts["v_apps_connected"]) == (1, 2)
            await expect(car, "Z2")  # the REST session counts as an app

            async def answer() -> None:
                await expect(car, "C10,x")
                await car.send("c", "10,0,done")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer)
                reply = await api.post("/api/command/DEMO",
                                       params={**CREDS, "command": "10", "parameters": "x"})
            assert reply.status_code == 200, reply.text
            assert reply.json()["result"] == 0
        await app.aclose()
        await car.aclose()


async def test_killed_app_node_corrects_z(db: str, bus: str, tmp_path: Path) -> None:
    async with relays(db, bus, tmp_path, ["a", "b", "c"]) as nodes:
        car = await car_on(nodes["a"])
        await expect(car, "Z0")
        app_b = await app_on(nodes["b"])
        await expect(car, "Z1")
        app_c = await app_on(nodes["c"])
        await expect(car, "Z2")
        await trio.to_thread.run_sync(nodes["c"].kill)
        await expect(car, "Z1")  # once c is silent for bus_timeout
        assert "node c silent" in nodes["a"].log.read_text()
        await app_b.aclose()
        await app_c.aclose()
        await car.aclose()


async def test_nats_restart_mid_stream(db: str, tmp_path: Path) -> None:
    with own_nats() as server:
        async with relays(db, server.url, tmp_path, ["a", "b"]) as nodes:
            car = await car_on(nodes["a"])
            await expect(car, "Z0")
            app = await app_on(nodes["b"])
            await expect(app, "Z1")
            # The car's node relays to b once it has b's count (the car's Z1);
            # before that instant a message reaches b's apps only as stored state.
            await expect(car, "Z1")
            await car.send("S", "1")
            await expect(app, "S1")
            await trio.to_thread.run_sync(server.stop)
            await car.send("S", "2")  # lost to b, stored all the same
            await trio.to_thread.run_sync(server.start)
            # Once both are back, the car's messages reach b again.
            got = False
            with trio.fail_after(WAIT):
                n = 3
                while not got:
                    await car.send("S", str(n))
                    with trio.move_on_after(0.5):
                        while not got:
                            got = (await app.receive(WAIT)).text() == f"S{n}"
                    n += 1
            await app.aclose()
            await car.aclose()
        for node in nodes.values():
            text = node.log.read_text()
            assert text.count("bus: lost NATS") == 1, text
            assert text.count("is back after") == 1, text




async def test_killed_car_node_keeps_every_acked_record(db: str, bus: str, tmp_path: Path
                                                        ) -> None:
    """``kill -9`` of the car's node right after acks: every ``h`` record it acknowledged
    is in PostgreSQL (acked only after the commit), and the car, reconnecting to the
    surviving node, goes on there with its app's ``Z``."""
    records = 200
    async with relays(db, bus, tmp_path, ["a", "b"]) as nodes:
        app = await app_on(nodes["b"])
        car = await car_on(nodes["a"])
        await expect(car, "Z1")
        for n in range(1, records + 1):
            await car.send("h", f"{n},0,*-LOG-Test,{n},86400,record {n}")
        acked: set[int] = set()
        with trio.fail_after(WAIT):
            while len(acked) < records // 2:
                msg = await car.receive(WAIT)
                if msg.code == "h":
                    acked.add(int(msg.data))
        await trio.to_thread.run_sync(nodes["a"].kill)
        # Acks already in the receive buffer were sent before the kill: they count too.
        with trio.move_on_after(1):
            try:
                while True:
                    msg = await car.receive()
                    if msg.code == "h":
                        acked.add(int(msg.data))
            except LoginRefused:  # the connection ended with the node
                pass
        await car.aclose()
        stored = {int(row[0]) for row in await trio.to_thread.run_sync(
            run_sql, db, "SELECT recordnumber FROM historical WHERE vehicleid = 'DEMO'")}
        assert acked, "no record was acknowledged before the kill"
        assert acked <= stored, sorted(acked - stored)[:10]
        # The survivor notices (bus_timeout), then the car reconnects there.
        await expect(app, "Z0")
        car = await car_on(nodes["b"])
        await expect(car, "Z1")
        await expect(app, "Z1")
        await car.aclose()
        await app.aclose()
