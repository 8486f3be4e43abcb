"""The ``ovms-admin`` command-line contract, run as a real subprocess (on a SQLite file,
or on PostgreSQL under ``OVMS_TEST_STORE=postgres``)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay import db
from tests.conftest import sqlite_only
from tests.pg_server import run_sql
from tools.admin import run as admin_run

ROOT = Path(__file__).resolve().parent.parent


def admin(
    *args: str, db_path: Path | str | None = None, env: dict[str, str] | None = None,
    stdin: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``ovms-admin`` in this process (an interpreter per call cost most of this file's
    time); ``test_entry_point_runs_as_a_program`` runs the real program."""
    argv = [] if db_path is None else ["--db", str(db_path)]
    argv += args
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    saved_stdin = sys.stdin
    os.environ.pop("OVMS_RELAY_DB", None)
    os.environ.update(env or {})
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = admin_run(argv)
            except SystemExit as exc:  # argparse's --help
                status = int(exc.code or 0)
    finally:
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["ovms-admin", *argv], status, out.getvalue(),
                                       err.getvalue())


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def failed(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ovms-admin: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def dbp(empty_db: str) -> str:
    path = empty_db
    ok(admin("owner", "add", "alice", "--password", "pw-alice", db_path=path))
    return path


def test_owner_commands(dbp: str) -> None:
    out = ok(admin("owner", "add", "bob", "--password", "pw", "--permissions", "read", db_path=dbp))
    assert out.strip() and len(out.splitlines()) == 1
    listing = ok(admin("owner", "list", db_path=dbp)).splitlines()
    assert [line.split("\t")[0] for line in listing] == ["alice", "bob"]
    assert "read" in listing[1]
    ok(admin("owner", "delete", "bob", db_path=dbp))
    listing = ok(admin("owner", "list", db_path=dbp)).splitlines()
    assert [line.split("\t")[0] for line in listing] == ["alice"]


def test_owner_password_is_hashed(dbp: str) -> None:
    conn = db.connect(dbp)
    row = db.get_owner(conn, "alice")
    conn.close()
    assert row is not None
    assert row["password_hash"] != "pw-alice"
    assert db.verify_password(row["password_hash"], "pw-alice")


def test_owner_password_from_stdin(dbp: str) -> None:
    ok(admin("owner", "add", "carol", "--password", "-", db_path=dbp, stdin="from-stdin\n"))
    conn = db.connect(dbp)
    row = db.get_owner(conn, "carol")
    conn.close()
    assert row is not None and db.verify_password(row["password_hash"], "from-stdin")


def test_owner_errors(dbp: str) -> None:
    assert "already exists" in failed(
        admin("owner", "add", "alice", "--password", "x", db_path=dbp)
    )
    assert "unknown owner" in failed(admin("owner", "delete", "ghost", db_path=dbp))
    failed(admin("owner", "add", "nopw", db_path=dbp), status=2)


def test_vehicle_commands(dbp: str) -> None:
    out = ok(
        admin("vehicle", "add", "demo", "--owner", "alice", "--carpass", "SECRET1", db_path=dbp)
    )
    assert "DEMO" in out and "SECRET1" not in out
    ok(
        admin(
            "vehicle",
            "add",
            "srv1",
            "--owner",
            "alice",
            "--carpass",
            "s",
            "--type",
            "SERVER",
            db_path=dbp,
        )
    )
    ok(admin("owner", "add", "bob", "--password", "pw", db_path=dbp))
    ok(admin("vehicle", "add", "BOBCAR", "--owner", "bob", "--carpass", "s", db_path=dbp))

    listing = ok(admin("vehicle", "list", db_path=dbp))
    assert "SECRET1" not in listing
    rows = [line.split("\t") for line in listing.splitlines()]
    assert [r[0] for r in rows] == ["BOBCAR", "DEMO", "SRV1"]
    assert rows[2][1:3] == ["alice", "SERVER"]
    listing = ok(admin("vehicle", "list", "--owner", "alice", db_path=dbp))
    assert [line.split("\t")[0] for line in listing.splitlines()] == ["DEMO", "SRV1"]

    ok(admin("vehicle", "carpass", "demo", "NEWSECRET", db_path=dbp))
    conn = db.connect(dbp)
    row = db.get_vehicle(conn, "DEMO")
    conn.close()
    assert row is not None and row["carpass"] == "NEWSECRET"

    ok(admin("vehicle", "delete", "DEMO", db_path=dbp))
    listing = ok(admin("vehicle", "list", db_path=dbp))
    assert [line.split("\t")[0] for line in listing.splitlines()] == ["BOBCAR", "SRV1"]


def test_vehicle_errors(dbp: str) -> None:
    ok(admin("vehicle", "add", "DEMO", "--owner", "alice", "--carpass", "s", db_path=dbp))
    line = failed(
        admin("vehicle", "add", "demo", "--owner", "alice", "--carpass", "s", db_path=dbp)
    )
    assert "already exists" in line
    line = failed(admin("vehicle", "add", "X1", "--owner", "ghost", "--carpass", "s", db_path=dbp))
    assert "unknown owner" in line
    line = failed(
        admin("vehicle", "add", "bad id!", "--owner", "alice", "--carpass", "s", db_path=dbp)
    )
    assert "bad vehicle id" in line
    assert "unknown vehicle" in failed(admin("vehicle", "delete", "NOPE", db_path=dbp))
    assert "unknown vehicle" in failed(admin("vehicle", "carpass", "NOPE", "x", db_path=dbp))
    assert "unknown owner" in failed(admin("vehicle", "list", "--owner", "ghost", db_path=dbp))
    failed(
        admin(
            "vehicle",
            "add",
            "X2",
            "--owner",
            "alice",
            "--carpass",
            "s",
            "--type",
            "BUS",
            db_path=dbp,
        ),
        status=2,
    )
    failed(admin("vehicle", "add", "X3", "--owner", "alice", db_path=dbp), status=2)


def test_vehicle_type_case_insensitive(dbp: str) -> None:
    ok(
        admin(
            "vehicle",
            "add",
            "S1",
            "--owner",
            "alice",
            "--carpass",
            "s",
            "--type",
            "server",
            db_path=dbp,
        )
    )
    assert "SERVER" in ok(admin("vehicle", "list", db_path=dbp))


def test_token_commands(dbp: str) -> None:
    token = ok(
        admin(
            "token",
            "add",
            "--owner",
            "alice",
            "--application",
            "myapp",
            "--purpose",
            "testing",
            "--permit",
            "auth",
            db_path=dbp,
        )
    ).strip()
    assert len(token) == 64 and int(token, 16) >= 0
    listing = ok(admin("token", "list", "--owner", "alice", db_path=dbp))
    assert token not in listing
    fields = listing.splitlines()[0].split("\t")
    assert fields[0] == db.token_hash(token)
    assert fields[1:4] == ["myapp", "testing", "auth"]
    stored = [r[0] for r in run_sql(dbp, "SELECT token_hash FROM tokens")]
    assert stored == [db.token_hash(token)]

    ok(admin("token", "delete", "--owner", "alice", token, db_path=dbp))
    assert ok(admin("token", "list", "--owner", "alice", db_path=dbp)) == ""


def test_token_errors(dbp: str) -> None:
    assert "unknown owner" in failed(admin("token", "add", "--owner", "ghost", db_path=dbp))
    assert "unknown owner" in failed(admin("token", "list", "--owner", "ghost", db_path=dbp))
    line = failed(admin("token", "delete", "--owner", "alice", "ab" * 32, db_path=dbp))
    assert "no such token" in line
    failed(admin("token", "add", db_path=dbp), status=2)


def test_provision_commands(dbp: str) -> None:
    ok(
        admin(
            "provision",
            "add",
            "APKEY1",
            "--stoken",
            "STOK",
            "--sdigest",
            "SDIG",
            "--provisioning",
            "some config",
            "--owner",
            "alice",
            "--vehicle",
            "demo",
            db_path=dbp,
        )
    )
    ok(
        admin(
            "provision",
            "add",
            "APKEY0",
            "--stoken",
            "s",
            "--sdigest",
            "d",
            "--provisioning",
            "p",
            db_path=dbp,
        )
    )
    listing = ok(admin("provision", "list", db_path=dbp))
    rows = [line.split("\t") for line in listing.splitlines()]
    assert [r[0] for r in rows] == ["APKEY0", "APKEY1"]
    assert rows[1][1:3] == ["alice", "DEMO"]
    assert "STOK" not in listing
    ok(admin("provision", "delete", "APKEY1", db_path=dbp))
    listing = ok(admin("provision", "list", db_path=dbp))
    assert [line.split("\t")[0] for line in listing.splitlines()] == ["APKEY0"]


def test_provision_errors(dbp: str) -> None:
    args = ["--stoken", "s", "--sdigest", "d", "--provisioning", "p"]
    ok(admin("provision", "add", "K", *args, db_path=dbp))
    assert "already exists" in failed(admin("provision", "add", "K", *args, db_path=dbp))
    line = failed(admin("provision", "add", "K2", *args, "--owner", "ghost", db_path=dbp))
    assert "unknown owner" in line
    assert "unknown provisioning" in failed(admin("provision", "delete", "NOPE", db_path=dbp))
    failed(admin("provision", "add", "K3", "--stoken", "s", db_path=dbp), status=2)


@sqlite_only("a file that is not a database")
def test_text_file_as_db(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("definitely not sqlite\n" * 50)
    line = failed(admin("owner", "list", db_path=path))
    assert "not a database" in line
    assert path.read_text().startswith("definitely not sqlite")


@sqlite_only("a directory given as the database file")
def test_directory_as_db(tmp_path: Path) -> None:
    failed(admin("vehicle", "list", db_path=tmp_path))


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    dbp = tmp_path / "x.db"
    failed(admin(db_path=dbp), status=2)
    failed(admin("frobnicate", db_path=dbp), status=2)
    failed(admin("owner", db_path=dbp), status=2)
    failed(admin("owner", "explode", db_path=dbp), status=2)
    failed(admin("owner", "list", "--bogus", db_path=dbp), status=2)


def test_help_exits_0(tmp_path: Path) -> None:
    result = admin("--help")
    assert result.returncode == 0
    assert "owner" in result.stdout


def test_db_from_environment(empty_db: str) -> None:
    path = empty_db
    ok(admin("owner", "add", "envuser", "--password", "pw", env={"OVMS_RELAY_DB": path}))
    listing = ok(admin("owner", "list", db_path=path))
    assert listing.split("\t")[0] == "envuser"


def test_default_db_name(tmp_path: Path) -> None:
    # run from an empty directory: the default file is created there
    command = [sys.executable, "-m", "tools.admin", "owner", "list"]
    env = dict(os.environ)
    env.pop("OVMS_RELAY_DB", None)
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ovms-relay.db").exists()


def test_owner_passwd_from_flag_and_stdin(dbp: str) -> None:
    """Issue 10 item 12: an owner's password can be reset (flag, or stdin when not a tty)."""

    def works(password: str) -> bool:
        conn = db.connect(dbp)
        try:
            row = conn.execute("SELECT password_hash FROM owners WHERE name='alice'").fetchone()
            return db.verify_password(row[0], password)
        finally:
            conn.close()

    assert ok(admin("owner", "passwd", "alice", "--password", "new-1", db_path=dbp)) == \
        "owner alice password changed\n"
    assert works("new-1") and not works("pw-alice")
    ok(admin("owner", "passwd", "alice", db_path=dbp, stdin="new-2\n"))
    assert works("new-2") and not works("new-1")
    assert "nobody" in failed(admin("owner", "passwd", "nobody", "--password", "x", db_path=dbp))
    failed(admin("owner", "passwd", "alice", "--password", "", db_path=dbp))


def test_vehicle_show_prints_the_carpass(dbp: str) -> None:
    ok(admin("vehicle", "add", "car1", "--owner", "alice", "--carpass", "module-pw", db_path=dbp))
    fields = ok(admin("vehicle", "show", "car1", db_path=dbp)).rstrip("\n").split("\t")
    assert fields[:4] == ["CAR1", "alice", "CAR", "module-pw"]
    assert "CAR2" in failed(admin("vehicle", "show", "car2", db_path=dbp))


def test_token_add_accepts_only_known_permits(dbp: str) -> None:
    """Issue 10 item 15: a typo in --permit is refused with the list of permits."""
    line = failed(admin("token", "add", "--owner", "alice", "--permit", "v2,contrl",
                        db_path=dbp))
    assert "unknown permit contrl" in line and "control" in line and "token.admin" in line
    token = ok(admin("token", "add", "--owner", "alice", "--permit", "V2, control",
                     db_path=dbp)).strip()
    assert len(token) == 64


def test_owner_rename(dbp: str) -> None:
    """Issue 14: ``owner rename OLD NEW`` moves the account with its vehicles and tokens."""
    ok(admin("vehicle", "add", "car1", "--owner", "alice", "--carpass", "s", db_path=dbp))
    ok(admin("token", "add", "--owner", "alice", "--application", "phone", db_path=dbp))
    ok(admin("owner", "add", "bob", "--password", "pw", db_path=dbp))
    assert ok(admin("owner", "rename", "alice", "alina", db_path=dbp)) == \
        "owner alice renamed to alina\n"
    names = [line.split("\t")[0] for line in ok(admin("owner", "list", db_path=dbp)).splitlines()]
    assert names == ["alina", "bob"]
    assert ok(admin("vehicle", "list", db_path=dbp)).split("\t")[:2] == ["CAR1", "alina"]
    assert "phone" in ok(admin("token", "list", "--owner", "alina", db_path=dbp))
    assert "already exists" in failed(admin("owner", "rename", "alina", "bob", db_path=dbp))
    assert "unknown owner" in failed(admin("owner", "rename", "alice", "x", db_path=dbp))
    failed(admin("owner", "rename", "alina", db_path=dbp), status=2)


def test_vehicle_name(dbp: str) -> None:
    """Issue 14: ``vehicle name VID NAME`` sets the display name; list and show print it
    as their last column, so scripts reading the earlier columns keep working."""
    ok(admin("vehicle", "add", "car1", "--owner", "alice", "--carpass", "pw", db_path=dbp))
    rows = ok(admin("vehicle", "list", db_path=dbp)).rstrip("\n").split("\t")
    assert rows[:3] == ["CAR1", "alice", "CAR"] and rows[4] == ""
    assert ok(admin("vehicle", "name", "car1", "Blue Leaf", db_path=dbp)) == \
        "vehicle CAR1 named Blue Leaf\n"
    rows = ok(admin("vehicle", "list", db_path=dbp)).rstrip("\n").split("\t")
    assert rows[:3] == ["CAR1", "alice", "CAR"] and rows[-1] == "Blue Leaf" and len(rows) == 5
    shown = ok(admin("vehicle", "show", "car1", db_path=dbp)).rstrip("\n").split("\t")
    assert shown[:4] == ["CAR1", "alice", "CAR", "pw"] and shown[-1] == "Blue Leaf"
    assert "at most 64" in failed(admin("vehicle", "name", "car1", "x" * 65, db_path=dbp))
    assert "printable" in failed(admin("vehicle", "name", "car1", "a\tb", db_path=dbp))
    assert "unknown vehicle" in failed(admin("vehicle", "name", "nocar", "x", db_path=dbp))
    assert ok(admin("vehicle", "name", "car1", "", db_path=dbp)) == "vehicle CAR1 name cleared\n"
