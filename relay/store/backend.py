"""The store's seam to a database engine: what the store and its repositories need.

Repositories (``relay.store.accounts`` ... ``relay.store.v4rows``) write their SQL
once, against these interfaces, with ``?`` placeholders and the ``INSERT ... ON
CONFLICT ... DO UPDATE`` upsert both SQLite and PostgreSQL speak. Whatever
differs between engines is a method here, so a second engine (PostgreSQL) is one
new module implementing :class:`Backend` and :class:`Connection`, like
``relay.store.sqlite`` does for SQLite and ``relay.store.postgres`` for PostgreSQL
(``relay.store.engines`` picks one for a ``--db`` value).

Text a peer can fill (message data, codes, ids, push keys, ...) may carry bytes
that are not UTF-8, held as lone surrogates (``surrogateescape``, see
``protocol.messages``). A backend stores and returns every such text losslessly:
that is one rule, applied by the connection to every parameter and every value
read, not per column by the repositories.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Cursor(Protocol):
    """The result of one statement (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...

    @property
    def description(self) -> Any:
        """Per result column a sequence whose first item is the column's name."""
        ...

    def __iter__(self) -> Iterator[Any]: ...


class Dialect(Protocol):
    """SQL that differs between engines (built on the trio side, run on the thread side)."""

    def upsert_sql(self, table: str, key: Sequence[str], columns: Sequence[str], *,
                   update: Sequence[str] | None = None, add: Sequence[str] = ()) -> str:
        """Insert ``columns`` (``?`` each); on a ``key`` conflict set ``update`` (default:
        every non-key column not in ``add``) to the new values and add ``add``'s."""
        ...

    def delete_some_sql(self, table: str, where: str) -> str:
        """Delete at most ``limit`` rows matching ``where``: parameters are ``where``'s,
        then ``limit`` (a bounded purge round)."""
        ...

    def octet_length(self, column: str) -> str:
        """An SQL expression: the stored size of a text column in bytes."""
        ...

    def schema_sql(self, statement: str) -> str:
        """One of ``relay.store.schema``'s statements (written in SQLite's types:
        64-bit ``INTEGER``, double ``REAL``) as this engine runs it."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """A failure worth retrying the whole batch for (locked, I/O, disk full, ...):
        the data itself is fine."""
        ...


class Connection(Dialect, Protocol):
    """One database session, used by one thread at a time."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Begin (taking the write lock now), commit at the end, roll back on any error."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside a transaction: on an error roll back to here, then re-raise."""
        ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def schema_version(self) -> int:
        """The version ``relay.store.schema.migrate`` last brought the database to (0: new)."""
        ...

    def set_schema_version(self, version: int) -> None: ...


class Backend(Dialect, Protocol):
    """A database the store opens its connections to."""

    @property
    def name(self) -> str:
        """Where the database is, for log lines (never a password)."""
        ...

    def connect(self) -> Connection:
        """The writer's connection; creates or migrates the schema (``relay.store.schema``).

        Raises ``relay.store.errors.DatabaseError`` with a one-line reason."""
        ...

    def connect_reader(self) -> Connection:
        """A read-only connection that does not wait for the writer."""
        ...

    @property
    def separate_readers(self) -> bool:
        """False when readers cannot see the writer's data (an in-memory database):
        then every read is queued to the writer."""
        ...


def upsert_sql(table: str, key: Sequence[str], columns: Sequence[str], *,
               update: Sequence[str] | None = None, add: Sequence[str] = ()) -> str:
    """The standard (SQLite 3.24+, PostgreSQL 9.5+) text of :meth:`Dialect.upsert_sql`."""
    if update is None:
        update = [c for c in columns if c not in key and c not in add]
    sets = [f"{c}=excluded.{c}" for c in update] + [f"{c}={table}.{c}+excluded.{c}" for c in add]
    return (f"INSERT INTO {table}({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))}) ON CONFLICT({', '.join(key)}) "
            + (f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"))


def one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
