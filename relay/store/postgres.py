"""PostgreSQL: ``relay.store.backend`` over psycopg 3 (sync, on the store's threads).

``--db postgresql://USER[:PW]@HOST[:PORT]/DB``. Like SQLite's, connections run in
autocommit mode and every write goes through :meth:`PostgresConnection.transaction`
(``BEGIN`` ... ``COMMIT``). Commits are durable before they return
(``synchronous_commit=on``, set on every connection), so an ``h`` record is acked
only once PostgreSQL has it on disk.

Repositories' SQL (``?`` placeholders) is translated once per statement text to
psycopg's (``%s``). Their DDL goes through :meth:`PostgresDialect.schema_sql`:
SQLite's ``INTEGER`` is 64-bit and its ``REAL`` is a double, so they become
``BIGINT`` and ``DOUBLE PRECISION`` here; ``TEXT`` columns get the ``"C"`` collation,
so text compares and sorts by code point as in SQLite (lists in the same order on
both engines), not by the database's default collation. The schema version lives in the one-row
table ``relay_meta``; migrations run under an advisory lock, so processes that
start together migrate once.

Text (the lossless rule of ``relay.store.backend``): PostgreSQL text holds
neither NUL nor bytes that are not UTF-8 (lone surrogates on the Python side).
Each such character, and the escape character U+FFFF itself, is stored as
U+FFFF followed by its code point in four lowercase hex digits (``\\x00`` ->
``\\uffff0000``, ``\\udc80`` -> ``\\uffffdc80``, ``\\uffff`` -> ``\\uffffffff``);
every text read back is decoded the same way. Text without them (nearly all) is
stored as it is, so equality and ordering on plain text work unchanged;
:meth:`PostgresDialect.octet_length` counts the bytes the text stands for.

Connection loss (a server restart, a failover, a network cut) is transient: the
write queue rolls the batch back and retries it, nothing is acked meanwhile, and
the next attempt opens a new connection. A transaction whose ``COMMIT`` was cut
off is retried whole; every queued write is an idempotent upsert or update,
except usage counters' additions, which may then count one batch twice.

Large batches of one upsert (``executemany`` of at least ``COPY_THRESHOLD`` rows)
are sent with ``COPY`` into a temporary table and one ``INSERT ... SELECT ... ON
CONFLICT``; rows with the same key in one batch are coalesced first (the last
one wins for an upsert that overwrites every column, the first for ``DO
NOTHING``), which is what running them one by one would leave.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

from relay.store import schema
from relay.store.backend import one_line, upsert_sql
from relay.store.errors import DatabaseError
from relay.store.targets import redact

log = logging.getLogger("relay.store")

ESCAPE = "\uffff"
_SPECIAL = re.compile("[\x00\ud800-\udfff\uffff]")
_ESCAPED = re.compile("\uffff([0-9a-f]{4})")
# Fewer rows go through executemany (pipelined): COPY's extra statements cost more.
COPY_THRESHOLD = 200
# Any constant: the advisory lock taken while the schema is created or migrated.
_MIGRATE_LOCK = 0x6F766D73  # "ovms"
# SQLSTATE classes worth retrying a batch for: connection, transaction rollback
# (serialization, deadlock), insufficient resources, operator intervention
# (shutdown, cancel), system error.
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_READ_ONLY_TRANSACTION = "25006"  # a standby after a failover: retry until a primary answers


# --------------------------------------------------------------------------- text


def _escape(match: re.Match[str]) -> str:
    return f"{ESCAPE}{ord(match.group()):04x}"


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def encode_text(value: str) -> str:
    """Text as PostgreSQL can store it (see the module docstring)."""
    if value.isascii() and "\x00" not in value:
        return value
    return _SPECIAL.sub(_escape, value)


def decode_text(value: str) -> str:
    return _ESCAPED.sub(_unescape, value) if ESCAPE in value else value


def _param(value: Any) -> Any:
    if type(value) is str:
        return encode_text(value)
    if type(value) is bool:
        return int(value)  # SQLite's INTEGER 0/1
    return value


def _params(params: Sequence[Any]) -> Sequence[Any]:
    return tuple(_param(v) for v in params)


class Row(tuple[Any, ...]):
    """A result row by position and by column name (and ``dict(row)``), like sqlite3.Row."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def keys(self) -> list[str]:
        return list(self._index)

    def __getitem__(self, key: Any) -> Any:
        if type(key) is str:
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> Row:
        for value in values:
            if type(value) is str and ESCAPE in value:
                return Row((decode_text(v) if type(v) is str else v for v in values), index)
        return Row(values, index)

    return make


class _NumericLoader(Loader):
    """``numeric`` (e.g. ``SUM`` of a BIGINT) as int or float, as SQLite answers."""

    def load(self, data: Any) -> Any:
        text = bytes(data)
        if b"." in text or b"e" in text or b"N" in text:
            return float(text)
        return int(text)


