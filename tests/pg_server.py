"""A real PostgreSQL for the store tests, and a fresh database on it per test.

The server: ``$OVMS_TEST_POSTGRES`` (a ``postgresql://USER[:PW]@HOST[:PORT]/DB`` URL
of a server the tests may create and drop databases on), or else a cluster started
here once per test session (per xdist worker): ``initdb`` + ``pg_ctl`` in a temporary
directory on a free port (~1 s). Tests that restart PostgreSQL always get such a
cluster of their own (:func:`pg_cluster`), never the named server.

Each test's database is ``CREATE DATABASE ... TEMPLATE`` a database migrated once per
session, emptied after the test and handed to the next one, so a fresh, empty,
current schema costs a few milliseconds. Without a server the tests are skipped
with one line saying what is missing, or fail if ``OVMS_REQUIRE_SERVICES=1``.

Fixtures (import them into a test module): ``pg_server``, ``pg_url`` (a fresh
database), ``pg_cluster`` (a server of the test session's own), and ``db_target``:
the ``--db`` value of a fresh database, parametrised over ``sqlite`` and ``postgres``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

from tools.bench_server import free_port

ENV = "OVMS_TEST_POSTGRES"
BINARIES = ("initdb", "pg_ctl")
_SEARCH = "/usr/local/bin:/usr/bin:" + ":".join(
    sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin"))[::-1])


def unavailable(reason: str) -> None:
    if os.environ.get("OVMS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"PostgreSQL required (OVMS_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"no PostgreSQL: {reason} (install postgresql, or set {ENV})")


def with_database(url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def _connect(url: str, timeout: int = 15) -> Any:
    import psycopg

    # Generous: a loaded CI machine (every core busy) can take seconds to connect.
    return psycopg.connect(url, autocommit=True, connect_timeout=timeout)


def reachable(url: str) -> bool:
    try:
        _connect(url, timeout=5).close()
    except Exception:
        return False
    return True


@attrs.define
class Cluster:
    """A PostgreSQL cluster started here (trust authentication, on 127.0.0.1)."""

    root: Path
    port: int
    user: str | None  # the account it runs as, when the tests run as root

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [shutil.which("pg_ctl", path=_SEARCH) or "pg_ctl", "-D",
                   str(self.root / "data"), "-w", "-t", "60", *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=90)

    def _options(self) -> list[str]:
        # fsync off: the tests kill relays, not this server (a restart is a clean one).
        return ["-l", str(self.root / "log"), "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c full_page_writes=off -c max_connections=200"]

    def start(self) -> None:
        self._pg_ctl("start", *self._options())

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        """Stop (closing every connection) and start again on the same port."""
        self._pg_ctl("restart", "-m", "fast", *self._options())


@contextmanager
def own_cluster() -> Iterator[Cluster | None]:
    """A new cluster for as long as the block runs; None if initdb/pg_ctl are missing."""
    initdb = shutil.which("initdb", path=_SEARCH)
    if initdb is None or shutil.which("pg_ctl", path=_SEARCH) is None:
        yield None
        return
    user: str | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None:
            yield None
            return
    root = Path(tempfile.mkdtemp(prefix="ovms-pg-"))
    try:
        command = [initdb, "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--no-sync", "--no-instructions"]
        if user is not None:
            shutil.chown(root, user)
            command = ["runuser", "-u", user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        cluster = Cluster(root, free_port(), user)
        cluster.start()
        try:
            yield cluster
        finally:
            try:
                cluster.stop("immediate")
            except subprocess.SubprocessError:
                pass
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@attrs.define
class PgServer:
    """A server, and a database on it migrated once, the template of every test's.

    A test's database is emptied afterwards (its connections ended, tables it added
    dropped, every row deleted) and handed to the next test: much cheaper than
    ``CREATE``/``DROP DATABASE`` on a server that syncs to disk. One that cannot be
    emptied is dropped."""

    url: str
    template: str
    tables: list[str]  # the template's, in creation order
    cluster: Cluster | None = None
    spare: list[str] = attrs.Factory(list)

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A database with the current schema and no rows: its URL."""
        if self.spare:
            name = self.spare.pop()
        else:
            name = f"ovms_test_{uuid.uuid4().hex[:12]}"
            _admin(self.url, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        try:
            yield with_database(self.url, name)
        finally:
            if self._emptied(with_database(self.url, name)):
                self.spare.append(name)
            else:
                _drop(self.url, name)

    def _emptied(self, url: str) -> bool:
        from relay.store.schema import SCHEMA_VERSION

        try:
            with _connect(url) as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname=current_database() AND pid<>pg_backend_pid()")
                with conn.transaction():
                    for (table,) in conn.execute(_TABLES).fetchall():
                        if table not in self.tables:
                            conn.execute(f'DROP TABLE "{table}" CASCADE')
                    for table in reversed(self.tables):
                        conn.execute(f'DELETE FROM "{table}"')
                    conn.execute("INSERT INTO relay_meta VALUES ('schema_version', %s)",
                                 (str(SCHEMA_VERSION),))
        except Exception:
            return False
        return True

    def drop_spares(self) -> None:
        while self.spare:
            _drop(self.url, self.spare.pop())


_TABLES = ("SELECT table_name FROM information_schema.tables "
           "WHERE table_schema='public' AND table_type='BASE TABLE' ORDER BY table_name")


def _admin(url: str, statement: str) -> None:
    # A connection per statement: a test may have restarted the server meanwhile.
    with _connect(url) as conn:
        conn.execute(statement)


@contextmanager
def _serving(url: str, cluster: Cluster | None = None) -> Iterator[PgServer]:
    from relay.store.postgres import PostgresBackend

    template = f"ovms_template_{uuid.uuid4().hex[:12]}"
    try:
        # A language's collation, as production servers usually have (not "C", which
        # orders as SQLite does): the relay's ordering must not depend on it.
        _admin(url, f'CREATE DATABASE "{template}" TEMPLATE template0 ENCODING \'UTF8\' '
                    "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    except Exception:  # a server without ICU (or before PostgreSQL 15): its default
        _admin(url, f'CREATE DATABASE "{template}"')
    try:
        PostgresBackend(with_database(url, template)).connect().close()
        with _connect(with_database(url, template)) as conn:
            # Creation order, so rows are deleted referencing tables first.
            tables = [r[0] for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind='r' AND relnamespace="
                "'public'::regnamespace ORDER BY oid").fetchall()]
        server = PgServer(url, template, tables, cluster)
        try:
            yield server
        finally:
            server.drop_spares()
    finally:
        _drop(url, template)


def _drop(url: str, name: str) -> None:
    """Cleaning up after the tests: a database left behind on a loaded server is only
    litter (its name is unique), not a failure of the test that ran last."""
    try:
        _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=2)


