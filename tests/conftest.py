"""Shared fixtures: a real relay on an ephemeral port with a real database.

The database is a SQLite file, or with ``OVMS_TEST_STORE=postgres`` a fresh
PostgreSQL database (``tests/pg_server.py``) for every test that asks for one
(:func:`relay_db`, :func:`empty_db`, and the fixtures built on them: ``relay``,
``start_relay``). Under ``postgres``, tests without such a database are deselected (the
SQLite pass runs them), as are those parametrised over both engines (``db_target``: the
SQLite pass runs both) or asking for a PostgreSQL database of their own (``pg_url``: they
ran on it in the SQLite pass), and tests marked ``sqlite_only`` (about SQLite files
themselves: backup, old files, locks, a full disk) are skipped with their reason.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import argon2
import attrs
import pytest
import trio

from protocol import ClientType
from relay import db
from relay.app import RelayHandle, run_relay
from relay.config import Config
from relay.store import passwords
from relay.store.engines import is_postgres
from tests.nats_server import bus
from tests.pg_server import PgServer, db_target, pg_cluster, pg_server, pg_url, run_sql
from tools.v2client import V2Client

__all__ = ["bus", "db_target", "pg_cluster", "pg_server", "pg_url"]  # fixtures, for every test

STORE_ENV = "OVMS_TEST_STORE"
STORES = ("sqlite", "postgres")
STORE = os.environ.get(STORE_ENV) or "sqlite"
ON_POSTGRES = STORE == "postgres"
# A test using one of these (directly or through another fixture) runs on the chosen store.
DATABASE_FIXTURES = ("relay_db", "module_relay_db", "empty_db")

OWNER, PASSWORD = "demo", "demopass"
VEHICLES = {"DEMO": "DEMO", "TESTCAR": "NETPASS"}
# The update age an app gets at login for a vehicle that never reported: the public
# server's TIMEDIFF from its default 1900-01-01 stops at MySQL's largest TIME, 838:59:59.
T_NEVER = "T3020399"

# Argon2 at its cheapest in this test process: at the production cost (64 MiB, three
# passes, ~0.2 s a hash) hashing and checking test passwords was a quarter of the
# suite's time. Stored hashes carry their parameters, so relays started as
# subprocesses check the test database's passwords cheaply too. The production
# parameters stay checked (tests/test_db.py::test_production_argon2_parameters).
passwords._hasher = argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


def make_db(path: Path | str) -> None:
    """The test accounts in a SQLite file or a PostgreSQL database (its URL)."""
    conn = db.connect(str(path))
    try:
        db.add_owner(conn, OWNER, PASSWORD)
        for vehicleid, carpass in VEHICLES.items():
            db.add_vehicle(conn, vehicleid, OWNER, carpass)
        db.add_owner(conn, "other", "otherpass")
        db.add_vehicle(conn, "OTHERCAR", "other", "OTHERPASS")
    finally:
        conn.close()


def pytest_configure(config: pytest.Config) -> None:
    if STORE not in STORES:
        raise pytest.UsageError(f"{STORE_ENV}={STORE!r}: use one of {', '.join(STORES)}")
    config.addinivalue_line(
        "markers", "sqlite_only(reason): about SQLite files themselves; skipped under "
        f"{STORE_ENV}=postgres")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers a core. Most tests spend their time waiting on sockets,
    relay subprocesses and services, so a core runs a second worker while one waits
    (on 2 cores, 4 workers took the suite from 145 s to 90 s)."""
    return 2 * len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ON_POSTGRES:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        names = getattr(item, "fixturenames", ())
        # db_target's tests already ran on both engines in the SQLite pass, and those
        # asking for a PostgreSQL database of their own (pg_url: the cluster tests, whose
        # relays all run on it) ran on PostgreSQL there.
        if ("db_target" in names or "pg_url" in names
                or not any(n in names for n in DATABASE_FIXTURES)):
            dropped.append(item)
            continue
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "about SQLite files"
            # A plain skip, not a missing service: OVMS_REQUIRE_SERVICES leaves it alone.
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def sqlite_only(reason: str) -> pytest.MarkDecorator:
    """Mark a test (or ``pytestmark`` a module) as about SQLite files themselves."""
    return pytest.mark.sqlite_only(reason)


