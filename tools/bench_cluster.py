"""Cluster benchmarks (issue 12): ``python -m tools.bench_cluster --db postgresql://... --bus nats://...``.

Side by side in one run, each setup with servers of its own started here:

- ``sqlite``: one process on an SQLite file (the default server);
- ``postgres``: one process on the PostgreSQL database;
- ``local`` / ``cross``: two nodes on PostgreSQL and the bus, each on ports of its
  own; the car and its app on the same node, then on different nodes (the goal:
  a relay across nodes costs at most 1.3x a local one);
- ``workers``: ``serve --workers 2`` on PostgreSQL and the bus, car and app on the
  shared port wherever the kernel puts them (about half the pairs cross workers);
- ``storm``: ``--storm-cars`` cars on node b, some with an app on node a; node b is
  killed with SIGKILL and every car reconnects to a: the time until every car is
  back with the correct ``Z`` (some cars have an app on a), and the logins per
  second that took.

Relay runs are ``ovms-bench``'s closed loop (tools/bench_load.py): msg/s, latency
percentiles, and the servers' CPU (all their processes) per relayed message.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from protocol import ClientType
from relay import db
from relay.store.engines import redact
from tools import bench_server as srv
from tools.bench import Bench, build_parser
from tools.bench_proc import raise_nofile_limit
from tools.bench_stats import rate, summarize
from tools.v2client import LoginRefused, V2Client

PROG = "ovms-bench-cluster"
OWNER = "bench"
START_TIMEOUT = 60.0
STORM_TIMEOUT = 300.0


class ClusterBenchError(Exception):
    """The cluster bench cannot go on (one-line reason)."""


@attrs.define
class Node:
    """A relay the cluster bench started (``serve``, or ``serve --workers N``)."""

    name: str
    proc: subprocess.Popen[str]
    v2_port: int
    http_port: int
    log_path: Path

    def pids(self) -> list[int]:
        """The process and its workers (children)."""
        pids = [self.proc.pid]
        # Listed per thread: the supervisor starts its workers from a trio worker thread.
        for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            try:
                pids += [int(x) for x in children.read_text().split()]
            except OSError:
                continue
        return pids

    def cpu(self) -> float:
        return sum(srv.cpu_seconds(pid) or 0.0 for pid in self.pids())

    def rss(self) -> int:
        return sum(srv.rss_kb(pid) or 0 for pid in self.pids())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def start_node(name: str, serve_args: list[str], log_path: Path, listening: int = 1) -> Node:
    """``ovms-relay serve`` on free ports; returns once ``listening`` processes listen."""
    log_file = open(log_path, "w")  # the child keeps its own copy of the descriptor
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0", "--log-level", "INFO", *serve_args],
        stdout=subprocess.PIPE, stderr=log_file, text=True)
    log_file.close()
    assert proc.stdout is not None
    match = None
    for _ in range(listening):
        line = proc.stdout.readline()
        match = re.search(r"v2 protocol on [^\s]+:(\d+), REST API on port (\d+)", line)
        if not match:
            proc.kill()
            proc.wait(10)
            raise ClusterBenchError(f"node {name} did not start (see {log_path})")
    assert match is not None
    return Node(name, proc, int(match.group(1)), int(match.group(2)), log_path)


def wait_for_log(node: Node, pattern: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not re.search(pattern, node.log_path.read_text()):
        if time.monotonic() > deadline or node.proc.poll() is not None:
            raise ClusterBenchError(f"{node.name}: no {pattern!r} in {node.log_path}")
        time.sleep(0.05)


def provision(target: str, password: str, carpass: str, vehicleids: list[str]) -> int:
    """The bench owner and vehicles in a database (file or URL); returns how many added."""
    if not target.startswith("postgres"):
        return srv.provision(target, OWNER, password, carpass, vehicleids)
    conn = db.connect(target)
    try:
        if db.get_owner(conn, OWNER) is None:
            db.add_owner(conn, OWNER, password)
        have = {v["vehicleid"] for v in db.list_vehicles(conn, OWNER)}
        missing = [v for v in vehicleids if v not in have]
        for vid in missing:
            db.add_vehicle(conn, vid, OWNER, carpass)
        for vid in have.intersection(vehicleids):  # from an earlier run: its carpass
            db.set_carpass(conn, vid, carpass)
    finally:
        conn.close()
    return len(missing)


class NodesBench(Bench):
    """``ovms-bench``'s relay phase against nodes started here: the apps may be on
    another node's port, and CPU and memory are those of every node of the setup."""

    def __init__(self, args: argparse.Namespace, nodes: list[Node],
                 app_port: int | None = None, wait_z: bool = False) -> None:
        super().__init__(args, None)
        self.nodes = nodes
        self.app_port = app_port
        self.wait_z = wait_z

    def base(self) -> dict[str, Any]:
        out = super().base()
        out.update(app_port=self.app_port, wait_z=self.wait_z)
        return out

    def cpu(self) -> float | None:
        return sum(node.cpu() for node in self.nodes)

    def rss(self) -> int | None:
        return sum(node.rss() for node in self.nodes)


