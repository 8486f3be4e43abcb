"""SQLite: today's (and the default) implementation of ``relay.store.backend``.

Connections run in autocommit mode (``isolation_level=None``); every write goes
through :meth:`SQLiteConnection.transaction`, so transaction boundaries are
explicit. The writer uses WAL mode, so read-only connections never wait for it.

Text that is not valid UTF-8 (lone surrogates from ``surrogateescape``) cannot
be bound as TEXT: it is stored as its exact original bytes in a BLOB, and every
BLOB read back is decoded the same way. The schema has no BLOB columns, so a
BLOB always means such text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from relay.store import schema
from relay.store.backend import one_line, upsert_sql
from relay.store.errors import DatabaseError


def encode_text(value: Any) -> Any:
    """A parameter as SQLite can bind it (see the module docstring)."""
    if type(value) is str and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value


def _params(params: Sequence[Any]) -> Sequence[Any]:
    for value in params:
        if type(value) is str and not value.isascii():
            return tuple(encode_text(v) for v in params)
    return params


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> sqlite3.Row:
    for value in row:
        if type(value) is bytes:
            row = tuple(v.decode("utf-8", "surrogateescape") if type(v) is bytes else v
                        for v in row)
            break
    return sqlite3.Row(cursor, row)


def configure(conn: sqlite3.Connection) -> None:
    """Rows as ``sqlite3.Row``, with stored non-UTF-8 text decoded (see the module docstring)."""
    conn.row_factory = _row


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolling back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                # SQLite has rolled back by itself (e.g. after SQLITE_FULL); the
                # original error is the one worth reporting.
                pass
        raise


class _SQLiteDialect:
    def upsert_sql(self, table: str, key: Sequence[str], columns: Sequence[str], *,
                   update: Sequence[str] | None = None, add: Sequence[str] = ()) -> str:
        return upsert_sql(table, key, columns, update=update, add=add)

    def delete_some_sql(self, table: str, where: str) -> str:
        return (f"DELETE FROM {table} WHERE rowid IN "
                f"(SELECT rowid FROM {table} WHERE {where} LIMIT ?)")

    def octet_length(self, column: str) -> str:
        return f"LENGTH(CAST({column} AS BLOB))"

    def schema_sql(self, statement: str) -> str:
        return statement

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.OperationalError | OSError | MemoryError):
            return True
        return type(exc) is sqlite3.DatabaseError  # e.g. corruption detected, I/O


class SQLiteConnection(_SQLiteDialect):
    """A ``sqlite3`` connection as a ``relay.store.backend.Connection``."""

    __slots__ = ("raw",)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, _params(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.raw.executemany(sql, (_params(r) for r in rows))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with transaction(self.raw):
            yield

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self.raw.execute("SAVEPOINT op")
        try:
            yield
        except BaseException:
            if self.raw.in_transaction:
                try:
                    self.raw.execute("ROLLBACK TO op")
                    self.raw.execute("RELEASE op")
                except sqlite3.Error:
                    pass  # SQLite rolled the whole transaction back by itself
            raise
        self.raw.execute("RELEASE op")

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()

    def schema_version(self) -> int:
        return int(self.raw.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.raw.execute(f"PRAGMA user_version={int(version)}")


def _open(path: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseError(f"cannot open database {path!r}: {one_line(exc)}") from None
    configure(conn)
    return conn


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and ensure the schema exists.

    The connection may be used from any one thread at a time.
    """
    conn = _open(path)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        schema.migrate(SQLiteConnection(conn))
    except (sqlite3.Error, OSError, DatabaseError) as exc:
        conn.close()
        if isinstance(exc, DatabaseError):
            raise
        raise DatabaseError(f"cannot open database {path!r}: {one_line(exc)}") from None
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to a database :func:`connect` has set up."""
    conn = _open(path)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(f"cannot open database {path!r}: {one_line(exc)}") from None
    return conn


class SQLiteBackend(_SQLiteDialect):
    """The database file at ``path`` (or ``:memory:``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return self.path

    @property
    def separate_readers(self) -> bool:
        # An in-memory database exists only in its one connection.
        return not (self.path == ":memory:" or self.path.startswith("file:"))

    def connect(self) -> SQLiteConnection:
        return SQLiteConnection(connect(self.path))

    def connect_reader(self) -> SQLiteConnection:
        return SQLiteConnection(connect_reader(self.path))