# --------------------------------------------------------------------------- SQL


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``), outside
    quoted strings and identifiers."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


_TYPES = re.compile(r"\b(INTEGER|REAL|TEXT)\b")
# Text compares and sorts by code point, as in SQLite, whatever the database's
# collation (a server's default is usually a language's: en_US puts "_x" before "Bob").
_PG_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "TEXT": 'TEXT COLLATE "C"'}


def schema_sql(statement: str) -> str:
    return _TYPES.sub(lambda m: _PG_TYPES[m.group(1)], statement)


_UPSERT = re.compile(
    r"INSERT INTO (\w+)\(([\w, ]+)\) VALUES \([?, ]+\) ON CONFLICT\(([\w, ]+)\) "
    r"(DO NOTHING|DO UPDATE SET .+)$")


@attrs.frozen
class _Upsert:
    """An upsert whose rows can be coalesced by key and sent with COPY."""

    table: str
    columns: tuple[str, ...]
    key: tuple[int, ...]  # positions of the key columns in a row
    keep_last: bool  # overwrites every non-key column (else: DO NOTHING, keep the first)
    conflict: str  # "ON CONFLICT(...) DO ..."


@functools.lru_cache(maxsize=256)
def _upsert_plan(sql: str) -> _Upsert | None:
    match = _UPSERT.match(sql)
    if match is None:
        return None
    table = match.group(1)
    columns = tuple(c.strip() for c in match.group(2).split(","))
    key = tuple(c.strip() for c in match.group(3).split(","))
    if not set(key) <= set(columns):
        return None
    nothing = match.group(4) == "DO NOTHING"
    # Only the two shapes whose coalesced result equals running the rows one by one.
    if not nothing and sql != upsert_sql(table, key, columns):
        return None
    return _Upsert(table, columns, tuple(columns.index(k) for k in key), not nothing,
                   sql[sql.index(" ON CONFLICT") + 1:])


def _coalesce(plan: _Upsert, rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
    by_key: dict[tuple[Any, ...], Sequence[Any]] = {}
    for row in rows:
        k = tuple(row[i] for i in plan.key)
        if plan.keep_last or k not in by_key:
            by_key.pop(k, None)  # keep_last: the last one's position, as one by one
            by_key[k] = row
    return list(by_key.values())


class PostgresDialect:
    def upsert_sql(self, table: str, key: Sequence[str], columns: Sequence[str], *,
                   update: Sequence[str] | None = None, add: Sequence[str] = ()) -> str:
        return upsert_sql(table, key, columns, update=update, add=add)

    def delete_some_sql(self, table: str, where: str) -> str:
        return (f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {table} WHERE {where} LIMIT ?))")

    def octet_length(self, column: str) -> str:
        # The bytes the text stands for: each 7-byte escape is one byte (NUL, a byte
        # that is not UTF-8) or, for U+FFFF itself, three.
        c, esc = column, "CHR(65535)"
        return (f"(CASE WHEN STRPOS({c}, {esc}) = 0 THEN OCTET_LENGTH({c}) ELSE "
                f"OCTET_LENGTH({c}) - 2 * (OCTET_LENGTH({c}) - OCTET_LENGTH(REPLACE({c}, {esc}, "
                f"''))) + 2 * ((LENGTH({c}) - LENGTH(REPLACE({c}, {esc} || 'ffff', ''))) / 5) "
                "END)")

    def schema_sql(self, statement: str) -> str:
        return schema_sql(statement)

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError
                      | MemoryError):
            return True
        if isinstance(exc, psycopg.Error):
            state = exc.sqlstate or ""
            return state[:2] in _TRANSIENT_CLASSES or state == _READ_ONLY_TRANSACTION
        return False


# --------------------------------------------------------------------------- connections


def _open(url: str, *, reader: bool) -> psycopg.Connection[Any]:
    options = "-c synchronous_commit=on"
    if reader:
        options += " -c default_transaction_read_only=on"
    raw: psycopg.Connection[Any] = psycopg.connect(
        url, autocommit=True, connect_timeout=10, application_name="ovms-relay",
        options=options,
        # A server that vanished without closing the socket is noticed within ~20 s.
        keepalives=1, keepalives_idle=10, keepalives_interval=3, keepalives_count=3)
    raw.row_factory = _row_factory
    raw.adapters.register_loader("numeric", _NumericLoader)
    return raw


