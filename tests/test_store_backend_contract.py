"""Issue 11 (store with a backend seam): what every ``relay.store.backend.Backend`` must do.

Each test takes the ``backend`` fixture, parametrised over every engine (SQLite, and
PostgreSQL from ``tests.pg_server``): each must pass the same tests unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.store import schema
from relay.store.backend import Backend, Connection
from relay.store.engines import backend_for
from relay.store.errors import DatabaseError

BAD = b"a\xff\xfe\xe9z".decode("utf-8", "surrogateescape")  # text that is not UTF-8


@pytest.fixture
def backend(db_target: str) -> Backend:
    return backend_for(db_target)


@pytest.fixture
def conn(backend: Backend) -> Iterator[Connection]:
    connection = backend.connect()
    yield connection
    connection.close()


def test_connect_creates_the_schema_at_the_current_version(conn: Connection) -> None:
    assert conn.schema_version() == schema.SCHEMA_VERSION
    core = ("owners", "vehicles", "tokens", "provisioning")
    for table in (*core, *schema.VEHICLE_DATA_TABLES):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def test_migrate_is_idempotent_and_refuses_a_newer_database(
    backend: Backend, conn: Connection
) -> None:
    schema.migrate(conn)
    again = backend.connect()
    again.close()
    conn.set_schema_version(schema.SCHEMA_VERSION + 1)
    with pytest.raises(DatabaseError, match="newer than this program supports"):
        backend.connect()


def test_upsert_inserts_updates_and_adds(conn: Connection) -> None:
    sql = conn.upsert_sql("usage", ("vehicleid", "day"),
                          ("vehicleid", "day", "car_rx", "car_tx", "app_rx", "app_tx"),
                          add=("car_rx", "car_tx", "app_rx", "app_tx"))
    with conn.transaction():
        conn.executemany(sql, [("V", "2026-01-01", 1, 2, 3, 4), ("V", "2026-01-01", 10, 0, 0, 1)])
    row = conn.execute("SELECT car_rx, car_tx, app_rx, app_tx FROM usage").fetchone()
    assert tuple(row) == (11, 2, 3, 5)
    replace = conn.upsert_sql("v4_trip_state", ("vehicleid",), ("vehicleid", "state", "updated"))
    with conn.transaction():
        conn.execute(replace, ("V", "{}", 1.0))
        conn.execute(replace, ("V", '{"a":1}', 2.0))
    assert [tuple(r) for r in conn.execute("SELECT * FROM v4_trip_state")] == [
        ("V", '{"a":1}', 2.0)]


def test_delete_some_is_bounded(conn: Connection) -> None:
    with conn.transaction():
        conn.executemany("INSERT INTO historical VALUES (?, ?, ?, ?, ?, ?)",
                         [("V", "T", n, n, n, "x") for n in range(10)])
    sql = conn.delete_some_sql("historical", "expires<?")
    with conn.transaction():
        assert conn.execute(sql, (8, 5)).rowcount == 5
    with conn.transaction():
        assert conn.execute(sql, (8, 5)).rowcount == 3
    assert conn.execute("SELECT COUNT(*) FROM historical").fetchone()[0] == 2


def test_text_that_is_not_utf8_round_trips_in_values_and_lookups(conn: Connection) -> None:
    """The one rule for peer text: stored and returned losslessly, found by equality,
    measured in the bytes the peer sent."""
    with conn.transaction():
        conn.execute("INSERT INTO historical VALUES (?, ?, ?, ?, ?, ?)",
                     (BAD, BAD, 1, 2, 3, BAD + "é"))
    row = conn.execute(
        f"SELECT vehicleid, htype, data, {conn.octet_length('data')} FROM historical "
        "WHERE vehicleid=? AND htype=?", (BAD, BAD)).fetchone()
    assert tuple(row) == (BAD, BAD, BAD + "é", 5 + 2)
    assert conn.execute("SELECT COUNT(*) FROM historical WHERE htype=?",
                        ("a",)).fetchone()[0] == 0


def test_transaction_rolls_back_on_error_and_savepoints_lose_only_themselves(
    conn: Connection,
) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('A', 'd')")
        raise RuntimeError("abort")
    assert not conn.in_transaction
    with conn.transaction():
        conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('B', 'd')")
        with pytest.raises(Exception), conn.savepoint():  # noqa: B017 (any engine's error)
            conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('C', 'd')")
            conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('C', 'd')")
        conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('D', 'd')")
    assert [r[0] for r in conn.execute("SELECT vehicleid FROM usage ORDER BY vehicleid")] == [
        "B", "D"]


def test_a_constraint_error_is_not_transient(conn: Connection) -> None:
    with pytest.raises(Exception) as caught, conn.transaction():
        conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('A', 'd')")
        conn.execute("INSERT INTO usage(vehicleid, day) VALUES ('A', 'd')")
    assert not conn.is_transient(caught.value)
    assert conn.is_transient(OSError("disk I/O error"))


def test_readers_see_commits_and_cannot_write(backend: Backend, conn: Connection) -> None:
    if not backend.separate_readers:
        pytest.skip("this backend has no separate readers")
    reader = backend.connect_reader()
    try:
        with conn.transaction():
            conn.execute("INSERT INTO usage(vehicleid, day) VALUES (?, 'd')", (BAD,))
        assert reader.execute("SELECT vehicleid FROM usage").fetchone()[0] == BAD
        with pytest.raises(Exception):  # noqa: B017
            reader.execute("DELETE FROM usage")
    finally:
        reader.close()


def test_rows_by_name(conn: Connection) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO usage(vehicleid, day, car_rx) VALUES ('A', 'd', 7)")
    row = conn.execute("SELECT vehicleid, car_rx FROM usage").fetchone()
    assert dict(row) == {"vehicleid": "A", "car_rx": 7}