@attrs.define
class RelayUnderTest:
    handle: RelayHandle
    config: Config
    # The --db value: a SQLite file's path (a Path is taken too) or a PostgreSQL URL.
    db: str = attrs.field(converter=str)

    @property
    def db_path(self) -> Path:
        """The SQLite file (only in tests marked ``sqlite_only``)."""
        assert not is_postgres(self.db), "a SQLite-only test: mark it sqlite_only"
        return Path(self.db)

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """One statement (``?`` placeholders) on a connection of its own, committed, as
        another process would run it: its rows."""
        return run_sql(self.db, statement, *params)

    async def connect(
        self,
        vehicleid: str = "DEMO",
        client_type: ClientType = ClientType.APP,
        carpass: str | None = None,
        **kwargs: Any,
    ) -> V2Client:
        if carpass is None and "username" not in kwargs:
            carpass = VEHICLES.get(vehicleid, "?")
        return await V2Client.connect(
            "127.0.0.1", self.handle.v2_port, vehicleid,
            client_type=client_type, carpass=carpass, **kwargs,
        )

    async def car(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.CAR, **kwargs)

    async def app(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.APP, **kwargs)

    async def batch(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.BATCH, **kwargs)

    async def raw(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.handle.v2_port)


StartRelay = Callable[..., Any]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test accounts' database, made once: each owner costs a (deliberately slow)
    Argon2 hash, and nearly every test starts its own relay."""
    path = tmp_path_factory.mktemp("template") / "relay.db"
    make_db(path)
    return path


def copy_db(template: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copyfile(source, target.with_name(target.name + suffix))


def copy_rows(template: Path, url: str) -> None:
    """The template's accounts into a fresh PostgreSQL database (no Argon2 hashing)."""
    from relay.store.postgres import PostgresBackend

    lite = sqlite3.connect(template)
    conn = PostgresBackend(url).open_connection()
    try:
        with conn.transaction():
            for table in ("owners", "vehicles"):
                cur = lite.execute(f"SELECT * FROM {table}")
                columns = [d[0] for d in cur.description]
                conn.executemany(
                    f"INSERT INTO {table}({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})", cur.fetchall())
    finally:
        conn.close()
        lite.close()


@pytest.fixture
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database's ``--db`` value, without rows: a SQLite file's path (not made
    yet), or under ``OVMS_TEST_STORE=postgres`` a PostgreSQL database's URL."""
    if ON_POSTGRES:
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "relay.db")


@contextmanager
def accounts_db(request: pytest.FixtureRequest, folder: Path, template: Path) -> Iterator[str]:
    """A fresh database with the test accounts (:func:`make_db`): its ``--db`` value."""
    if ON_POSTGRES:
        server: PgServer = request.getfixturevalue("pg_server")
        with server.fresh_database() as url:
            copy_rows(template, url)
            yield url
        return
    path = folder / "relay.db"
    copy_db(template, path)
    yield str(path)


@pytest.fixture
def relay_db(request: pytest.FixtureRequest, tmp_path: Path, template_db: Path
             ) -> Iterator[str]:
    """A fresh database with the test accounts, for one test."""
    with accounts_db(request, tmp_path, template_db) as target:
        yield target


@pytest.fixture(scope="module")
def module_relay_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    template_db: Path) -> Iterator[str]:
    """A fresh database with the test accounts, shared by a module's tests."""
    with accounts_db(request, tmp_path_factory.mktemp("module"), template_db) as target:
        yield target


@pytest.fixture
async def start_relay(nursery: trio.Nursery, relay_db: str) -> AsyncIterator[StartRelay]:
    """Start a relay with optional config overrides; stopped when the test ends. Every
    relay a test starts uses the same database (:func:`relay_db`) unless given ``db``."""

    async def start(**overrides: Any) -> RelayUnderTest:
        config = Config(db=relay_db, host="127.0.0.1", v2_port=0, http_port=0,
                        sweep_interval=0.05)
        config = attrs.evolve(config, **overrides)
        handle: RelayHandle = await nursery.start(run_relay, config)
        return RelayUnderTest(handle, config, config.db)

    yield start


@pytest.fixture
async def relay(start_relay: StartRelay) -> RelayUnderTest:
    result: RelayUnderTest = await start_relay()
    return result
