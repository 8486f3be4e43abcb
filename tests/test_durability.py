"""Every acknowledged ``h`` record survives ``kill -9`` of the server (on a SQLite file,
and on PostgreSQL, where it must be committed with ``synchronous_commit=on``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import trio

from protocol import ClientType
from tests.conftest import make_db
from tests.pg_server import run_sql
from tools.bench_server import stored_records_v2
from tools.v2client import LoginRefused, V2Client

RECORDS = 300


async def start_server(db_path: Path | str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--db", str(db_path),
         "--host", "127.0.0.1", "--v2-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = await trio.to_thread.run_sync(proc.stdout.readline)
    match = re.search(r"v2 protocol on [\d.]+:(\d+)", line)
    assert match, f"unexpected first line {line!r}"
    return proc, int(match.group(1))


async def test_acked_records_survive_kill_9(db_target: str) -> None:
    db_path = db_target
    make_db(db_path)
    proc, port = await start_server(db_path)
    acked: set[int] = set()
    try:
        car = await V2Client.connect("127.0.0.1", port, "DEMO",
                                     client_type=ClientType.CAR, carpass="DEMO")
        for n in range(1, RECORDS + 1):
            await car.send("h", f"{n},0,*-LOG-Test,{n},86400,record {n} payload")
        # Kill while acks are still arriving: only what was acked is promised.
        with trio.move_on_after(10):
            while len(acked) < RECORDS // 2:
                msg = await car.receive()
                if msg.code == "h":
                    acked.add(int(msg.data))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # Acks already in our receive buffer were sent before the kill: they count too.
        with trio.move_on_after(2):
            try:
                while True:
                    msg = await car.receive()
                    if msg.code == "h":
                        acked.add(int(msg.data))
            except (LoginRefused, trio.BrokenResourceError):
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(acked) >= RECORDS // 2
    # Restart on the same file: the server must open it cleanly (WAL recovery) ...
    proc, port = await start_server(db_path)
    try:
        # Command 32 answered to its last line (a client of the v2 protocol).
        served = await stored_records_v2("127.0.0.1", port, "DEMO", "*-LOG-Test", ["DEMO"])
        assert acked <= served["DEMO"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    # ... and every acked record is in the database.
    rows = run_sql(db_path, "SELECT recordnumber FROM historical "
                            "WHERE vehicleid='DEMO' AND htype='*-LOG-Test'")
    assert acked <= {r[0] for r in rows}
