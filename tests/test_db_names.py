"""Owner renaming and vehicle names in the admin API (relay.db), on real databases.

Issue 14 (operators rename owners and vehicles): ``rename_owner`` must carry every
row that names the owner. The tables are read from the migrated database itself, so
a table with an ``owner`` column added later and not renamed fails here.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest

from relay import db
from relay.store import schema
from relay.store.sqlite import SQLiteConnection
from tests.conftest import sqlite_only
from tests.old_databases import sqlite_at_version

_FILLER = {"TEXT": "x", "INTEGER": 1, "REAL": 1.0}


def _tables(conn: db.AdminConnection) -> list[str]:
    if isinstance(conn, sqlite3.Connection):
        sql = "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = ("SELECT table_name FROM information_schema.tables "
               "WHERE table_schema='public' AND table_type='BASE TABLE'")
    return [r[0] for r in conn.execute(sql)]


@attrs.frozen
class Column:
    name: str
    type: str  # as the schema writes it: TEXT, INTEGER or REAL
    needs_value: bool  # NOT NULL without a default
    pk: bool


_PG_TYPES = {"text": "TEXT", "bigint": "INTEGER", "double precision": "REAL"}


def _columns(conn: db.AdminConnection, table: str) -> list[Column]:
    """The live schema's columns of ``table`` (SQLite's catalog or PostgreSQL's)."""
    if isinstance(conn, sqlite3.Connection):
        return [Column(c["name"], c["type"].upper(),
                       bool(c["notnull"]) and c["dflt_value"] is None, bool(c["pk"]))
                for c in conn.execute(f"PRAGMA table_info({table})")]
    pk = {r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary",
        (table,))}
    return [Column(name, _PG_TYPES[dtype], nullable == "NO" and default is None, name in pk)
            for name, dtype, nullable, default in conn.execute(
                "SELECT column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema='public' "
                "AND table_name=? ORDER BY ordinal_position", (table,))]


def owner_columns(conn: db.AdminConnection) -> list[tuple[str, str]]:
    """Every (table, column) of the live schema that holds an owner's name."""
    found = [("owners", "name")]
    for table in _tables(conn):
        for column in _columns(conn, table):
            if column.name == "owner" or column.name.endswith("_owner"):
                found.append((table, column.name))
    return found


def insert_row(conn: db.AdminConnection, table: str, values: dict[str, object]) -> None:
    """A row with ``values`` and filler in every other column that needs a value."""
    row = dict(values)
    for column in _columns(conn, table):
        if column.name not in row and column.needs_value:
            row[column.name] = _FILLER[column.type]
            if column.pk:
                row[column.name] = f"{table}-{column.name}" if column.type == "TEXT" else 7
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {table}({names}) VALUES ({marks})", tuple(row.values()))


@pytest.fixture
def conn(empty_db: str) -> db.AdminConnection:
    c = db.connect(empty_db)
    db.add_owner(c, "alice", "pw-alice", "auth,v4")
    db.add_owner(c, "bob", "pw-bob")
    db.add_vehicle(c, "CAR1", "alice", "carpass")
    return c


