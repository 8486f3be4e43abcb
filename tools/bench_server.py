"""The server side of ``ovms-bench``: provisioning, our own relay process, its memory,
and checking acknowledged records in its store."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
import trio

from protocol import ClientType, CommandResponse
from relay import db
from tools import admin
from tools.v2client import V2Client

log = logging.getLogger("ovms.bench")


class ServerError(Exception):
    """Our server could not be provisioned or started (one-line reason)."""


def bench_vehicle_ids(prefix: str, count: int, first: int = 0) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(first, first + count)]


def provision(db_path: str, owner: str, password: str, carpass: str,
              vehicleids: Iterable[str]) -> int:
    """Create the bench owner (through ``ovms-admin``) and any missing vehicles; returns
    how many vehicles were added.

    Vehicles go through the same ``relay.db.add_vehicle`` that ``ovms-admin vehicle add``
    runs, but on one connection with ``synchronous=NORMAL``: one process and one fsync
    per vehicle would take minutes for 20,000 of them.
    """
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        conn = db.connect(db_path)
        try:
            exists = db.get_owner(conn, owner) is not None
        finally:
            conn.close()
        # --password=VALUE: a generated password may start with "-".
        if not exists and admin.run(["--db", db_path, "owner", "add", owner,
                                     f"--password={password}"]) != 0:
            raise ServerError(f"ovms-admin could not add owner {owner!r} to {db_path}: "
                              f"{errors.getvalue().strip()}")
    conn = db.connect(db_path)
    added = 0
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        have = {row[0] for row in conn.execute("SELECT vehicleid FROM vehicles")}
        for vid in vehicleids:
            if vid not in have:
                db.add_vehicle(conn, vid, owner, carpass)
                added += 1
    finally:
        conn.close()
    return added


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for a server started next)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@attrs.define
class OwnServer:
    """A relay process the bench started; stopped with SIGTERM by ``stop``."""

    proc: subprocess.Popen[str]
    v2_port: int
    http_port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, db_path: str, host: str, log_path: Path,
              extra: Sequence[str] = ()) -> OwnServer:
        http_port = free_port(host)
        config_args: list[str] = []
        settings = bench_settings(host)
        if settings:
            config_path = log_path.with_suffix(".toml")
            config_path.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items())
                                   .replace("'", '"'))
            config_args = ["--config", str(config_path)]
        proc, v2_port = spawn_serve(
            ["--db", db_path, "--host", host, "--v2-port", "0", "--http-port", str(http_port),
             "--log-level", "WARNING", *config_args, *extra], log_path)
        return cls(proc, v2_port, http_port, log_path)

    def stop(self) -> None:
        stop_process(self.proc, 30)


def spawn_serve(serve_args: Sequence[str], log_path: Path, listening: int = 1
                ) -> tuple[subprocess.Popen[str], int]:
    """``relay serve`` with ``serve_args``, its log in ``log_path``: the process and its
    v2 port, once ``listening`` processes (a supervisor's workers) said they listen."""
    log_file = open(log_path, "w")  # the child keeps its own copy of the descriptor
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", *serve_args],
                            stdout=subprocess.PIPE, stderr=log_file, text=True)
    log_file.close()
    assert proc.stdout is not None
    port = 0
    for _ in range(listening):
        line = proc.stdout.readline()
        match = re.search(r"v2 protocol on [^\s]+:(\d+)", line)
        if not match:
            proc.kill()
            proc.wait(10)
            raise ServerError(f"server did not start (see {log_path}): {line.strip()!r}")
        port = int(match.group(1))
    return proc, port


def stop_process(proc: subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def bench_settings(host: str) -> dict[str, str]:
    """Server settings for a bench run: the REST rate limiter (120 requests per client
    address, then 429) would otherwise measure itself, so the bench's address is exempt."""
    from relay.config import Config

    if "api_rate_exempt" in Config.field_names():
        return {"api_rate_exempt": host}
    return {}


def rss_kb(pid: int) -> int | None:
    """VmRSS of ``pid`` in kB, None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of ``pid`` so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stored_records_sql(db_path: str, htype: str) -> dict[str, set[int]]:
    """Record numbers of type ``htype`` per vehicle, read straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT vehicleid, recordnumber FROM historical WHERE htype=?",
                            (htype,)).fetchall()
    finally:
        conn.close()
    out: dict[str, set[int]] = {}
    for vid, number in rows:
        out.setdefault(vid, set()).add(int(number))
    return out


async def stored_records_v2(host: str, port: int, carpass: str, htype: str,
                            vehicleids: Iterable[str]) -> dict[str, set[int]]:
    """The same through the protocol: command ``32,<htype>`` as a batch client per vehicle."""
    out: dict[str, set[int]] = {}
    limiter = trio.CapacityLimiter(16)

    async def one(vid: str) -> None:
        async with limiter:
            client = await V2Client.connect(host, port, vid, client_type=ClientType.BATCH,
                                            carpass=carpass)
            async with client:
                await client.send("C", f"32,{htype}")
                numbers: set[int] = set()
                while True:
                    msg = await client.receive(60.0)
                    if msg.code != "c" or not msg.data.startswith("32,"):
                        continue
                    parts = msg.data.split(",", 7)
                    if parts[1] != "0":
                        break
                    numbers.add(int(parts[6]))
                    if CommandResponse.parse(msg.data).is_last_line():  # k == n
                        break
                out[vid] = numbers

    async with trio.open_nursery() as nursery:
        for vid in vehicleids:
            nursery.start_soon(one, vid)
    return out
