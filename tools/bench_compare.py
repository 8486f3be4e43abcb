"""Before and after in one run: ``ovms-bench`` against older commits and this checkout.

    python -m tools.bench_compare --old ab19c57 --old e51663c --rounds 3 \\
        --out /tmp/bench-compare

Each older commit is exported (``git archive``, no worktree bookkeeping) into
``--workdir`` with a virtual environment of its own; this checkout runs as it is,
with the interpreter running this script (or ``--new REV`` is exported too).
Every side provisions its vehicles and starts its server with its own code, on a
copy of a database provisioned once.
The load always comes from this checkout's ``ovms-bench`` (``--server-pid``
mode), so the sides differ only in the server.

Rounds interleave the sides (old, new, then new, old, ...) so that a noisy
neighbour on a shared machine hits both alike; the table gives the median of
the rounds and, in brackets, their spread. Writes ``compare.json`` (every run)
and ``compare.md`` (the table) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from tools.bench_proc import raise_nofile_limit

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
OWNER = "bench"

# Table rows: label, how to read the figure from one run's report, unit, higher is better.
Metric = tuple[str, Callable[[dict[str, Any]], float | None], str, bool]


def _get(report: dict[str, Any], *path: str) -> float | None:
    node: Any = report.get("phases", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _rss_kb_per_car(report: dict[str, Any]) -> float | None:
    per = _get(report, "scale", "rss_bytes_per_connection")
    return None if per is None else per / 1024


METRICS: list[Metric] = [
    ("logins/s", lambda r: _get(r, "login", "logins_per_s"), "/s", True),
    ("login p99", lambda r: _get(r, "login", "latency", "p99_ms"), "ms", False),
    ("server CPU per login", lambda r: _get(r, "login", "server_cpu_ms_per_login"), "ms",
     False),
    ("relay closed loop", lambda r: _get(r, "relay_closed", "messages_per_s"), "msg/s", True),
    ("relay closed loop p99", lambda r: _get(r, "relay_closed", "latency", "p99_ms"), "ms",
     False),
    ("server CPU per relayed message",
     lambda r: _get(r, "relay_closed", "server_cpu_us_per_message"), "us", False),
    ("REST 2 clients keep-alive", lambda r: _get(r, "rest_2_keepalive", "requests_per_s"),
     "req/s", True),
    ("REST 2 clients new connection", lambda r: _get(r, "rest_2_newconn", "requests_per_s"),
     "req/s", True),
    ("REST 20 clients keep-alive", lambda r: _get(r, "rest_20_keepalive", "requests_per_s"),
     "req/s", True),
    ("REST 20 clients new connection", lambda r: _get(r, "rest_20_newconn", "requests_per_s"),
     "req/s", True),
    ("server CPU per REST request (20 keep-alive)",
     lambda r: _get(r, "rest_20_keepalive", "server_cpu_us_per_request"), "us", False),
    ("RSS per idle car (bare connection)", _rss_kb_per_car, "KB", False),
    ("relay closed loop with the idle cars",
     lambda r: _get(r, "scale", "relay_with_idle", "messages_per_s"), "msg/s", True),
]


@attrs.define
class Side:
    label: str  # a commit, or "this checkout"
    root: Path
    python: Path
    template_db: Path | None = None


def _run(cmd: Sequence[str], **kw: Any) -> str:
    done = subprocess.run(list(cmd), check=True, text=True, capture_output=True, **kw)
    out: str = done.stdout
    return out


def prepare_old(rev: str, workdir: Path) -> Side:
    """``rev`` exported into ``workdir/<sha>`` with its own venv (reused when there)."""
    sha = _run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"]).strip()
    root = workdir / sha[:12]
    python = root / ".venv" / "bin" / "python"
    if not (root / ".ready").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        print(f"{rev}: installing into {root}/.venv", file=sys.stderr)
        _run([sys.executable, "-m", "venv", str(root / ".venv")])
        _run([str(python), "-m", "pip", "install", "-q", "-e", str(root)])
        (root / ".ready").touch()
    return Side(f"`{rev}`", root, python)


def _side_python(side: Side, code: str) -> str:
    # Run in the side's own checkout: its protocol/relay/tools, not ours.
    return _run([str(side.python), "-c", code], cwd=side.root,
                env=dict(os.environ, PYTHONPATH=str(side.root)))


def provision(side: Side, db: Path, carpass: str, password: str, count: int) -> None:
    ids = f"[f'BENCH{{i:05d}}' for i in range({count})]"
    _side_python(side, "from tools import bench_server as s; "
                       f"s.provision({str(db)!r}, {OWNER!r}, {password!r}, {carpass!r}, {ids})")


@attrs.define
class Server:
    proc: subprocess.Popen[str]
    v2_port: int
    http_port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(side: Side, db: Path, run_dir: Path) -> Server:
    """The side's server on a free port; tried again if another process took the port
    between our check and the server's bind (a shared machine)."""
    for _ in range(2):
        try:
            return _start_server(side, db, run_dir)
        except ServerStartError:
            time.sleep(1)
    return _start_server(side, db, run_dir)


class ServerStartError(SystemExit):
    pass


def _start_server(side: Side, db: Path, run_dir: Path) -> Server:
    settings = json.loads(_side_python(
        side, f"import json; from tools.bench_server import bench_settings; "
              f"print(json.dumps(bench_settings({HOST!r})))"))
    config = run_dir / "server.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    http_port = int(_side_python(
        side, f"from tools.bench_server import free_port; print(free_port({HOST!r}))"))
    with open(run_dir / "server.log", "w") as log_file:
        proc = subprocess.Popen(
            [str(side.python), "-m", "relay", "serve", "--db", str(db), "--host", HOST,
             "--v2-port", "0", "--http-port", str(http_port), "--log-level", "WARNING",
             "--config", str(config)],
            cwd=side.root, env=dict(os.environ, PYTHONPATH=str(side.root)),
            stdout=subprocess.PIPE, stderr=log_file, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"v2 protocol on [^\s]+:(\d+)", line)
    if match is None:
        proc.kill()
        proc.wait(10)
        raise ServerStartError(f"{side.label}: server did not start, see {run_dir}/server.log")
    return Server(proc, int(match.group(1)), http_port)


