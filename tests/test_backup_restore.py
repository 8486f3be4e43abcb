"""Issue 15: ``ovms-admin backup`` while the server runs, and ``restore``."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from relay import db
from tests.conftest import RelayUnderTest, StartRelay, make_db, sqlite_only
from tools import backup

pytestmark = sqlite_only("backup and restore copy a SQLite file")

ROOT = Path(__file__).resolve().parent.parent


def admin_command(db_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tools.admin", "--db", str(db_path), *args]


def admin(db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(admin_command(db_path, *args), capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)


def stored_records(path: Path) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT recordnumber FROM historical WHERE htype='*-LOG-Test'")
        return {int(r[0]) for r in rows}
    finally:
        conn.close()


async def test_backup_under_load_restores_every_acked_record(
    tmp_path: Path, start_relay: StartRelay
) -> None:
    relay: RelayUnderTest = await start_relay()
    car = await relay.car("DEMO")
    acked: set[int] = set()
    backup_file = tmp_path / "backup.db"
    promised: set[int] = set()

    async def send() -> None:
        n = 0
        while True:
            n += 1
            await car.send("h", f"{n},0,*-LOG-Test,{n},86400,record {n}")
            await trio.sleep(0.002)

    async def receive() -> None:
        while True:
            msg = await car.receive(timeout=30)
            if msg.code == "h":
                acked.add(int(msg.data))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(receive)
        while len(acked) < 100:
            await trio.sleep(0.01)
        # Everything acknowledged before the backup starts must be in it; the car
        # keeps writing all through the backup.
        promised = set(acked)
        result = await trio.run_process(
            admin_command(relay.db_path, "backup", str(backup_file)), capture_stdout=True,
            capture_stderr=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
            check=False)
        assert result.returncode == 0, result.stderr
        nursery.cancel_scope.cancel()
    await car.aclose()
    assert len(acked) > len(promised)  # it really ran under load

    restored = tmp_path / "restored.db"
    backup.restore(str(backup_file), str(restored))
    assert promised <= stored_records(restored)
    assert sqlite3.connect(restored).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_restore_refuses_a_database_a_server_holds(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    make_db(live)
    backup_file = tmp_path / "copy.db"
    backup.backup(str(live), str(backup_file))
    # Never overwritten by accident.
    with pytest.raises(db.AdminError, match="exists"):
        backup.backup(str(live), str(backup_file))

    # A running server holds an exclusive flock on <db>.lock with its pid in it.
    fd = os.open(f"{live}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"4242\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = admin(live, "restore", str(backup_file), "--force")
        assert result.returncode == 1
        assert len(result.stderr.splitlines()) == 1
        assert "in use by a running server (pid 4242)" in result.stderr
    finally:
        os.close(fd)
    # Server gone: an existing database is replaced only when asked to.
    with pytest.raises(db.AdminError, match="--force"):
        backup.restore(str(backup_file), str(live))
    backup.restore(str(backup_file), str(live), force=True)
    # Not a backup at all: refused before touching anything.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(db.AdminError, match="not a database backup"):
        backup.restore(str(junk), str(tmp_path / "other.db"))
    assert not (tmp_path / "other.db").exists()
