"""``ovms-bench``'s cluster phases: two relay nodes of our own on PostgreSQL and NATS.

- ``cluster``: the closed-loop relay with the car and its app on the same node, then
  on different nodes (car on node a, app on node b): msg/s, latency, and CPU
  microseconds per relayed message (both relays together; NATS's own beside it).
- ``storm``: ``--storm-cars`` cars, half on each node, and an app on node b for
  every ``--storm-app-every``-th vehicle; node a is killed with SIGKILL and every
  one of its cars reconnects to node b at once. Measured: the time from the kill
  until each is logged in on b with the right ``Z`` (1 with an app, else 0).

The bench creates a database of its own on ``--cluster-db`` (a PostgreSQL server
where it may ``CREATE DATABASE``; dropped afterwards) and uses ``--cluster-bus``
(``own``: a ``nats-server`` it starts on a free port, so its CPU can be measured).
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from protocol import ClientType
from tools import bench_server as srv
from tools.bench_proc import Coordinator, PhaseRun, split
from tools.bench_stats import curve, rate, summarize
from tools.v2client import LoginRefused, V2Client

if TYPE_CHECKING:
    from tools.bench import Bench

PHASES = ("cluster", "storm")
NATS_PATHS = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"
CONNECT_CONCURRENCY = 64
ERRORS = (OSError, LoginRefused, trio.TooSlowError, trio.BrokenResourceError,
          trio.ClosedResourceError)


class ClusterError(Exception):
    """The bench's cluster could not be set up (one-line reason)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    c = parser.add_argument_group("cluster phases (--phases cluster,storm)")
    c.add_argument("--cluster-db", default=os.environ.get("OVMS_TEST_POSTGRES"),
                   help="PostgreSQL URL of a server where the bench may create a database "
                        "(default $OVMS_TEST_POSTGRES)")
    c.add_argument("--cluster-bus", default="own",
                   help="NATS URL, or 'own' (default): a nats-server started on a free port")
    c.add_argument("--storm-cars", type=int, default=10000,
                   help="cars in the reconnect storm, half on each node (default 10000)")
    c.add_argument("--storm-app-every", type=int, default=10,
                   help="an app on the surviving node for every N-th vehicle (default 10)")
    c.add_argument("--storm-timeout", type=float, default=300.0)
    c.add_argument("--storm-settle", type=float, default=3.0,
                   help="seconds the nodes settle (counts, first messages) before the kill "
                        "(default 3)")


# --------------------------------------------------------------------------- the cluster


@attrs.define
class Node:
    name: str
    proc: subprocess.Popen[str]
    v2_port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return srv.cpu_seconds(self.pid) or 0.0

    def stop(self) -> None:
        srv.stop_process(self.proc, 60)


@attrs.define
class Cluster:
    db: str
    bus: str
    carpass: str
    nodes: dict[str, Node]
    nats_pid: int | None  # None: a NATS the bench did not start

    def cpu(self) -> dict[str, float]:
        out = {name: node.cpu() for name, node in self.nodes.items()}
        if self.nats_pid is not None:
            out["nats"] = srv.cpu_seconds(self.nats_pid) or 0.0
        return out


def _start_node(name: str, db: str, bus: str, host: str, config: Path, log_path: Path
                ) -> Node:
    proc, port = srv.spawn_serve(
        ["--config", str(config), "--db", db, "--bus", bus, "--node-id", name, "--host", host,
         "--v2-port", "0", "--http-port", str(srv.free_port(host)), "--log-level", "WARNING"],
        log_path)
    return Node(name, proc, port, log_path)