def bench_once(side: Side, args: argparse.Namespace, run_dir: Path, carpass: str,
               password: str) -> dict[str, Any]:
    assert side.template_db is not None
    run_dir.mkdir(parents=True, exist_ok=True)
    db = run_dir / "bench.db"
    shutil.copyfile(side.template_db, db)
    server = start_server(side, db, run_dir)
    out = run_dir / "bench-results.json"
    try:
        cmd = [sys.executable, "-m", "tools.bench", "--server-pid", str(server.proc.pid),
               "--host", HOST, "--port", str(server.v2_port),
               "--http-port", str(server.http_port), f"--carpass={carpass}",
               "--username", OWNER, f"--password={password}", "--db", str(db),
               "--out", str(out), "--phases", args.phases, "--workers", str(args.workers),
               "--logins", str(args.logins), "--login-concurrency", "50",
               "--pairs", str(args.pairs), "--duration", str(args.duration),
               "--open-rates", "", "--rest-clients", "2,20", "--rest-duration",
               str(args.rest_duration), "--idle", str(args.idle), "--no-idle-full-set",
               "--no-progress"]
        done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
        (run_dir / "bench.log").write_text(done.stdout + done.stderr)
    finally:
        server.stop()
    if not out.exists():
        raise SystemExit(f"{side.label}: ovms-bench wrote no report, see {run_dir}/bench.log")
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"


def table(sides: list[Side], runs: dict[str, list[dict[str, Any]]]) -> str:
    head = "| metric | " + " | ".join(s.label for s in sides) + " |"
    lines = [head, "|---" * (len(sides) + 1) + "|"]
    for label, read, unit, _higher in METRICS:
        cells = []
        for side in sides:
            values = [v for v in (read(r) for r in runs[side.label]) if v is not None]
            if not values:
                cells.append("-")
                continue
            med = statistics.median(values)
            spread = f" ({_fmt(min(values))}-{_fmt(max(values))})" if len(values) > 1 else ""
            cells.append(f"{_fmt(med)} {unit}{spread}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_note(log: list[dict[str, Any]]) -> str:
    """The machine's load average (1 min) before each run, in run order."""
    runs = ", ".join(f"{x['side']} {x['load_before'].split()[0]}" for x in log)
    return f"\nLoad average before each run: {runs}.\n"


def checkout_label() -> str:
    sha = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return f"this checkout (`{sha}`{' + changes' if dirty.strip() else ''})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench_compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", action="append", default=[], metavar="REV",
                   help="an older commit to compare (repeatable; default ab19c57)")
    p.add_argument("--new", metavar="REV",
                   help="benchmark this commit (exported like the old ones) instead of the "
                        "working tree, which may then change while the run goes on")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-compare"))
    p.add_argument("--workdir", type=Path, default=Path("/tmp/ovms-bench-compare"),
                   help="where older commits and their venvs live (reused across runs)")
    p.add_argument("--phases", default="login,relay,rest,scale")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--logins", type=int, default=5000)
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rest-duration", type=float, default=5.0)
    p.add_argument("--idle", type=int, default=19000)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Stopped with SIGTERM: unwind, so that the running server and bench are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    raise_nofile_limit()  # the servers started here inherit it
    args.out.mkdir(parents=True, exist_ok=True)
    sides = [prepare_old(rev, args.workdir) for rev in (args.old or ["ab19c57"])]
    if args.new:
        sides.append(prepare_old(args.new, args.workdir))
    else:
        sides.append(Side(checkout_label(), ROOT, Path(sys.executable)))
    carpass, password = secrets.token_urlsafe(9), secrets.token_urlsafe(9)
    vehicles = max(args.pairs, 50) + (args.idle if "scale" in args.phases else 0)
    for i, side in enumerate(sides):
        side.template_db = args.out / f"template-{i}.db"
        side.template_db.unlink(missing_ok=True)
        provision(side, side.template_db, carpass, password, vehicles)
    runs: dict[str, list[dict[str, Any]]] = {s.label: [] for s in sides}
    log: list[dict[str, Any]] = []
    command = [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]
    md = ""
    for rnd in range(args.rounds):
        order = sides if rnd % 2 == 0 else sides[::-1]
        for side in order:
            i = sides.index(side)
            before = load_average()
            t0 = time.monotonic()
            report = bench_once(side, args, args.out / f"round{rnd + 1}-side{i}", carpass,
                                password)
            runs[side.label].append(report)
            log.append({"round": rnd + 1, "side": side.label, "load_before": before,
                        "seconds": round(time.monotonic() - t0, 1)})
            print(f"round {rnd + 1} {side.label}: done in {log[-1]['seconds']} s "
                  f"(load average before: {before})", file=sys.stderr)
            # After every run: a run stopped early still leaves the table so far.
            md = write_results(args.out, sides, runs, log, command)
    print(md)


def write_results(out: Path, sides: list[Side], runs: dict[str, list[dict[str, Any]]],
                  log: list[dict[str, Any]], command: list[str]) -> str:
    md = table(sides, runs) + load_note(log)
    (out / "compare.md").write_text(md)
    (out / "compare.json").write_text(json.dumps(
        {"sides": [s.label for s in sides], "log": log, "runs": runs, "command": command},
        indent=1))
    return md

if __name__ == "__main__":
    main()
