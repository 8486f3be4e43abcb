"""Issue 12: ``ovms-admin migrate`` copies a SQLite file into PostgreSQL and back, every
row and every byte, verified by per-table counts; a non-empty target is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from relay import db
from relay.store import open_store
from tests.pg_server import run_sql
from tools import admin
from tools.migrate import tables

BAD = b"caf\xe9\xff\x00end".decode("utf-8", "surrogateescape")


def _fill(path: str) -> None:
    conn = db.connect(path)
    try:
        db.add_owner(conn, "alice", "pw")
        db.add_vehicle(conn, "CAR1", "alice", "carpass")
        db.set_vehicle_name(conn, "CAR1", "Blue ✓")
        db.add_token(conn, "alice", application="app")
    finally:
        conn.close()

    async def data() -> None:
        async with open_store(path) as store:
            await store.put_latest("CAR1", "S", f"80,{BAD}", when=1000.5)
            for n in range(30):
                await store.add_historical("CAR1", "*-Log", n, f"r{n} {BAD}",
                                           timestamp=100 + n, expires=2**40)
            store.add_usage("CAR1", car_rx=5, app_tx=7)

    trio.run(data)


def _dump(target: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(run_sql(target, f"SELECT * FROM {t}"), key=repr) for t in tables()}


def test_sqlite_to_postgres_and_back_keeps_every_row(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(tmp_path / "source.db")
    _fill(source)
    assert admin.run(["migrate", "--from", source, "--to", pg_url]) == 0
    out = capsys.readouterr().out
    assert "table\tsource\ttarget" in out and "historical\t30\t30" in out
    assert "owners\t1\t1" in out and "vehicles\t1\t1" in out
    assert _dump(pg_url) == _dump(source)

    back = str(tmp_path / "back.db")
    assert admin.run(["migrate", "--from", pg_url, "--to", back]) == 0
    assert _dump(back) == _dump(source)
    assert ("CAR1", "S", 1000.5, 0, "", f"80,{BAD}") in _dump(back)["latest"]

    # The copy is a working database: ovms-admin and the store use it as they would the file.
    assert admin.run(["--db", pg_url, "vehicle", "list"]) == 0
    assert "CAR1\talice" in capsys.readouterr().out


def test_a_non_empty_target_is_refused_unless_forced(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(tmp_path / "source.db")
    _fill(source)
    conn = db.connect(pg_url)
    try:
        db.add_owner(conn, "bob", "pw")
    finally:
        conn.close()
    assert admin.run(["migrate", "--from", source, "--to", pg_url]) == 1
    err = capsys.readouterr().err
    assert "is not empty (owners hold rows): use --force" in err
    assert run_sql(pg_url, "SELECT name FROM owners") == [("bob",)]
    assert admin.run(["migrate", "--from", source, "--to", pg_url, "--force"]) == 0
    assert run_sql(pg_url, "SELECT name FROM owners") == [("alice",)]
    assert _dump(pg_url) == _dump(source)


def test_file_only_commands_say_so_on_postgres(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert admin.run(["--db", pg_url, "backup", str(tmp_path / "b.db")]) == 1
    assert "pg_dump" in capsys.readouterr().err
    assert admin.run(["--db", pg_url, "restore", str(tmp_path / "b.db")]) == 1
    assert "pg_dump" in capsys.readouterr().err
