"""relay.db: schema, secrets handling and the admin functions (real SQLite files, or
PostgreSQL databases under ``OVMS_TEST_STORE=postgres``)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay import db
from relay.db import AdminError, DatabaseError
from tests.conftest import sqlite_only


@pytest.fixture
def conn(empty_db: str) -> Iterator[db.AdminConnection]:
    c = db.connect(empty_db)
    yield c
    c.close()


@pytest.fixture
def owner(conn: db.AdminConnection) -> str:
    db.add_owner(conn, "alice", "s3cret-pw")
    return "alice"


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path))


# --------------------------------------------------------------------------- connect


@sqlite_only("SQLite's pragmas and catalog")
def test_connect_creates_schema_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = db.connect(str(path))
    try:
        assert path.exists()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "owners",
            "vehicles",
            "latest",
            "historical",
            "tokens",
            "push_subscriptions",
            "provisioning",
            "usage",
        } <= tables
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "historical_expires" in indexes
    finally:
        conn.close()


def test_connect_twice_keeps_data(empty_db: str) -> None:
    path = empty_db
    c1 = db.connect(path)
    db.add_owner(c1, "bob", "pw")
    c1.close()
    c2 = db.connect(path)
    assert [o["name"] for o in db.list_owners(c2)] == ["bob"]
    c2.close()


@sqlite_only("a file that is not a database")
def test_connect_text_file_is_database_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, just some text\n" * 20)
    with pytest.raises(DatabaseError) as info:
        db.connect(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert "not a database" in message
    assert path.read_text().startswith("this is not a database")  # untouched


@sqlite_only("a directory given as the database file")
def test_connect_directory_is_database_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError):
        db.connect(str(tmp_path))


@sqlite_only("a SQLite file's user_version")
def test_connect_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    c = raw(path)
    c.execute(f"PRAGMA user_version={db.SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    with pytest.raises(DatabaseError, match="newer"):
        db.connect(str(path))


# --------------------------------------------------------------------------- secrets


def test_hash_and_verify_password() -> None:
    h = db.hash_password("correct horse")
    assert h.startswith("$argon2")
    assert "correct horse" not in h
    assert db.verify_password(h, "correct horse") is True
    assert db.verify_password(h, "wrong") is False
    assert db.verify_password("not-a-hash", "x") is False
    assert db.verify_password("", "") is False


def test_production_argon2_parameters() -> None:
    """Tests hash with a cheap hasher (tests/conftest.py); the server's own, seen from
    an interpreter without the tests' conftest, is argon2id at RFC 9106's low-memory
    profile, and its hashes verify whatever hasher checks them."""
    h = subprocess.run(
        [sys.executable, "-c",
         "from relay.store.passwords import hash_password; print(hash_password('correct horse'))"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert db.verify_password(h, "correct horse") is True
    assert db.verify_password(h, "wrong") is False


@sqlite_only("reads the database file's bytes")
def test_password_not_stored_in_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "pw.db"
    conn = db.connect(str(path))
    db.add_owner(conn, "carol", "PlainTextPassword123")
    stored = conn.execute("SELECT password_hash FROM owners WHERE name='carol'").fetchone()[0]
    conn.close()
    assert stored.startswith("$argon2")
    assert db.verify_password(stored, "PlainTextPassword123")
    for suffix in ("", "-wal"):
        f = Path(str(path) + suffix)
        if f.exists():
            assert b"PlainTextPassword123" not in f.read_bytes()


def test_token_stored_hashed(conn: db.AdminConnection, owner: str) -> None:
    token = db.add_token(conn, owner, application="app", purpose="tests", permit="auth")
    assert len(token) == 64 and int(token, 16) >= 0
    rows = conn.execute("SELECT token_hash, owner, permit FROM tokens").fetchall()
    assert len(rows) == 1
    assert rows[0][0] == db.token_hash(token)
    assert rows[0][0] != token
    assert rows[0][1:] == ("alice", "auth")
    listed = db.list_tokens(conn, owner)
    assert [t["token_hash"] for t in listed] == [db.token_hash(token)]
    assert all(token not in str(v) for t in listed for v in t.values())


def test_two_tokens_differ(conn: db.AdminConnection, owner: str) -> None:
    assert db.add_token(conn, owner) != db.add_token(conn, owner)
    assert len(db.list_tokens(conn, owner)) == 2


# --------------------------------------------------------------------------- owners


def test_owner_add_list_delete(conn: db.AdminConnection) -> None:
    db.add_owner(conn, "zed", "pw1", permissions="read")
    db.add_owner(conn, "amy", "pw2")
    owners = db.list_owners(conn)
    assert [o["name"] for o in owners] == ["amy", "zed"]
    assert owners[1]["permissions"] == "read"
    assert owners[0]["permissions"] == "*"
    assert owners[0]["status"] == 1
    assert all("password_hash" not in o for o in owners)
    db.delete_owner(conn, "zed")
    assert [o["name"] for o in db.list_owners(conn)] == ["amy"]


def test_owner_duplicate(conn: db.AdminConnection, owner: str) -> None:
    with pytest.raises(AdminError, match="already exists"):
        db.add_owner(conn, owner, "other")


def test_owner_bad_name_and_empty_password(conn: db.AdminConnection) -> None:
    with pytest.raises(AdminError):
        db.add_owner(conn, "", "pw")
    with pytest.raises(AdminError):
        db.add_owner(conn, " padded ", "pw")
    with pytest.raises(AdminError, match="password"):
        db.add_owner(conn, "dave", "")
    assert db.list_owners(conn) == []


def test_owner_delete_unknown(conn: db.AdminConnection) -> None:
    with pytest.raises(AdminError, match="unknown owner"):
        db.delete_owner(conn, "nobody")


def test_owner_delete_removes_vehicles_and_data(conn: db.AdminConnection, owner: str) -> None:
    db.add_owner(conn, "other", "pw")
    db.add_vehicle(conn, "CAR1", owner, "cp")
    db.add_vehicle(conn, "KEEP", "other", "cp")
    token = db.add_token(conn, owner)
    db.add_token(conn, "other")
    for vid in ("CAR1", "KEEP"):
        conn.execute(
            "INSERT INTO latest VALUES (?, 'S', 1.0, 0, '', 'x')",
            (vid,),
        )
        conn.execute("INSERT INTO historical VALUES (?, 'T', 1, 2, 3, 'x')", (vid,))
        conn.execute("INSERT INTO usage VALUES (?, '2024-01-01', 1, 2, 3, 4)", (vid,))
    db.delete_owner(conn, owner)
    for table in ("latest", "historical", "usage", "vehicles"):
        ids = [r[0] for r in conn.execute(f"SELECT vehicleid FROM {table}")]
        assert ids == ["KEEP"], table
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM tokens WHERE token_hash=?", (db.token_hash(token),)
        ).fetchone()[0]
        == 0
    )
    assert conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 1


# --------------------------------------------------------------------------- vehicles


def test_vehicle_add_uppercases(conn: db.AdminConnection, owner: str) -> None:
    assert db.add_vehicle(conn, "demo-car_1", owner, "carpass") == "DEMO-CAR_1"
    vehicles = db.list_vehicles(conn)
    assert [v["vehicleid"] for v in vehicles] == ["DEMO-CAR_1"]
    assert vehicles[0]["owner"] == owner
    assert vehicles[0]["vtype"] == "CAR"
    assert vehicles[0]["lastupdate"] is None
    assert "carpass" not in vehicles[0]
    row = db.get_vehicle(conn, "DEMO-CAR_1")
    assert row is not None
    assert row["carpass"] == "carpass"
    assert row["ptoken"] == ""


def test_vehicle_server_type(conn: db.AdminConnection, owner: str) -> None:
    db.add_vehicle(conn, "srv", owner, "cp", vtype="server")
    assert db.list_vehicles(conn)[0]["vtype"] == "SERVER"


def test_vehicle_bad_type(conn: db.AdminConnection, owner: str) -> None:
    with pytest.raises(AdminError, match="type"):
        db.add_vehicle(conn, "V1", owner, "cp", vtype="TRUCK")


def test_vehicle_duplicate_case_insensitive(conn: db.AdminConnection, owner: str) -> None:
    db.add_vehicle(conn, "DEMO", owner, "cp")
    with pytest.raises(AdminError, match="already exists"):
        db.add_vehicle(conn, "demo", owner, "cp2")


def test_vehicle_unknown_owner(conn: db.AdminConnection) -> None:
    with pytest.raises(AdminError, match="unknown owner"):
        db.add_vehicle(conn, "DEMO", "ghost", "cp")


@pytest.mark.parametrize("bad", ["", "has space", "x" * 33, "dot.ted", "ünï", "a/b"])
def test_vehicle_bad_id(conn: db.AdminConnection, owner: str, bad: str) -> None:
    with pytest.raises(AdminError, match="bad vehicle id"):
        db.add_vehicle(conn, bad, owner, "cp")


def test_vehicle_id_max_length_ok(conn: db.AdminConnection, owner: str) -> None:
    assert db.add_vehicle(conn, "a" * 32, owner, "cp") == "A" * 32


def test_vehicle_empty_carpass(conn: db.AdminConnection, owner: str) -> None:
    with pytest.raises(AdminError, match="password"):
        db.add_vehicle(conn, "V1", owner, "")


def test_vehicle_list_by_owner(conn: db.AdminConnection, owner: str) -> None:
    db.add_owner(conn, "bob", "pw")
    db.add_vehicle(conn, "B2", owner, "cp")
    db.add_vehicle(conn, "A1", owner, "cp")
    db.add_vehicle(conn, "C3", "bob", "cp")
    assert [v["vehicleid"] for v in db.list_vehicles(conn, owner)] == ["A1", "B2"]
    assert [v["vehicleid"] for v in db.list_vehicles(conn, "bob")] == ["C3"]
    assert [v["vehicleid"] for v in db.list_vehicles(conn)] == ["A1", "B2", "C3"]
    with pytest.raises(AdminError, match="unknown owner"):
        db.list_vehicles(conn, "ghost")


def test_vehicle_delete(conn: db.AdminConnection, owner: str) -> None:
    db.add_vehicle(conn, "GONE", owner, "cp")
    db.add_vehicle(conn, "STAY", owner, "cp")
    conn.execute("INSERT INTO latest VALUES ('GONE', 'S', 1.0, 0, '', 'x')")
    conn.execute(
        "INSERT INTO push_subscriptions VALUES ('GONE', 'app', ?, 'apns', 'token', 'k', 1, 0, 0)",
        (owner,),
    )
    db.delete_vehicle(conn, "gone")
    assert [v["vehicleid"] for v in db.list_vehicles(conn)] == ["STAY"]
    assert conn.execute("SELECT COUNT(*) FROM latest").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM push_subscriptions").fetchone()[0] == 0


def test_vehicle_delete_unknown_and_bad(conn: db.AdminConnection) -> None:
    with pytest.raises(AdminError, match="unknown vehicle"):
        db.delete_vehicle(conn, "NOPE")
    with pytest.raises(AdminError, match="bad vehicle id"):
        db.delete_vehicle(conn, "no pe")


def test_set_carpass(conn: db.AdminConnection, owner: str) -> None:
    db.add_vehicle(conn, "V1", owner, "old")
    db.set_carpass(conn, "v1", "new")
    row = db.get_vehicle(conn, "V1")
    assert row is not None and row["carpass"] == "new"
    with pytest.raises(AdminError, match="unknown vehicle"):
        db.set_carpass(conn, "V2", "x")
    with pytest.raises(AdminError, match="password"):
        db.set_carpass(conn, "V1", "")


# --------------------------------------------------------------------------- tokens


def test_token_unknown_owner(conn: db.AdminConnection) -> None:
    with pytest.raises(AdminError, match="unknown owner"):
        db.add_token(conn, "ghost")
    with pytest.raises(AdminError, match="unknown owner"):
        db.list_tokens(conn, "ghost")
    with pytest.raises(AdminError, match="unknown owner"):
        db.delete_token(conn, "ghost", "00" * 32)


def test_token_delete(conn: db.AdminConnection, owner: str) -> None:
    t1 = db.add_token(conn, owner)
    t2 = db.add_token(conn, owner)
    db.delete_token(conn, owner, t1)
    assert [t["token_hash"] for t in db.list_tokens(conn, owner)] == [db.token_hash(t2)]
    with pytest.raises(AdminError, match="no such token"):
        db.delete_token(conn, owner, t1)
    # by hash (as shown by list_tokens)
    db.delete_token(conn, owner, db.token_hash(t2))
    assert db.list_tokens(conn, owner) == []


def test_token_delete_other_owner_refused(conn: db.AdminConnection, owner: str) -> None:
    db.add_owner(conn, "mallory", "pw")
    token = db.add_token(conn, owner)
    with pytest.raises(AdminError, match="no such token"):
        db.delete_token(conn, "mallory", token)
    assert len(db.list_tokens(conn, owner)) == 1


# --------------------------------------------------------------------------- provisioning


def test_provision_add_list_delete(conn: db.AdminConnection, owner: str) -> None:
    db.add_provision(conn, "KEY1", "stok", "sdig", "config text", owner=owner, vehicleid="car9")
    db.add_provision(conn, "KEY0", "s", "d", "p")
    listed = db.list_provisions(conn)
    assert [p["apkey"] for p in listed] == ["KEY0", "KEY1"]
    assert listed[1]["owner"] == owner
    assert listed[1]["vehicleid"] == "CAR9"
    assert all("stoken" not in p for p in listed)
    full = db.get_provision(conn, "KEY1")
    assert full is not None
    assert (full["stoken"], full["sdigest"], full["provisioning"]) == (
        "stok",
        "sdig",
        "config text",
    )
    db.delete_provision(conn, "KEY1")
    assert [p["apkey"] for p in db.list_provisions(conn)] == ["KEY0"]


def test_provision_errors(conn: db.AdminConnection, owner: str) -> None:
    db.add_provision(conn, "K", "s", "d", "p")
    with pytest.raises(AdminError, match="already exists"):
        db.add_provision(conn, "K", "s", "d", "p")
    with pytest.raises(AdminError, match="unknown owner"):
        db.add_provision(conn, "K2", "s", "d", "p", owner="ghost")
    with pytest.raises(AdminError, match="bad vehicle id"):
        db.add_provision(conn, "K3", "s", "d", "p", vehicleid="bad id")
    with pytest.raises(AdminError, match="unknown provisioning"):
        db.delete_provision(conn, "NOPE")
    with pytest.raises(AdminError):
        db.add_provision(conn, "", "s", "d", "p")


def test_admin_error_messages_are_one_line(conn: db.AdminConnection) -> None:
    for call in (
        lambda: db.delete_owner(conn, "x\ny"),
        lambda: db.add_vehicle(conn, "a\nb", "x", "y"),
    ):
        with pytest.raises(AdminError) as info:
            call()
        assert "\n" not in str(info.value)


def test_failed_admin_call_leaves_no_transaction(conn: db.AdminConnection, owner: str) -> None:
    db.add_vehicle(conn, "V1", owner, "cp")
    with pytest.raises(AdminError):
        db.add_vehicle(conn, "V1", owner, "cp")
    assert not conn.in_transaction
    db.add_vehicle(conn, "V2", owner, "cp")  # the connection is still usable


def test_lists_are_in_code_point_order_on_every_engine(conn: db.AdminConnection) -> None:
    """Lists come in the order SQLite gives (code points), also from a PostgreSQL whose
    collation is a language's (the test databases' is en-US): punctuation and case
    count, as for a byte-wise comparison."""
    names = ["alice", "Bob", "_carol", "dave-x", "dave_x", "davex", "Émile"]
    for name in names:
        db.add_owner(conn, name, "pw")
    assert [o["name"] for o in db.list_owners(conn)] == sorted(names)
    vehicles = ["A-1", "A_1", "A1", "AB", "a2"]
    for vehicleid in vehicles:
        db.add_vehicle(conn, vehicleid, "alice", "cp")
    assert [v["vehicleid"] for v in db.list_vehicles(conn)] == sorted(v.upper() for v in vehicles)
