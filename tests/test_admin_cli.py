"""The ``ovms-admin`` command-line contract, run as a real subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from relay import db

ROOT = Path(__file__).resolve().parent.parent


def admin(
    *args: str, db_path: Path | None = None, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tools.admin"]
    if db_path is not None:
        command += ["--db", str(db_path)]
    full_env = dict(os.environ)
    full_env.pop("OVMS_RELAY_DB", None)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        input=stdin,
        timeout=60,
    )


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
def dbp(tmp_path: Path) -> Path:
    path = tmp_path / "admin.db"
    ok(admin("owner", "add", "alice", "--password", "pw-alice", db_path=path))
    return path


def test_owner_commands(dbp: Path) -> None:
    out = ok(admin("owner", "add", "bob", "--password", "pw", "--permissions", "read", db_path=dbp))
    assert out.strip() and len(out.splitlines()) == 1
    listing = ok(admin("owner", "list", db_path=dbp)).splitlines()
    assert [line.split("\t")[0] for line in listing] == ["alice", "bob"]
    assert "read" in listing[1]
    ok(admin("owner", "delete", "bob", db_path=dbp))
    listing = ok(admin("owner", "list", db_path=dbp)).splitlines()
    assert [line.split("\t")[0] for line in listing] == ["alice"]


def test_owner_password_is_hashed(dbp: Path) -> None:
    conn = db.connect(str(dbp))
    row = db.get_owner(conn, "alice")
    conn.close()
    assert row is not None
    assert row["password_hash"] != "pw-alice"
    assert db.verify_password(row["password_hash"], "pw-alice")


def test_owner_password_from_stdin(dbp: Path) -> None:
    ok(admin("owner", "add", "carol", "--password", "-", db_path=dbp, stdin="from-stdin\n"))
    conn = db.connect(str(dbp))
    row = db.get_owner(conn, "carol")
    conn.close()
    assert row is not None and db.verify_password(row["password_hash"], "from-stdin")


def test_owner_errors(dbp: Path) -> None:
    assert "already exists" in failed(
        admin("owner", "add", "alice", "--password", "x", db_path=dbp)
    )
    assert "unknown owner" in failed(admin("owner", "delete", "ghost", db_path=dbp))
    failed(admin("owner", "add", "nopw", db_path=dbp), status=2)


def test_vehicle_commands(dbp: Path) -> None:
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
    conn = db.connect(str(dbp))
    row = db.get_vehicle(conn, "DEMO")
    conn.close()
    assert row is not None and row["carpass"] == "NEWSECRET"

    ok(admin("vehicle", "delete", "DEMO", db_path=dbp))
    listing = ok(admin("vehicle", "list", db_path=dbp))
    assert [line.split("\t")[0] for line in listing.splitlines()] == ["BOBCAR", "SRV1"]


def test_vehicle_errors(dbp: Path) -> None:
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


def test_vehicle_type_case_insensitive(dbp: Path) -> None:
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


def test_token_commands(dbp: Path) -> None:
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
    conn = sqlite3.connect(str(dbp))
    stored = [r[0] for r in conn.execute("SELECT token_hash FROM tokens")]
    conn.close()
    assert stored == [db.token_hash(token)]

    ok(admin("token", "delete", "--owner", "alice", token, db_path=dbp))
    assert ok(admin("token", "list", "--owner", "alice", db_path=dbp)) == ""


def test_token_errors(dbp: Path) -> None:
    assert "unknown owner" in failed(admin("token", "add", "--owner", "ghost", db_path=dbp))
    assert "unknown owner" in failed(admin("token", "list", "--owner", "ghost", db_path=dbp))
    line = failed(admin("token", "delete", "--owner", "alice", "ab" * 32, db_path=dbp))
    assert "no such token" in line
    failed(admin("token", "add", db_path=dbp), status=2)


def test_provision_commands(dbp: Path) -> None:
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


def test_provision_errors(dbp: Path) -> None:
    args = ["--stoken", "s", "--sdigest", "d", "--provisioning", "p"]
    ok(admin("provision", "add", "K", *args, db_path=dbp))
    assert "already exists" in failed(admin("provision", "add", "K", *args, db_path=dbp))
    line = failed(admin("provision", "add", "K2", *args, "--owner", "ghost", db_path=dbp))
    assert "unknown owner" in line
    assert "unknown provisioning" in failed(admin("provision", "delete", "NOPE", db_path=dbp))
    failed(admin("provision", "add", "K3", "--stoken", "s", db_path=dbp), status=2)


def test_text_file_as_db(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("definitely not sqlite\n" * 50)
    line = failed(admin("owner", "list", db_path=path))
    assert "not a database" in line
    assert path.read_text().startswith("definitely not sqlite")


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


def test_db_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    ok(admin("owner", "add", "envuser", "--password", "pw", env={"OVMS_RELAY_DB": str(path)}))
    assert path.exists()
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