def _psycopg_missing() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgServer]:
    """A cluster of this session's own (for tests that restart or stop it)."""
    if _psycopg_missing():
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    with own_cluster() as cluster:
        if cluster is None:
            unavailable("initdb/pg_ctl not found or not runnable")
        assert cluster is not None
        with _serving(cluster.url, cluster) as server:
            yield server


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """``$OVMS_TEST_POSTGRES``'s server, or else this session's own cluster."""
    if _psycopg_missing():
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    explicit = os.environ.get(ENV)
    if not explicit:
        yield request.getfixturevalue("pg_cluster")
        return
    if not reachable(explicit):
        from relay.store.engines import redact

        unavailable(f"{ENV}={redact(explicit)} does not answer")
    with _serving(explicit) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh database (current schema, no rows): its ``postgresql://`` URL."""
    with pg_server.fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database's ``--db`` value: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "relay.db")
    url: str = request.getfixturevalue("pg_url")
    return url


def run_sql(target: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement (``?`` placeholders) on a connection of its own, committed, as
    another process would run it on the SQLite file or PostgreSQL URL: its rows."""
    if target.startswith(("postgresql://", "postgres://")):
        from relay.store.postgres import PostgresBackend

        conn = PostgresBackend(target).open_connection()
        try:
            cur = conn.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            conn.close()
    from relay.store import sqlite

    lite = sqlite3.connect(target)
    sqlite.configure(lite)  # stored non-UTF-8 text read back as the store does
    try:
        rows = [tuple(r) for r in lite.execute(sql, params).fetchall()]
        lite.commit()
        return rows
    finally:
        lite.close()


@contextmanager
def writes_blocked(target: str) -> Iterator[None]:
    """While the block runs, another session holds the database's write lock: the
    relay's writes wait (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: every table locked
    ``EXCLUSIVE``, which still lets readers in, as SQLite's WAL does)."""
    if target.startswith(("postgresql://", "postgres://")):
        from relay.store.postgres import PostgresBackend

        conn = PostgresBackend(target).open_connection()
        try:
            tables = ", ".join(f'"{r[0]}"' for r in conn.execute(_TABLES).fetchall())
            conn.execute("BEGIN")
            conn.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
            yield
        finally:
            conn.close()  # rolls back
        return
    lite = sqlite3.connect(target, timeout=5, isolation_level=None)
    try:
        lite.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
    finally:
        lite.close()


def wait_until_reachable(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not reachable(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL at {url} did not come back")
        time.sleep(0.1)