def test_rename_owner_carries_every_owner_column(conn: db.AdminConnection) -> None:
    """Issue 14: every table with an owner column, as the schema has it, is renamed."""
    columns = owner_columns(conn)
    # The schema's own list is what rename_owner uses; the live schema must not hold more.
    logins = {(table, "owner") for table in schema.LOGIN_TABLES}
    assert set(columns) == {("owners", "name"), *schema.OWNER_COLUMNS, *logins}
    with db.transaction(conn):
        for table, column in columns:
            if table not in ("owners", "vehicles"):
                insert_row(conn, table, {column: "alice"})
    token = db.add_token(conn, "alice", "phone")
    for table, column in columns:
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}='alice'"
                            ).fetchone()[0] >= 1, table

    db.rename_owner(conn, "alice", "alina")

    for table, column in columns:
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}='alice'"
                            ).fetchone()[0] == 0, table
        renamed = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}='alina'"
                               ).fetchone()[0]
        assert renamed == 0 if (table, column) in logins else renamed >= 1, table
    owner = db.get_owner(conn, "alina")
    assert owner is not None and owner["permissions"] == "auth,v4"
    assert db.verify_password(owner["password_hash"], "pw-alice")
    assert db.get_owner(conn, "alice") is None
    assert [v["vehicleid"] for v in db.list_vehicles(conn, "alina")] == ["CAR1"]
    assert "phone" in [t["application"] for t in db.list_tokens(conn, "alina")]
    db.delete_token(conn, "alina", token)
    if isinstance(conn, sqlite3.Connection):  # PostgreSQL checks them on every write
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_rename_owner_refusals_change_nothing(conn: db.AdminConnection) -> None:
    before = conn.execute("SELECT * FROM owners ORDER BY name").fetchall()
    with pytest.raises(db.AdminError, match="already exists"):
        db.rename_owner(conn, "alice", "bob")
    with pytest.raises(db.AdminError, match="unknown owner"):
        db.rename_owner(conn, "nobody", "new")
    with pytest.raises(db.AdminError, match="bad owner name"):
        db.rename_owner(conn, "alice", "new\tname")
    with pytest.raises(db.AdminError, match="bad owner name"):
        db.rename_owner(conn, "alice", "")
    with pytest.raises(db.AdminError, match="already has"):
        db.rename_owner(conn, "alice", "alice")
    assert conn.execute("SELECT * FROM owners ORDER BY name").fetchall() == before
    assert db.get_vehicle(conn, "CAR1")["owner"] == "alice"  # type: ignore[index]


def test_vehicle_name_is_validated_and_stored(conn: db.AdminConnection) -> None:
    assert db.get_vehicle(conn, "CAR1")["name"] == ""  # type: ignore[index]
    assert db.set_vehicle_name(conn, "car1", "  Blue Leaf  ") == "Blue Leaf"
    assert db.get_vehicle(conn, "CAR1")["name"] == "Blue Leaf"  # type: ignore[index]
    assert db.set_vehicle_name(conn, "CAR1", "ü" * 64) == "ü" * 64
    with pytest.raises(db.AdminError, match="at most 64"):
        db.set_vehicle_name(conn, "CAR1", "ü" * 65)
    for bad in ("tab\there", "new\nline", "bell\x07", "del\x7f", "lone\udcff"):
        with pytest.raises(db.AdminError, match="printable"):
            db.set_vehicle_name(conn, "CAR1", bad)
    with pytest.raises(db.AdminError, match="unknown vehicle"):
        db.set_vehicle_name(conn, "NOCAR", "x")
    # An owner's own change: only for their vehicle.
    with pytest.raises(db.AdminError, match="unknown vehicle"):
        db.set_vehicle_name(conn, "CAR1", "mine", owner="bob")
    assert db.set_vehicle_name(conn, "CAR1", "ours", owner="alice") == "ours"
    assert [v["name"] for v in db.list_vehicles(conn)] == ["ours"]
    assert db.set_vehicle_name(conn, "CAR1", "") == ""


@sqlite_only("a SQLite file made by an older version")
def test_version_4_database_gets_the_name_column(tmp_path: Path) -> None:
    """A database made before names (schema version 4) is upgraded in place."""
    path = tmp_path / "v4.db"
    with sqlite_at_version(path, 4) as raw:
        raw.execute("INSERT INTO owners(name, password_hash, created) VALUES ('old', 'h', 0)")
        raw.execute("INSERT INTO vehicles(vehicleid, owner, carpass, created) "
                    "VALUES ('OLDCAR', 'old', 'pw', 0)")
    conn = db.connect(str(path))
    assert SQLiteConnection(conn).schema_version() == schema.SCHEMA_VERSION
    assert db.get_vehicle(conn, "OLDCAR")["name"] == ""  # type: ignore[index]
    conn.close()