def relay_run(args: argparse.Namespace, label: str, nodes: list[Node], car_port: int,
              app_port: int | None = None, wait_z: bool = False) -> dict[str, Any]:
    bench_args = build_parser().parse_args([
        "--carpass", args.carpass, "--pairs", str(args.pairs), "--duration",
        str(args.duration), "--workers", str(args.load_workers), "--phases", "relay",
        "--port", str(car_port), "--no-progress"])
    bench = NodesBench(bench_args, nodes, app_port, wait_z)
    out = bench.relay(label, args.pairs, "closed")
    if not out["pairs_ready"] or out["failed_pairs"]:
        raise ClusterBenchError(f"{label}: {out['pairs_ready']} pairs ready, "
                                f"{out['failed_pairs']} failed (see the node logs)")
    cpu = out["server_cpu_percent"]
    out["server_cpu_us_per_msg"] = (round(cpu * 1e4 / out["messages_per_s"], 1)
                                   if cpu and out["messages_per_s"] else None)
    return out


# --------------------------------------------------------------------------- storm


async def _storm(args: argparse.Namespace, a: Node, b: Node, vehicles: list[str]
                 ) -> dict[str, Any]:
    """Cars on b, an app on a for every ``storm_app_every``-th car; b is killed; every car
    logs in on a again and waits for its correct ``Z`` (Z1 with an app, else Z0)."""
    with_app = set(vehicles[::args.storm_app_every])
    limiter = trio.CapacityLimiter(200)
    apps: list[V2Client] = []
    cars: dict[str, V2Client] = {}

    async def connect(port: int, vid: str, kind: ClientType) -> V2Client:
        async with limiter:
            return await V2Client.connect("127.0.0.1", port, vid, client_type=kind,
                                          carpass=args.carpass, timeout=60.0)

    async def car_on_b(vid: str) -> None:
        cars[vid] = await connect(b.v2_port, vid, ClientType.CAR)

    async def app_on_a(vid: str) -> None:
        apps.append(await connect(a.v2_port, vid, ClientType.APP))

    async def expect_z(vid: str, client: V2Client) -> None:
        want = "Z1" if vid in with_app else "Z0"
        while (await client.receive(STORM_TIMEOUT)).text() != want:
            pass

    async with trio.open_nursery() as nursery:
        for vid in vehicles:
            nursery.start_soon(car_on_b, vid)
    async with trio.open_nursery() as nursery:
        for vid in with_app:
            nursery.start_soon(app_on_a, vid)
    async with trio.open_nursery() as nursery:
        for vid, car in cars.items():
            nursery.start_soon(expect_z, vid, car)

    back: list[float] = []
    failures = 0

    async def reconnect(vid: str, t_kill: float) -> None:
        nonlocal failures
        # The car notices its connection closed, then logs in on the survivor.
        try:
            while True:
                await cars[vid].receive(STORM_TIMEOUT)
        except (LoginRefused, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        while True:
            try:
                client = await connect(a.v2_port, vid, ClientType.CAR)
                break
            except (LoginRefused, OSError, trio.TooSlowError):
                failures += 1
                await trio.sleep(0.1)
        await expect_z(vid, client)
        back.append(time.perf_counter() - t_kill)
        cars[vid] = client

    t_kill = time.perf_counter()
    with trio.fail_after(STORM_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for vid in vehicles:
                nursery.start_soon(reconnect, vid, t_kill)
            await trio.to_thread.run_sync(b.kill)
    total = max(back)
    for client in [*apps, *cars.values()]:
        await trio.aclose_forcefully(client.stream)
    return {"cars": len(vehicles), "apps": len(with_app), "all_back_with_z_s": round(total, 3),
            "logins_per_s": rate(len(back), total), "retries": failures,
            "time_to_z": summarize(back)}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, help="PostgreSQL URL of an empty or bench database")
    p.add_argument("--bus", required=True, help="NATS URL, e.g. nats://127.0.0.1:4222")
    p.add_argument("--setups", default="sqlite,postgres,local,cross,workers,storm",
                   help="comma-separated subset (default: all)")
    p.add_argument("--pairs", type=int, default=200, help="car+app pairs per relay run")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per relay run")
    p.add_argument("--load-workers", type=int, default=2, help="load processes")
    p.add_argument("--storm-cars", type=int, default=2000)
    p.add_argument("--storm-app-every", type=int, default=10,
                   help="an app (on the surviving node) for every N-th storm car")
    p.add_argument("--out", default="bench-cluster.json")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    out_dir = Path(args.out).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(args.out).stem
    raise_nofile_limit()
    args.carpass = secrets.token_urlsafe(9)
    password = secrets.token_urlsafe(9)
    vehicles = [f"BENCH{i:05d}" for i in range(max(args.pairs, args.storm_cars))]
    sqlite_path = str(out_dir / f"{stem}.db")
    # A password in the database URL stays out of the report.
    command = [redact(x) for x in (argv or sys.argv[1:])]
    report: dict[str, Any] = {"tool": PROG, "command": [PROG, *command], "cpus": os.cpu_count(),
                              "settings": vars(args) | {"carpass": "-", "db": redact(args.db)},
                              "results": {}}
    prefix = f"bench{secrets.token_hex(3)}"
    cluster = ["--db", args.db, "--bus", args.bus]
    config = out_dir / f"{stem}.toml"
    config.write_text(f'bus_prefix = "{prefix}"\napi_rate_exempt = "127.0.0.1"\n'
                      "login_fail_max = 0\nlogin_account_fail_max = 0\n")
    common = ["--config", str(config)]

    def log_to(name: str) -> Path:
        return out_dir / f"{stem}.{name}.log"

    def note(label: str, result: dict[str, Any]) -> None:
        report["results"][label] = result
        print(f"{label:<10} {json.dumps({k: v for k, v in result.items() if k != 'profile'})}",
              file=sys.stderr, flush=True)

    try:
        if "sqlite" in setups:
            provision(sqlite_path, password, args.carpass, vehicles[:args.pairs])
        provision(args.db, password, args.carpass, vehicles)
        for setup in setups:
            nodes: list[Node] = []
            try:
                if setup in ("sqlite", "postgres"):
                    target = sqlite_path if setup == "sqlite" else args.db
                    nodes.append(start_node(setup, ["--db", target, *common], log_to(setup)))
                    note(setup, relay_run(args, setup, nodes, nodes[0].v2_port))
                elif setup in ("local", "cross", "storm"):
                    for name in ("a", "b"):
                        nodes.append(start_node(name, [*cluster, *common, "--node-id", name],
                                                log_to(f"{setup}-{name}")))
                    wait_for_log(nodes[0], r"node b joined")
                    wait_for_log(nodes[1], r"node a joined")
                    a, b = nodes
                    if setup == "storm":
                        note(setup, trio.run(_storm, args, a, b, vehicles[:args.storm_cars]))
                    else:
                        app_port = a.v2_port if setup == "local" else b.v2_port
                        note(setup, relay_run(args, setup, nodes, a.v2_port, app_port,
                                              wait_z=True))
                elif setup == "workers":
                    nodes.append(start_node(setup, [*cluster, *common, "--workers", "2",
                                                    "--node-id", "w"], log_to(setup),
                                            listening=2))
                    wait_for_log(nodes[0], r"\[w0\] relay\.bus: bus: node w-w1 joined")
                    note(setup, relay_run(args, setup, nodes, nodes[0].v2_port, wait_z=True))
                else:
                    raise ClusterBenchError(f"unknown setup {setup!r}")
            finally:
                for node in nodes:
                    node.stop()
        local, cross = report["results"].get("local"), report["results"].get("cross")
        if local and cross and local["server_cpu_us_per_msg"]:
            report["cross_over_local_cpu"] = round(
                cross["server_cpu_us_per_msg"] / local["server_cpu_us_per_msg"], 2)
            print(f"cross-node CPU per message / local: {report['cross_over_local_cpu']}",
                  file=sys.stderr)
    except ClusterBenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        Path(args.out).write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
