"""Cluster mode end to end: two and three ``ovms-relay serve`` processes on one
PostgreSQL database and one NATS, a car on one node and its clients on others."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from protocol import ClientType
from tests.conftest import OWNER, PASSWORD, make_db
from tests.nats_server import nats_url, own_nats, unique_prefix
from tests.pg_server import PgServer, pg_cluster, pg_server, pg_url, run_sql  # noqa: F401
from tools.v2client import LoginRefused, V2Client

WAIT = 30.0  # bound on what must happen (never a timing claim)
CREDS = {"username": OWNER, "password": PASSWORD}


@attrs.define
class RelayProcess:
    name: str
    proc: subprocess.Popen[str]
    v2_port: int
    http_port: int
    log: Path

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _start(name: str, db: str, bus: str, config: Path, log: Path) -> RelayProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(config), "--db", db,
         "--bus", bus, "--node-id", name, "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"v2 protocol on [\d.]+:(\d+), REST API on port (\d+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}: {log.read_text()}")
    return RelayProcess(name, proc, int(match.group(1)), int(match.group(2)), log)


@asynccontextmanager
async def relays(db: str, bus: str, tmp_path: Path, names: list[str], extra: str = ""
                 ) -> AsyncIterator[dict[str, RelayProcess]]:
    """Relay processes named ``names``; ``extra``: more lines for their config file."""
    config = tmp_path / "relay.toml"
    # Short beats so a killed node is noticed quickly; a prefix of this test's own.
    config.write_text(f'bus_prefix = "{unique_prefix()}"\nbus_heartbeat = 0.3\n'
                      'bus_timeout = 2.0\nbus_login_wait = 3.0\n' + extra)
    nodes: dict[str, RelayProcess] = {}
    try:
        for name in names:
            nodes[name] = await trio.to_thread.run_sync(
                _start, name, db, bus, config, tmp_path / f"{name}.log")
        # Every node has seen every other (each logs "node X joined").
        with trio.fail_after(WAIT):
            while not all(
                all(f"node {other} joined" in node.log.read_text()
                    for other in names if other != name)
                for name, node in nodes.items()
            ):
                await trio.sleep(0.05)
        yield nodes
    finally:
        for node in nodes.values():
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in nodes.values():
            await trio.to_thread.run_sync(node.proc.wait, 30)


async def car_on(node: RelayProcess) -> V2Client:
    return await V2Client.connect("127.0.0.1", node.v2_port, "DEMO",
                                  client_type=ClientType.CAR, carpass="DEMO")


async def app_on(node: RelayProcess) -> V2Client:
    return await V2Client.connect("127.0.0.1", node.v2_port, "DEMO", client_type=ClientType.APP,
                                  carpass="DEMO")


async def expect(client: V2Client, text: str) -> None:
    with trio.fail_after(WAIT):
        while (await client.receive(WAIT)).text() != text:
            pass


@pytest.fixture
def bus() -> Iterator[str]:
    with nats_url() as url:
        yield url


@pytest.fixture
def db(pg_url: str) -> str:  # noqa: F811 (the fixture imported above)
    make_db(pg_url)
    return pg_url


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
