"""``ovms-bench``: load generator and report for an OVMS v2 server (ours or another).

Phases (``--phases``, default all, in this order):

- ``login``: ``--logins`` car logins, ``--login-concurrency`` in flight;
- ``relay``: ``--pairs`` cars each watched by one app; closed loop (one message in
  flight per car) for throughput, then open loop at each of ``--open-rates``;
- ``rest``: ``GET /api/status/<id>`` with each of ``--rest-clients`` concurrent clients,
  kept-alive and a new connection per request (skipped if the server has no REST API);
- ``scale``: ``--idle`` idle cars held open; the server's RSS per connection, then the
  closed-loop relay again with the idle cars present;
- ``durability``: every ``--h-every``-th relay message is followed by an ``h`` record;
  every acknowledged record must be in the store afterwards;
- ``v3``: ``--v3-modules`` OVMS v3 vehicles publish metrics through the ``--mqtt``
  broker, each watched by a v2 app: metrics ingested per second and metric-to-app
  latency (``tools/bench_v3.py``; skipped without ``--mqtt``).

Cluster phases, only when named (they start two nodes of their own on PostgreSQL and
NATS; ``tools.bench_bus``): ``cluster`` (relay with car and app on the same node vs
on different nodes) and ``storm`` (a node killed, its cars back on the other); and
``workers`` (``tools.bench_cluster``: one process on SQLite, one on PostgreSQL and
``serve --workers 2`` on the bus, side by side).

Writes ``--out`` (JSON) and a PNG latency chart next to it. Exit status: 0 done,
1 error (server unreachable, worker failure), 2 usage error, 3 acknowledged
records missing from the store.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import logging
import os
import platform
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import trio

from tools import bench_bus, bench_cluster
from tools import bench_server as srv
from tools.bench_http import HTTPError, get_once
from tools.bench_proc import PhaseRun, WorkerError, raise_nofile_limit, split, split_count
from tools.bench_report import Progress, write_chart, write_json
from tools.bench_stats import curve, rate, summarize

PROG = "ovms-bench"
PHASE_NAMES = ("login", "relay", "rest", "scale", "durability", "v3")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_LOST = 0, 1, 2, 3
# Server file descriptors besides client sockets: listeners, SQLite (db, WAL, shm), stdio.
FD_RESERVE = 64
log = logging.getLogger("ovms.bench")


class BenchError(Exception):
    """The bench cannot go on (one-line reason)."""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _csv_numbers(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers, comma-separated: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Benchmark an OVMS v2 server.")
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=6867, help="v2 port (default 6867)")
    s.add_argument("--http-port", type=int, default=6868, help="REST port (default 6868)")
    s.add_argument("--carpass", help="carpass of every bench vehicle")
    s.add_argument("--vehicle-prefix", default="BENCH",
                   help="bench vehicles are PREFIX00000, PREFIX00001, ... (default BENCH)")
    s.add_argument("--username", default="bench", help="owner of the bench vehicles (REST)")
    s.add_argument("--password", help="that owner's password or API token (REST)")
    s.add_argument("--server-pid", type=int, help="server process, for its RSS and CPU")
    s.add_argument("--db", help="the server's SQLite file (durability check; with "
                                "--start-server, the file to create or reuse)")
    s.add_argument("--start-server", action="store_true",
                   help="provision vehicles (ovms-admin) and start our own ovms-relay")
    w = p.add_argument_group("load")
    w.add_argument("--phases", default=",".join(PHASE_NAMES),
                   help=f"comma-separated subset of {','.join(PHASE_NAMES)}")
    w.add_argument("--workers", type=int, default=2, help="load processes (default 2)")
    w.add_argument("--logins", type=int, default=5000)
    w.add_argument("--login-concurrency", type=int, default=50)
    w.add_argument("--pairs", type=int, default=500, help="car+app pairs (default 500)")
    w.add_argument("--duration", type=float, default=10.0, help="seconds per relay run")
    w.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    w.add_argument("--open-rates", type=_csv_numbers, default=[200, 2000],
                   help="open-loop total rates, msg/s (default 200,2000)")
    w.add_argument("--h-every", type=int, default=10,
                   help="durability: an h record after every N-th relay message")
    w.add_argument("--rest-clients", type=_csv_numbers, default=[2, 20])
    w.add_argument("--rest-duration", type=float, default=5.0)
    w.add_argument("--idle", type=int, default=19000, help="idle cars for the scale phase")
    w.add_argument("--idle-full-set", action=argparse.BooleanOptionalAction, default=True,
                   help="idle cars send their full set after login, as modules do (default); "
                        "without it RSS shows the bare connection cost")
    w.add_argument("--mqtt", metavar="URL",
                   help="v3 phase: the broker (mqtt://USER:PW@HOST:PORT, a superuser); "
                        "with --start-server the relay gets it too")
    w.add_argument("--mqtt-prefix", default="ovms", help="v3 phase: topic prefix")
    w.add_argument("--v3-modules", type=int, default=100,
                   help="v3 phase: vehicles publishing through the broker (default 100)")
    bench_bus.add_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", default="bench-results.json", help="JSON report (PNG beside it)")
    o.add_argument("--profile", action="store_true",
                   help="py-spy the server during the closed-loop relay run")
    o.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")
    o.add_argument("--log-level", default="WARNING")
    return p


class Bench:
    def __init__(self, args: argparse.Namespace, server_pid: int | None) -> None:
        self.args = args
        self.pid = server_pid
        self.phases = {x.strip() for x in args.phases.split(",") if x.strip()}
        self.out = Path(args.out)
        self.tag = secrets.token_hex(3)
        self.runs = 0
        self.curves: dict[str, list[tuple[float, float]]] = {}
        self.durability: list[dict[str, Any]] = []
        self.report: dict[str, Any] = {"phases": {}, "skipped": {}}

    # --- helpers -----------------------------------------------------------------------

    @property
    def workers(self) -> int:
        return max(1, int(self.args.workers))

    def vehicles(self, count: int, first: int = 0) -> list[str]:
        return srv.bench_vehicle_ids(self.args.vehicle_prefix, count, first)

    def base(self) -> dict[str, Any]:
        return {"host": self.args.host, "port": self.args.port, "carpass": self.args.carpass}

    def progress(self, label: str, total: int, seconds: float | None = None) -> Progress:
        return Progress(label, total, seconds=seconds, enabled=self.args.progress)

    def rss(self) -> int | None:
        return srv.rss_kb(self.pid) if self.pid else None

    def cpu(self) -> float | None:
        return srv.cpu_seconds(self.pid) if self.pid else None

    def skip(self, phase: str, why: str) -> None:
        self.report["skipped"][phase] = why
        print(f"{phase:<28} skipped: {why}", file=sys.stderr)

    # --- phases --------------------------------------------------------------------------

    def login(self) -> None:
        a = self.args
        pool = self.vehicles(max(a.login_concurrency, min(a.pairs, 1000)))
        shares = [dict(self.base(), vehicles=v, count=c, concurrency=k)
                  for v, c, k in zip(split(pool, self.workers),
                                     split_count(a.logins, self.workers),
                                     split_count(a.login_concurrency, self.workers), strict=True)]
        bar = self.progress("login", a.logins)
        with PhaseRun("login", shares, bar.update) as run:
            run.wait_stage("ready", 60)
            cpu0 = self.cpu()
            run.signal("go")
            results = run.results(600)
            cpu1 = self.cpu()
        latencies = [x for r in results for x in r["latencies"]]
        errors = sum(r["errors"] for r in results)
        if errors and not latencies:
            raise BenchError(f"every login failed ({errors} attempts): check the server, "
                             "--username/--carpass and the vehicle ids")
        elapsed = max(r["elapsed"] for r in results)
        out = {"logins": len(latencies), "errors": sum(r["errors"] for r in results),
               "concurrency": a.login_concurrency, "seconds": round(elapsed, 3),
               "logins_per_s": rate(len(latencies), elapsed), "latency": summarize(latencies),
               # The server's CPU time per login: steadier than logins/s on a busy machine.
               "server_cpu_ms_per_login": per_op(cpu0, cpu1, len(latencies), 1e3)}
        self.report["phases"]["login"] = out
        self.curves["login"] = curve(latencies)
        bar.finish(f"{out['logins_per_s']} logins/s, p50 {out['latency']['p50_ms']} ms, "
                   f"p99 {out['latency']['p99_ms']} ms, {out['errors']} errors")

    def relay(self, label: str, pairs: int, mode: str, total_rate: float = 0.0,
              profile: bool = False) -> dict[str, Any]:
        a = self.args
        self.runs += 1
        tag = f"{self.tag}{self.runs}"
        htype = f"*-BENCH-{tag}"
        h_every = a.h_every if "durability" in self.phases else 0
        vehicles = self.vehicles(pairs)
        shares = [dict(self.base(), vehicles=v, mode=mode,
                       rate=total_rate * len(v) / max(1, pairs), duration=a.duration,
                       warmup=a.warmup, h_every=h_every, htype=htype, tag=tag)
                  for v in split(vehicles, self.workers)]
        bar = self.progress(label, 0, seconds=a.duration)
        spy: subprocess.Popen[bytes] | None = None
        with PhaseRun("relay", shares, bar.update) as run:
            cars = run.wait_stage("cars", 300)
            rss_cars = self.rss()
            run.signal("apps")
            ready = run.wait_stage("ready", 300)
            rss_pairs = self.rss()
            cpu0 = self.cpu()
            bar.started = time.monotonic()
            run.signal("go")
            if profile and self.pid:
                spy = self.start_profiler(a.duration - a.warmup)
            results = run.results(a.duration + 120)
            cpu1 = self.cpu()
        samples = [x for r in results for x in r["samples"]]
        window = a.duration - a.warmup
        sent = sum(r["sent"] for r in results)
        received = sum(r["received"] for r in results)
        out: dict[str, Any] = {
            "mode": mode,
            "pairs": sum(r["pairs"] for r in results),
            "cars_connected": sum(c["connected"] for c in cars),
            "pairs_ready": sum(r["pairs"] for r in ready),
            "failed_pairs": sum(r["failed_pairs"] for r in results),
            "target_rate": total_rate or None,
            "messages_per_s": rate(sum(r["window_count"] for r in results), window),
            "sent": sent, "received": received, "lost": sent - received,
            "latency": summarize(samples),
            "server_rss_kb_cars": rss_cars, "server_rss_kb_cars_apps": rss_pairs,
            "server_cpu_percent": (round((cpu1 - cpu0) / a.duration * 100, 1)
                                   if cpu0 is not None and cpu1 is not None else None),
            "server_cpu_us_per_message": per_op(cpu0, cpu1, received, 1e6),
            "load_worker_cpu_percent": [r["load_cpu_percent"] for r in results],
        }
        if spy is not None:
            out["profile"] = self.finish_profiler(spy)
        if h_every:
            acked: dict[str, list[int]] = {}
            for r in results:
                acked.update(r["acked"])
            self.durability.append({"run": label, "htype": htype, "acked": acked,
                                    "h_sent": sum(r["h_sent"] for r in results)})
        self.curves[label] = curve(samples)
        lat = out["latency"]
        bar.finish(f"{out['messages_per_s']} msg/s, p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} "
                   f"ms, p999 {lat['p999_ms']} ms, lost {out['lost']}; CPU % server "
                   f"{out['server_cpu_percent']}, load {out['load_worker_cpu_percent']}")
        return out

    def relay_all(self) -> None:
        a = self.args
        runs = {"relay_closed": self.relay(f"relay closed {a.pairs} pairs", a.pairs, "closed",
                                           profile=a.profile)}
        if "relay" in self.phases:
            for r in a.open_rates:
                runs[f"relay_open_{r}"] = self.relay(f"relay open {r} msg/s", a.pairs, "open", r)
        self.report["phases"].update(runs)

    def rest(self) -> None:
        a = self.args
        vid = self.vehicles(1)[0]
        headers: dict[str, str] = {}
        query = ""
        try:
            probe = trio.run(get_once, a.host, a.http_port, f"/api/status/{vid}", {})
            if probe.status == 404:
                self.skip("rest", f"server answers 404 on /api/status (port {a.http_port}): "
                                  "no REST API yet")
                return
            cookie = self.rest_cookie()
        except (OSError, HTTPError) as exc:
            self.skip("rest", f"no REST API on {a.host}:{a.http_port} ({exc})")
            return
        if cookie:
            headers["Cookie"] = cookie
        elif a.password:
            query = "?" + urllib.parse.urlencode({"username": a.username,
                                                  "password": a.password})
        targets = [f"/api/status/{v}{query}" for v in self.vehicles(min(a.pairs, 100))]
        results: dict[str, Any] = {}
        for clients in a.rest_clients:
            for keepalive in (True, False):
                label = f"rest {clients} clients {'keep-alive' if keepalive else 'new conn'}"
                shares = [dict(host=a.host, http_port=a.http_port, headers=headers,
                               targets=targets, keepalive=keepalive, duration=a.rest_duration,
                               clients=n)
                          for n in split_count(clients, self.workers) if n > 0]
                bar = self.progress(label, 0, seconds=a.rest_duration)
                with PhaseRun("rest", shares, bar.update) as run:
                    run.wait_stage("ready", 60)
                    bar.started = time.monotonic()
                    cpu0 = self.cpu()
                    run.signal("go")
                    res = run.results(a.rest_duration + 60)
                    cpu1 = self.cpu()
                lat = [x for r in res for x in r["latencies"]]
                statuses: Counter[str] = Counter()
                for r in res:
                    statuses.update(r["statuses"])
                key = f"rest_{clients}_{'keepalive' if keepalive else 'newconn'}"
                ok = sum(n for code, n in statuses.items() if code.startswith("2"))
                if statuses.get("429"):
                    print(f"{label}: the server rate-limited the bench (429): exempt "
                          f"{a.host} (api_rate_exempt) for meaningful figures", file=sys.stderr)
                results[key] = {"clients": clients, "keepalive": keepalive,
                                "requests_per_s": rate(len(lat), a.rest_duration),
                                "ok_requests_per_s": rate(ok, a.rest_duration),
                                "errors": sum(r["errors"] for r in res),
                                "statuses": dict(statuses), "latency": summarize(lat),
                                "server_cpu_us_per_request": per_op(cpu0, cpu1, len(lat), 1e6)}
                self.curves[label] = curve(lat)
                bar.finish(f"{results[key]['requests_per_s']} req/s, p50 "
                           f"{results[key]['latency']['p50_ms']} ms, p99 "
                           f"{results[key]['latency']['p99_ms']} ms, statuses {dict(statuses)}")
        self.report["phases"].update(results)

    def rest_cookie(self) -> str | None:
        a = self.args
        if not a.password:
            return None
        q = urllib.parse.urlencode({"username": a.username, "password": a.password})
        resp = trio.run(get_once, a.host, a.http_port, f"/api/cookie?{q}", {})
        if resp.status != 200:
            return None
        for part in resp.headers.get("set-cookie", "").split(";"):
            if part.strip().startswith("ovmsapisession="):
                return part.strip()
        return None

    def scale(self) -> None:
        a = self.args
        limit = srv_fd_limit(self.pid)
        pairs = a.pairs
        if limit is not None and a.idle + 2 * pairs + FD_RESERVE > limit:
            pairs = max(1, (limit - a.idle - FD_RESERVE) // 2)
        rss0 = self.rss()
        ids = self.vehicles(a.idle, first=a.pairs)
        shares = [dict(self.base(), vehicles=v, full_set=a.idle_full_set, setup_timeout=900.0)
                  for v in split(ids, self.workers)]
        bar = self.progress(f"scale: {a.idle} idle cars", a.idle)
        out: dict[str, Any] = {"idle_requested": a.idle, "server_fd_limit": limit,
                               "idle_full_set": a.idle_full_set}
        with PhaseRun("idle", shares, bar.update) as idle:
            ready = idle.wait_stage("ready", 1200)
            connected = sum(r["connected"] for r in ready)
            # Let the server store the cars' first messages and settle: 3 s for the
            # thousands a real run connects, less for the few of a smoke test.
            time.sleep(min(3.0, 0.5 + a.idle / 1000))
            rss1 = self.rss()
            out.update(idle_connected=connected, idle_failed=sum(r["failed"] for r in ready),
                       server_rss_kb_before=rss0, server_rss_kb_idle=rss1)
            if rss0 is not None and rss1 is not None and connected:
                out["rss_bytes_per_connection"] = round((rss1 - rss0) * 1024 / connected)
            per = out.get("rss_bytes_per_connection")
            bar.finish(f"{connected} connected, server RSS {rss0} -> {rss1} kB"
                       + (f", {per / 1024:.1f} KB per connection" if per else ""))
            out["relay_with_idle"] = self.relay(f"relay closed {pairs} pairs +idle", pairs,
                                                "closed")
            idle.signal("stop")
            idle.results(300)
        self.report["phases"]["scale"] = out

    def check_durability(self) -> int:
        a = self.args
        total_acked = total_missing = 0
        runs = []
        for d in self.durability:
            if a.db:
                stored = srv.stored_records_sql(a.db, d["htype"])
                source = "sqlite"
            else:
                stored = trio.run(srv.stored_records_v2, a.host, a.port, a.carpass, d["htype"],
                                  list(d["acked"]))
                source = "command 32"
            acked = sum(len(v) for v in d["acked"].values())
            missing = sum(len(set(v) - stored.get(vid, set())) for vid, v in d["acked"].items())
            total_acked += acked
            total_missing += missing
            runs.append({"run": d["run"], "htype": d["htype"], "h_sent": d["h_sent"],
                         "acked": acked, "missing": missing, "checked_via": source})
        self.report["phases"]["durability"] = {"runs": runs, "acked": total_acked,
                                               "acked_missing": total_missing}
        print(f"{'durability':<28} {total_acked} acked h records, {total_missing} missing "
              "from the store", file=sys.stderr)
        return EXIT_LOST if total_missing else EXIT_OK

    # --- profiling --------------------------------------------------------------------

    def profile_path(self) -> Path:
        return self.out.with_suffix(".pyspy.txt")

    def start_profiler(self, seconds: float) -> subprocess.Popen[bytes] | None:
        exe = Path(sys.executable).with_name("py-spy")
        if not exe.exists():
            print("profile: py-spy not found next to python; skipped", file=sys.stderr)
            return None
        return subprocess.Popen(
            [str(exe), "record", "--pid", str(self.pid), "--duration", str(int(seconds)),
             "--format", "raw", "--output", str(self.profile_path()), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish_profiler(self, spy: subprocess.Popen[bytes]) -> dict[str, Any]:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        return summarize_profile(self.profile_path())

    def v3(self) -> None:
        a = self.args
        if not a.mqtt:
            self.skip("v3", "no --mqtt broker given")
            return
        from tools.bench_v3 import run_phase  # paho-mqtt: only this phase needs it

        label = f"v3 {a.v3_modules} modules"
        bar = self.progress(label, 0, seconds=a.duration)
        out: dict[str, Any] = trio.run(functools.partial(
            run_phase, mqtt=a.mqtt, prefix=a.mqtt_prefix, owner=a.username, host=a.host,
            port=a.port, carpass=a.carpass, vehicles=self.vehicles(a.v3_modules),
            duration=a.duration, warmup=a.warmup))
        self.curves[label] = out.pop("curve")
        self.report["phases"]["v3"] = out
        lat = out["latency"]
        bar.finish(f"{out['metrics_per_s']} metrics/s ({out['bursts_per_s']} bursts/s), "
                   f"metric-to-app p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")

    # --- all ------------------------------------------------------------------------------

    def run(self) -> int:
        if "login" in self.phases:
            self.login()
        if self.phases & {"relay", "durability"}:
            self.relay_all()
        if "rest" in self.phases:
            self.rest()
        if "scale" in self.phases:
            self.scale()
        if "v3" in self.phases:
            self.v3()
        if "cluster" in self.phases:
            bench_bus.relay_runs(self)
        if "storm" in self.phases:
            bench_bus.storm(self)
        if "workers" in self.phases:
            bench_cluster.workers_phase(self)
        status = EXIT_OK
        if "durability" in self.phases and self.durability:
            status = self.check_durability()
        return status

    def write(self) -> None:
        write_json(self.out, self.report)
        png = self.out.with_suffix(".png")
        why = write_chart(png, self.curves)
        print(f"results: {self.out}" + (f", chart: {png}" if why is None else ""),
              file=sys.stderr)
        if why:
            print(f"{PROG}: {why}", file=sys.stderr)


def per_op(cpu0: float | None, cpu1: float | None, ops: int, unit: float) -> float | None:
    """CPU seconds between two readings per operation, in ``unit`` (1e3: ms, 1e6: us)."""
    if cpu0 is None or cpu1 is None or ops <= 0:
        return None
    return round((cpu1 - cpu0) / ops * unit, 3)


def srv_fd_limit(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return raise_nofile_limit(pid)
    except (OSError, ValueError):
        return None


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by own (leaf) and inclusive samples from py-spy's collapsed stacks."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        leaf[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count

    def table(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(n / total * 100, 1)] for name, n in counter.most_common(top)]

    return {"file": str(path), "samples": total, "self_percent": table(leaf) if total else [],
            "inclusive_percent": table(inclusive) if total else []}


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: line numbers split one
    function into many rows."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = file.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({short})"


def _prepare(args: argparse.Namespace) -> tuple[srv.OwnServer | None, int | None]:
    """Start and provision our own server if asked; returns it and the pid to watch."""
    if not args.start_server:
        if args.carpass is None:
            raise UsageError("--carpass is needed (or --start-server)")
        return None, args.server_pid
    out = Path(args.out)
    if args.db is None:
        args.db = str(out.with_suffix(".db"))
    args.carpass = args.carpass or secrets.token_urlsafe(9)
    args.password = args.password or secrets.token_urlsafe(9)
    need = max(args.pairs, args.login_concurrency, args.v3_modules) + (
        args.idle if "scale" in args.phases else 0)
    ids = srv.bench_vehicle_ids(args.vehicle_prefix, need)
    t0 = time.monotonic()
    added = srv.provision(args.db, args.username, args.password, args.carpass, ids)
    print(f"{'provision':<28} {added} vehicles added ({need} needed) in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    # Children inherit the raised limit: the server gets the hard limit too.
    raise_nofile_limit()
    extra = (["--mqtt", args.mqtt, "--mqtt-prefix", args.mqtt_prefix]
             if args.mqtt and "v3" in args.phases else [])
    server = srv.OwnServer.start(args.db, args.host, out.with_suffix(".server.log"), extra)
    args.port, args.http_port = server.v2_port, server.http_port
    return server, server.pid


def run(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        named = {x.strip() for x in args.phases.split(",")} - {""}
        own_servers = set(bench_bus.PHASES) | set(bench_cluster.PHASES)
        unknown = named - set(PHASE_NAMES) - own_servers
        if unknown:
            raise UsageError(f"unknown phase(s): {', '.join(sorted(unknown))}")
        if args.duration <= args.warmup:
            raise UsageError("--duration must be longer than --warmup")
        if args.open_rates and min(args.open_rates) <= 0:
            raise UsageError("--open-rates must be positive")
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_nofile_limit()
    server: srv.OwnServer | None = None
    bench: Bench | None = None
    status = EXIT_OK
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        # The cluster phases start their own nodes: no server needed for them alone.
        server, pid = (None, None) if named <= own_servers else _prepare(args)
        bench = Bench(args, pid)
        bench.report.update(
            tool=PROG, date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            command=[PROG, *(argv if argv is not None else sys.argv[1:])],
            machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                     "platform": platform.platform()},
            server={"host": args.host, "v2_port": args.port, "http_port": args.http_port,
                    "pid": pid, "own": server is not None, "db": args.db},
            settings={k: getattr(args, k) for k in (
                "workers", "logins", "login_concurrency", "pairs", "duration", "warmup",
                "open_rates", "h_every", "rest_clients", "rest_duration", "idle",
                "idle_full_set", "mqtt_prefix", "v3_modules", "cluster_bus", "storm_cars",
                "storm_app_every")},
        )
        status = bench.run()
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (BenchError, WorkerError, srv.ServerError, bench_bus.ClusterError,
            OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        status = EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        status = EXIT_ERROR
    finally:
        if server is not None:
            server.stop()
        if bench is not None:
            bench.write()
    return status


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