class PostgresConnection(PostgresDialect):
    """A psycopg connection as a ``relay.store.backend.Connection``; reopened after it
    was lost (only between transactions)."""

    def __init__(self, backend: PostgresBackend, raw: psycopg.Connection[Any], *,
                 reader: bool) -> None:
        self._backend = backend
        self._reader = reader
        self.raw = raw
        self._temp_tables: set[str] = set()
        self._lost = False

    def _live(self) -> psycopg.Connection[Any]:
        raw = self.raw
        if not raw.closed and not raw.broken:
            return raw
        if not self._lost:
            self._lost = True
            log.debug("lost the connection to %s; reconnecting", self._backend.name)
        self.raw = _open(self._backend.url, reader=self._reader)
        self._temp_tables = set()
        self._lost = False
        if not self._reader:
            log.info("reconnected to %s", self._backend.name)
        return self.raw

    @property
    def in_transaction(self) -> bool:
        raw = self.raw
        if raw.closed or raw.broken:
            return False
        return raw.info.transaction_status in (TransactionStatus.INTRANS,
                                               TransactionStatus.INERROR,
                                               TransactionStatus.ACTIVE)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        if self.in_transaction:
            return self.raw.execute(translate(sql), _params(params))
        raw = self._live()
        try:
            return raw.execute(translate(sql), _params(params))
        except psycopg.OperationalError:
            # An idle reader learns of a server restart only from its next query: a
            # read is safe to repeat once on a new connection (writes are retried
            # whole by the write queue).
            if not (self._reader and raw.broken):
                raise
            return self._live().execute(translate(sql), _params(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        raw = self.raw if self.in_transaction else self._live()
        batch = list(rows)
        plan = _upsert_plan(sql) if len(batch) > 1 else None
        if plan is not None:
            batch = _coalesce(plan, batch)
            if len(batch) >= COPY_THRESHOLD:
                if self.in_transaction:
                    return self._copy(raw, plan, batch)
                with self.transaction():
                    return self._copy(raw, plan, batch)
        cur = raw.cursor()
        cur.executemany(translate(sql), [_params(r) for r in batch])
        return cur

    def _copy(self, raw: psycopg.Connection[Any], plan: _Upsert,
              rows: list[Sequence[Any]]) -> psycopg.Cursor[Any]:
        temp = f"relay_copy_{plan.table}"
        columns = ", ".join(plan.columns)
        cur = raw.cursor()
        if temp not in self._temp_tables:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} "
                        f"(LIKE {plan.table} INCLUDING DEFAULTS)")
            self._temp_tables.add(temp)
        cur.execute(f"TRUNCATE {temp}")
        with cur.copy(f"COPY {temp} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(_params(row))
        cur.execute(f"INSERT INTO {plan.table}({columns}) SELECT {columns} FROM {temp} "
                    f"{plan.conflict}")
        return cur

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raw = self._live()
        raw.execute("BEGIN")
        try:
            yield
            raw.execute("COMMIT")
        except BaseException:
            self._temp_tables.clear()  # a rollback undoes their creation too
            if not raw.closed and not raw.broken:
                try:
                    raw.execute("ROLLBACK")
                except psycopg.Error:
                    pass  # the connection went away: the original error is the one to report
            raise

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        raw = self.raw
        raw.execute("SAVEPOINT op")
        try:
            yield
        except BaseException:
            self._temp_tables.clear()
            if self.in_transaction:
                try:
                    raw.execute("ROLLBACK TO SAVEPOINT op")
                    raw.execute("RELEASE SAVEPOINT op")
                except psycopg.Error:
                    pass
            raise
        raw.execute("RELEASE SAVEPOINT op")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def schema_version(self) -> int:
        row = self.execute("SELECT value FROM relay_meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row is not None else 0

    def set_schema_version(self, version: int) -> None:
        self.execute(upsert_sql("relay_meta", ("key",), ("key", "value")),
                     ("schema_version", str(int(version))))


class PostgresBackend(PostgresDialect):
    """The PostgreSQL database at ``url`` (``postgresql://USER[:PW]@HOST[:PORT]/DB``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def name(self) -> str:
        return redact(self.url)

    @property
    def separate_readers(self) -> bool:
        return True

    def open_connection(self, *, reader: bool = False) -> PostgresConnection:
        """A connection, without creating or checking the schema."""
        try:
            return PostgresConnection(self, _open(self.url, reader=reader), reader=reader)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot open database {self.name}: {one_line(exc)}") from None

    def connect(self) -> PostgresConnection:
        conn = self.open_connection(reader=False)
        try:
            raw = conn.raw
            raw.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
            try:
                raw.execute("CREATE TABLE IF NOT EXISTS relay_meta "
                            "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                schema.migrate(conn)
            finally:
                if not raw.broken:
                    raw.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))
        except (psycopg.Error, DatabaseError) as exc:
            conn.close()
            if isinstance(exc, DatabaseError):
                raise
            raise DatabaseError(f"cannot open database {self.name}: {one_line(exc)}") from None
        return conn

    def connect_reader(self) -> PostgresConnection:
        return self.open_connection(reader=True)
