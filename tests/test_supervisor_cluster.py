"""``serve --workers 2`` on PostgreSQL and NATS: the kernel spreads connections over
both workers (SO_REUSEPORT), which relay to each other over the bus; a killed worker
is restarted and rejoins; SIGTERM drains both."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from protocol import ClientType
from tests.pg_server import PgServer, pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)
from tests.relay_processes import cluster_config, db
from tests.supervised_server import PATIENCE, Supervised, gone
from tools.v2client import V2Client

__all__ = ["db"]  # a fixture


async def worker_of(server: Supervised, client: V2Client, kind: str) -> str:
    """Which worker (w0, w1) logged ``client`` in, from its log line."""
    port = client.stream.socket.getsockname()[1]  # type: ignore[attr-defined]
    match = (await server.wait_for(
        rf"\[(w\d)\] relay\.v2: conn=\S+ vehicle=DEMO type={kind}: "
        rf"logged in from 127\.0\.0\.1:{port}\b"))[0]
    return match.group(1)


async def expect(client: V2Client, text: str) -> None:
    with trio.fail_after(PATIENCE):
        while (await client.receive(PATIENCE)).text() != text:
            pass


async def app(v2_port: int) -> V2Client:
    return await V2Client.connect("127.0.0.1", v2_port, "DEMO", client_type=ClientType.APP,
                                  carpass="DEMO")


async def test_two_workers_share_the_port_relay_across_and_survive_a_kill(
        db: str, bus: str, tmp_path: Path) -> None:
    config = cluster_config(tmp_path)
    server = Supervised("--workers", "2", "--db", db, "--bus", bus, "--config", str(config),
                        "--node-id", "n")
    clients: list[V2Client] = []
    try:
        await server.wait_for(r"worker \d \(pid \d+\) is listening", count=2)
        await server.wait_for(r"\[w0\] relay\.bus: bus: node n-w1 joined")
        await server.wait_for(r"\[w1\] relay\.bus: bus: node n-w0 joined")
        v2_port, _ = await server.ports()

        car = await V2Client.connect("127.0.0.1", v2_port, "DEMO",
                                     client_type=ClientType.CAR, carpass="DEMO")
        clients.append(car)
        car_worker = await worker_of(server, car, "car")
        await expect(car, "Z0")
        # Apps until one lands on the worker without the car (the kernel picks by a hash
        # of the connection's addresses and ports).
        apps: dict[str, list[V2Client]] = {"w0": [], "w1": []}
        while not all(apps.values()):
            client = await app(v2_port)
            clients.append(client)
            apps[await worker_of(server, client, "app")].append(client)
            await expect(car, f"Z{sum(map(len, apps.values()))}")
        other = "w1" if car_worker == "w0" else "w0"

        await car.send("S", "80,K,220,13,charging")
        for client in [*apps["w0"], *apps["w1"]]:
            await expect(client, "S80,K,220,13,charging")
        await apps[other][0].send("C", "7,stat")
        await expect(car, "C7,stat")

        # kill -9 the worker without the car: its apps are gone, the car's Z says so,
        # and the restarted worker (same node id, new run) serves again.
        pids = await server.worker_pids(2)
        index = int(other[1])
        victim = int((await server.wait_for(rf"worker {index} started \(pid (\d+)\)"))[0][1])
        assert victim in pids
        os.kill(victim, signal.SIGKILL)
        await expect(car, f"Z{len(apps[car_worker])}")
        apps[other] = []
        await server.wait_for(rf"worker {index} \(pid \d+\) exited with code -9")
        await server.wait_for(rf"worker {index} \(pid \d+\) is listening", count=2)
        while True:  # a new app, until one lands on the restarted worker
            client = await app(v2_port)
            clients.append(client)
            on = await worker_of(server, client, "app")
            apps[on].append(client)
            await expect(car, f"Z{len(apps[car_worker]) + len(apps[other])}")
            if on == other:
                break
        await car.send("S", "81,K,220,13,charging")
        await expect(client, "S81,K,220,13,charging")

        server.signal(signal.SIGTERM)
        assert await server.wait() == 0
        for pid in await server.worker_pids(3):
            await gone(pid)
    finally:
        for c in clients:
            await c.aclose()
        server.stop()