@contextmanager
def own_nats(host: str) -> Iterator[tuple[str, int]]:
    binary = shutil.which("nats-server") or shutil.which("nats-server", path=NATS_PATHS)
    if binary is None:
        raise ClusterError("nats-server not found: install it or give --cluster-bus URL")
    port = srv.free_port(host)
    proc = subprocess.Popen([binary, "-a", host, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection((host, port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"nats-server did not start on port {port}")
            time.sleep(0.05)
        yield f"nats://{host}:{port}", proc.pid
    finally:
        proc.kill()
        proc.wait(10)


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A fresh database on the server of ``url``, dropped afterwards."""
    import psycopg

    name = f"ovms_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urllib.parse.urlsplit(url)
    try:
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def provision(db_url: str, owner: str, password: str, carpass: str, ids: list[str]) -> None:
    from relay import db
    from relay.store.vehicles import INSERT_VEHICLE

    conn = db.connect(db_url)
    try:
        db.add_owner(conn, owner, password)
        now = time.time()
        with db.transaction(conn):
            conn.executemany(INSERT_VEHICLE, [(v, owner, carpass, "CAR", now) for v in ids])
    finally:
        conn.close()


@contextmanager
def cluster(args: argparse.Namespace, vehicles: list[str], out: Path) -> Iterator[Cluster]:
    """Two nodes, ``a`` and ``b``, with ``vehicles`` provisioned; stopped afterwards."""
    if not args.cluster_db:
        raise ClusterError("--cluster-db (or $OVMS_TEST_POSTGRES) is needed: a PostgreSQL "
                           "server where the bench may create a database")
    host = args.host
    with fresh_database(args.cluster_db) as db_url, \
            cluster_bus(args.cluster_bus, host) as (bus, nats_pid):
        carpass = secrets.token_urlsafe(9)
        t0 = time.monotonic()
        provision(db_url, args.username, secrets.token_urlsafe(9), carpass, vehicles)
        print(f"{'cluster provision':<28} {len(vehicles)} vehicles in "
              f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
        config = out.with_suffix(".cluster.toml")
        config.write_text(f'api_rate_exempt = "{host}"\n'
                          f'bus_prefix = "bench{secrets.token_hex(3)}"\n')
        nodes: dict[str, Node] = {}
        try:
            for name in ("a", "b"):
                nodes[name] = _start_node(name, db_url, bus, host, config,
                                          out.with_suffix(f".node-{name}.log"))
            result = Cluster(db_url, bus, carpass, nodes, nats_pid)
            trio.run(_joined, result, host, vehicles[0])
            yield result
        finally:
            for node in nodes.values():
                node.stop()


@contextmanager
def given_bus(url: str) -> Iterator[tuple[str, None]]:
    yield url, None


def cluster_bus(spec: str, host: str) -> AbstractContextManager[tuple[str, int | None]]:
    """``--cluster-bus``: ``own`` starts a nats-server (URL and pid), else the URL given."""
    return own_nats(host) if spec == "own" else given_bus(spec)


async def _joined(c: Cluster, host: str, vehicleid: str) -> None:
    """Node b knows a's car (a car on a, an app on b that sees Z1): the nodes joined."""
    with trio.fail_after(60):
        while True:
            car = await V2Client.connect(host, c.nodes["a"].v2_port, vehicleid,
                                         client_type=ClientType.CAR, carpass=c.carpass)
            app = await V2Client.connect(host, c.nodes["b"].v2_port, vehicleid,
                                         client_type=ClientType.APP, carpass=c.carpass)
            first = await app.receive(10)
            await app.aclose()
            await car.aclose()
            if first.text() == "Z1":
                return
            await trio.sleep(0.2)


# --------------------------------------------------------------------------- relay phase


def relay_runs(bench: Bench) -> None:
    a = bench.args
    vehicles = bench.vehicles(a.pairs)
    with cluster(a, vehicles, bench.out) as c:
        results: dict[str, Any] = {}
        for label, app_node in (("local", "a"), ("cross", "b")):
            results[label] = _relay(bench, c, vehicles, app_node,
                                    f"cluster relay {label} {a.pairs} pairs")
        local, cross = results["local"], results["cross"]
        if local["cpu_us_per_message"] and cross["cpu_us_per_message"]:
            results["cross_over_local_cpu"] = round(
                cross["cpu_us_per_message"] / local["cpu_us_per_message"], 2)
            results["cross_over_local_cpu_with_nats"] = round(
                cross["cpu_us_per_message_with_nats"]
                / local["cpu_us_per_message_with_nats"], 2)
        print(f"{'cluster cross/local CPU':<28} {results.get('cross_over_local_cpu')}x relays, "
              f"{results.get('cross_over_local_cpu_with_nats')}x with NATS", file=sys.stderr)
    bench.report["phases"]["cluster"] = results


def _relay(bench: Bench, c: Cluster, vehicles: list[str], app_node: str, label: str
           ) -> dict[str, Any]:
    a = bench.args
    bench.runs += 1
    tag = f"{bench.tag}{bench.runs}"
    base = {"host": a.host, "port": c.nodes["a"].v2_port, "carpass": c.carpass,
            "app_port": c.nodes[app_node].v2_port}
    # wait_z: each car has its app's count (Z1) before the loop starts, so no pair's
    # first message goes nowhere.
    shares = [dict(base, vehicles=v, mode="closed", rate=0.0, duration=a.duration,
                   warmup=a.warmup, h_every=0, htype="", tag=tag, wait_z=True)
              for v in split(vehicles, bench.workers)]
    bar = bench.progress(label, 0, seconds=a.duration)
    spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    with PhaseRun("relay", shares, bar.update) as run:
        run.wait_stage("cars", 300)
        run.signal("apps")
        run.wait_stage("ready", 300)
        cpu0 = c.cpu()
        bar.started = time.monotonic()
        run.signal("go")
        if a.profile:
            spies = {name: _spy(node, a.duration - a.warmup,
                                bench.out.with_suffix(f".{label.split()[2]}-{name}.pyspy.txt"))
                     for name, node in c.nodes.items()}
        results = run.results(a.duration + 120)
        cpu1 = c.cpu()
    received = sum(r["received"] for r in results)
    samples = [x for r in results for x in r["samples"]]
    cpu = {k: round(cpu1[k] - cpu0[k], 3) for k in cpu0}
    relays = cpu["a"] + cpu["b"]
    out: dict[str, Any] = {
        "car_node": "a", "app_node": app_node,
        "pairs": sum(r["pairs"] for r in results),
        "failed_pairs": sum(r["failed_pairs"] for r in results),
        "messages_per_s": rate(sum(r["window_count"] for r in results),
                               a.duration - a.warmup),
        "sent": sum(r["sent"] for r in results), "received": received,
        "latency": summarize(samples),
        "cpu_seconds": cpu,
        "cpu_us_per_message": round(relays / received * 1e6, 1) if received else None,
        "cpu_us_per_message_with_nats": (round((relays + cpu.get("nats", 0.0)) / received
                                               * 1e6, 1) if received else None),
        "load_worker_cpu_percent": [r["load_cpu_percent"] for r in results],
    }
    bench.curves[label] = curve(samples)
    if spies:
        from tools.bench import summarize_profile

        for name, (spy, path) in spies.items():
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            out[f"profile_{name}"] = summarize_profile(path)
    lat = out["latency"]
    bar.finish(f"{out['messages_per_s']} msg/s, p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms; "
               f"{out['cpu_us_per_message']} µs CPU per message (relays), "
               f"{out['cpu_us_per_message_with_nats']} with NATS")
    return out


def _spy(node: Node, seconds: float, path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """py-spy (next to this python) on one node for ``seconds``, collapsed stacks."""
    exe = Path(sys.executable).with_name("py-spy")
    spy = subprocess.Popen(
        [str(exe), "record", "--pid", str(node.pid), "--duration", str(max(1, int(seconds))),
         "--format", "raw", "--output", str(path), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return spy, path


# --------------------------------------------------------------------------- storm phase


def storm(bench: Bench) -> None:
    a = bench.args
    vehicles = bench.vehicles(a.storm_cars)
    every = max(1, a.storm_app_every)
    with cluster(a, vehicles, bench.out) as c:
        port_a, port_b = c.nodes["a"].v2_port, c.nodes["b"].v2_port
        # Vehicle i: its car on a (even i) or b (odd i); an app on b for every N-th.
        plan = [(v, port_a if i % 2 == 0 else port_b, i % every == 0)
                for i, v in enumerate(vehicles)]
        shares = [{"host": a.host, "carpass": c.carpass, "survivor": port_b, "plan": part,
                   "timeout": a.storm_timeout} for part in split(plan, bench.workers)]
        bar = bench.progress(f"storm: {len(vehicles)} cars", len(vehicles) // 2)
        with PhaseRun("storm", shares, bar.update) as run:
            ready = run.wait_stage("ready", 1200)
            connected = sum(r["cars"] for r in ready)
            time.sleep(a.storm_settle)
            rss_b0 = srv.rss_kb(c.nodes["b"].pid)
            cpu0 = c.cpu()
            killed_at = time.monotonic()
            c.nodes["a"].proc.send_signal(signal.SIGKILL)
            c.nodes["a"].proc.wait(10)
            bar.started = time.monotonic()
            run.signal("go")
            results = run.results(a.storm_timeout + 120)
            cpu1 = c.cpu()
            rss_b1 = srv.rss_kb(c.nodes["b"].pid)
    back = [t - killed_at for r in results for t in r["back_at"]]
    expected = sum(r["moved"] for r in results)
    out: dict[str, Any] = {
        "cars": len(vehicles), "cars_connected": connected, "apps": sum(
            r["apps"] for r in ready), "moved": expected, "back_with_right_z": len(back),
        "missing": expected - len(back),
        "wrong_z_seen": sum(r["wrong_z"] for r in results),
        "reconnect_failures": sum(r["failures"] for r in results),
        "seconds_until_all_back": round(max(back), 3) if len(back) == expected and back
        else None,
        "back": summarize(back),
        "survivor_cpu_seconds": round(cpu1["b"] - cpu0["b"], 3),
        "survivor_rss_kb_before": rss_b0, "survivor_rss_kb_after": rss_b1,
        "logins_per_s": rate(len(back), max(back)) if back else None,
    }
    bench.report["phases"]["storm"] = out
    bar.finish(f"{out['back_with_right_z']}/{expected} back with the right Z, all after "
               f"{out['seconds_until_all_back']} s (p50 {out['back']['p50_ms']} ms), "
               f"{out['reconnect_failures']} failed attempts")


@attrs.define
class StormCar:
    vehicleid: str
    port: int
    app: bool
    client: V2Client | None = None
    back_at: float | None = None


async def storm_phase(p: dict[str, Any], coord: Coordinator) -> dict[str, Any]:
    """The worker side of ``storm``: hold the cars, reconnect a's to b when a dies."""
    host, carpass, survivor = p["host"], p["carpass"], p["survivor"]
    cars = [StormCar(v, port, app) for v, port, app in p["plan"]]
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)
    apps: list[V2Client] = []
    counts = {"failures": 0, "wrong_z": 0}

    async def connect(port: int, vehicleid: str, ctype: ClientType) -> V2Client:
        async with limiter:
            return await V2Client.connect(host, port, vehicleid, client_type=ctype,
                                          carpass=carpass, timeout=60.0)

    async def first_login(car: StormCar) -> None:
        car.client = await connect(car.port, car.vehicleid, ClientType.CAR)
        if car.app:
            apps.append(await connect(survivor, car.vehicleid, ClientType.APP))

    with trio.fail_after(1200):
        async with trio.open_nursery() as nursery:
            for car in cars:
                nursery.start_soon(first_login, car)
    coord.stage("ready", {"cars": sum(1 for c in cars if c.client), "apps": len(apps)})

    async def hold(car: StormCar) -> None:
        """Read until the node dies; then log in on the survivor until the right Z."""
        assert car.client is not None
        try:
            while True:
                await car.client.receive(math.inf)
        except ERRORS:
            pass
        if car.port == survivor:
            return  # a car of the survivor lost its connection: not part of the storm
        want = "Z1" if car.app else "Z0"
        while True:
            try:
                client = await connect(survivor, car.vehicleid, ClientType.CAR)
                while True:
                    msg = await client.receive(30.0)
                    if msg.code == "Z":
                        if msg.text() == want:
                            car.back_at = time.monotonic()
                            coord.progress(sum(1 for c in cars if c.back_at is not None))
                            car.client = client
                            return
                        counts["wrong_z"] += 1
            except ERRORS:
                counts["failures"] += 1
                await trio.sleep(0.1)

    await coord.wait("go")
    with trio.move_on_after(p["timeout"]):
        async with trio.open_nursery() as nursery:
            for car in cars:
                nursery.start_soon(hold, car)
            while not all(c.back_at is not None for c in cars if c.port != survivor):
                await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    coord.progress(sum(1 for c in cars if c.back_at is not None), force=True)
    for client in [c.client for c in cars] + apps:
        if client is not None:
            await trio.aclose_forcefully(client.stream)
    return {"moved": sum(1 for c in cars if c.port != survivor),
            "back_at": [c.back_at for c in cars if c.back_at is not None],
            "failures": counts["failures"], "wrong_z": counts["wrong_z"]}
