"""``ovms-bench --phases workers``: one relay process on SQLite, one on PostgreSQL, and
``serve --workers 2`` on PostgreSQL and NATS, side by side (issue 12, "Benchmarks").

Each setup is a server of its own, started here and stopped after its run: the
closed-loop relay with ``--pairs`` car+app pairs on its v2 port (under
``--workers 2`` the kernel spreads the connections over both workers, so about
half the pairs cross workers over the bus; each car waits for its app's ``Z1``
before the loop starts). Reported per setup: msg/s, latency, and the CPU of all
the server's processes per relayed message. The database and NATS come from the
cluster phases' options (``--cluster-db``, ``--cluster-bus``; tools/bench_bus.py);
the cross-node relay on its own and the reconnect storm are that module's phases.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tools import bench_bus
from tools import bench_server as srv
from tools.bench_proc import PhaseRun, split
from tools.bench_stats import curve, rate, summarize

if TYPE_CHECKING:
    from tools.bench import Bench

PHASES = ("workers",)
START_TIMEOUT = 120.0


@attrs.define
class Server:
    """A relay process the phase started, with its workers if it has any."""

    proc: subprocess.Popen[str]
    v2_port: int
    log_path: Path

    def pids(self) -> list[int]:
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
        srv.stop_process(self.proc, 60)


def start_server(serve_args: list[str], host: str, log_path: Path, listening: int = 1,
                 joined: str | None = None) -> Server:
    """``serve`` on free ports; returns once ``listening`` processes listen (and the log
    shows ``joined``, a regular expression, if given)."""
    proc, port = srv.spawn_serve(
        ["--host", host, "--v2-port", "0", "--http-port", "0", "--log-level", "INFO",
         *serve_args], log_path, listening)
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while joined and not re.search(joined, log_path.read_text()):
        if time.monotonic() > deadline or proc.poll() is not None:
            server.stop()
            raise bench_bus.ClusterError(f"no {joined!r} in {log_path}")
        time.sleep(0.05)
    return server


def _relay(bench: Bench, server: Server, carpass: str, label: str) -> dict[str, Any]:
    """``ovms-bench``'s closed loop against ``server``, its CPU summed over its processes."""
    a = bench.args
    bench.runs += 1
    base = {"host": a.host, "port": server.v2_port, "carpass": carpass}
    shares = [dict(base, vehicles=v, mode="closed", rate=0.0, duration=a.duration,
                   warmup=a.warmup, h_every=0, htype="", tag=f"{bench.tag}{bench.runs}",
                   wait_z=True)
              for v in split(bench.vehicles(a.pairs), bench.workers)]
    bar = bench.progress(label, 0, seconds=a.duration)
    with PhaseRun("relay", shares, bar.update) as run:
        run.wait_stage("cars", 300)
        run.signal("apps")
        run.wait_stage("ready", 300)
        rss = server.rss()
        cpu0 = server.cpu()
        bar.started = time.monotonic()
        run.signal("go")
        results = run.results(a.duration + 120)
        cpu = server.cpu() - cpu0
    received = sum(r["received"] for r in results)
    samples = [x for r in results for x in r["samples"]]
    out: dict[str, Any] = {
        "processes": len(server.pids()),
        "pairs": sum(r["pairs"] for r in results),
        "failed_pairs": sum(r["failed_pairs"] for r in results),
        "messages_per_s": rate(sum(r["window_count"] for r in results), a.duration - a.warmup),
        "sent": sum(r["sent"] for r in results), "received": received,
        "lost": sum(r["sent"] for r in results) - received,
        "latency": summarize(samples),
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_message": round(cpu / received * 1e6, 1) if received else None,
        "server_rss_kb": rss,
        "load_worker_cpu_percent": [r["load_cpu_percent"] for r in results],
    }
    bench.curves[label] = curve(samples)
    lat = out["latency"]
    bar.finish(f"{out['messages_per_s']} msg/s, p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
               f"lost {out['lost']}; {out['cpu_us_per_message']} µs CPU per message")
    return out


def workers_phase(bench: Bench) -> None:
    a = bench.args
    if not a.cluster_db:
        raise bench_bus.ClusterError("--cluster-db (or $OVMS_TEST_POSTGRES) is needed: a "
                                     "PostgreSQL server where the bench may create a database")
    vehicles = bench.vehicles(a.pairs)
    carpass, password = secrets.token_urlsafe(9), secrets.token_urlsafe(9)
    sqlite_path = bench.out.with_suffix(".workers.db")
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    config = bench.out.with_suffix(".workers.toml")
    config.write_text(f'api_rate_exempt = "{a.host}"\n'
                      f'bus_prefix = "bench{secrets.token_hex(3)}"\n')
    results: dict[str, Any] = {}
    with bench_bus.fresh_database(a.cluster_db) as db_url, \
            bench_bus.cluster_bus(a.cluster_bus, a.host) as (bus, _):
        srv.provision(str(sqlite_path), a.username, password, carpass, vehicles)
        bench_bus.provision(db_url, a.username, password, carpass, vehicles)
        setups: list[tuple[str, list[str], int, str | None]] = [
            ("sqlite", ["--db", str(sqlite_path)], 1, None),
            ("postgres", ["--db", db_url], 1, None),
            ("workers", ["--db", db_url, "--bus", bus, "--workers", "2", "--node-id", "w"], 2,
             r"\[w0\] relay\.bus: bus: node w-w1 joined"),
        ]
        for label, serve_args, listening, joined in setups:
            server = start_server(["--config", str(config), *serve_args], a.host,
                                  bench.out.with_suffix(f".workers-{label}.log"),
                                  listening, joined)
            try:
                results[label] = _relay(bench, server, carpass,
                                        f"workers: {label} {a.pairs} pairs")
            finally:
                server.stop()
    bench.report["phases"]["workers"] = results
