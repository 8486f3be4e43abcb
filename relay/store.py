"""The relay's asynchronous (trio) store.

One ``sqlite3`` connection is owned by one writer task. Every write is queued to
that task, which drains the queue in batches: all writes of a batch run in one
worker-thread call, in one transaction, with consecutive identical statements
sent through ``executemany``.

Reads come in two kinds. Login and lookup reads (vehicles, owners, tokens,
provisioning, a vehicle's stored messages) run on separate read-only
connections in threads of their own (SQLite's WAL mode lets readers run while a
write is in progress), so they never wait for the writer: a full disk stalls
writes, not logins. Reads that must see writes queued before them (historical
records, usage, push subscriptions, token lists, extension queries) are queued
to the writer and run right after its commit, in the same thread call; because
the queue is FIFO they see every write queued before them. Both kinds, and
writes a request waits for, give up after ``read_timeout`` with
:class:`StoreTimeout`, so a request fails with an error instead of hanging.

Hot-path reads (vehicles, owners, latest messages) are served from memory. What a
vehicle may store as latest messages is bounded (distinct codes and total data
size): a car cannot grow it without limit, nor make the login replay of its
apps overflow their outbound queue. ``put_latest`` updates memory first, so
readers see a write before it is committed. Writers only wait when the queue is
full, except durable writes (``add_historical(durable=True)``), which return
once their batch is committed.

Write failures: a batch that fails with an operational error (locked, I/O, disk
full, ...) is rolled back and retried with back-off, never dropped while the store
is open; the outage is logged once when it starts and once when it ends. A batch
that fails for any other reason is re-run one statement at a time so only the
offending statements are dropped (logged, and reported to a durable waiter);
everything else commits.
"""

from __future__ import annotations

import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeAlias

import attrs
import trio

from relay import db, legacy_hash

log = logging.getLogger("relay.store")

QUEUE_SIZE = 10_000
USAGE_INTERVAL = 5.0
CLOSE_TIMEOUT = 30.0
# Retries of a failing write batch back off up to this: short enough that writes
# resume within a second of space being freed, long enough to cost nothing.
_MAX_BACKOFF = 1.0
# How long a request's read (or a write it waits for) may take before it fails.
READ_TIMEOUT = 10.0
READ_THREADS = 4
# Per vehicle latest messages: a real car stores ~15 codes, a few KB in all.
MAX_STORED_CODES = 256
MAX_STORED_BYTES = 64 * 1024
# A vehicle's refused stores are logged at most this often (seconds).
_REFUSAL_LOG_INTERVAL = 600.0
_MAX_UNEXPECTED_FAILURES = 3


class StoreError(Exception):
    """A store operation failed (one-line reason)."""


class StoreClosed(StoreError):
    """The store is closed or closing and accepts no more work."""


class StoreTimeout(StoreError):
    """The database did not answer within the store's deadline (e.g. writes are stuck)."""


# --------------------------------------------------------------------------- records


@attrs.frozen
class OwnerRecord:
    name: str
    password_hash: str = attrs.field(repr=False)
    status: int
    permissions: str


@attrs.frozen
class VehicleRecord:
    vehicleid: str
    owner: str
    carpass: str = attrs.field(repr=False)
    vtype: str
    ptoken: str


@attrs.frozen
class StoredMessage:
    code: str
    data: str
    msgtime: float
    paranoid: bool
    ptoken: str


@attrs.frozen
class HistoricalSummary:
    htype: str
    distinct_records: int
    total_records: int
    total_size: int
    first: int
    last: int


@attrs.frozen
class HistoricalRecord:
    htype: str
    timestamp: int
    recordnumber: int
    data: str


@attrs.frozen
class UsageDay:
    day: str
    car_rx: int
    car_tx: int
    app_rx: int
    app_tx: int


@attrs.frozen
class PushSubscription:
    vehicleid: str
    appid: str
    owner: str
    pushtype: str
    pushkeytype: str
    pushkeyvalue: str


@attrs.frozen
class PendingPush:
    """One notification waiting for delivery to one subscription (table push_pending)."""

    nid: str
    vehicleid: str
    appid: str
    owner: str
    pushtype: str
    pushkeytype: str
    pushkeyvalue: str = attrs.field(repr=False)  # a device token or a URL: never logged
    alerttype: str
    text: str
    created: float
    expires: float
    attempts: int = 0
    next_try: float = 0.0


@attrs.frozen
class TokenRecord:
    """An API token as stored: only its SHA-256 digest, never the token itself."""

    token_hash: str
    owner: str
    application: str
    purpose: str
    permit: str
    created: float
    lastused: float | None = None


@attrs.frozen
class ProvisionRecord:
    apkey: str
    stoken: str = attrs.field(repr=False)
    sdigest: str
    provisioning: str


@attrs.define
class StoreStats:
    """Counters for tests and monitoring."""

    commits: int = 0  # committed write transactions (one per batch with writes)
    batches: int = 0  # batches run (including read-only ones)
    writes: int = 0  # queued write operations committed
    reads: int = 0  # database reads (cache misses)
    retries: int = 0  # failed batch attempts that were retried
    dropped: int = 0  # write operations dropped (logged at ERROR)
    purge_batches: int = 0
    purged: int = 0


# --------------------------------------------------------------------------- text <-> SQLite

# Message text may carry undecodable bytes as lone surrogates (surrogateescape);
# sqlite3 cannot bind those as TEXT, so such values are stored as the exact
# original bytes in a BLOB and decoded back on the way out.


def _enc(text: str) -> str | bytes:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def _dec(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


# --------------------------------------------------------------------------- queue items


class _Waiter:
    __slots__ = ("_error", "_event", "_result")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def set_result(self, result: Any) -> None:
        self._result = result
        self._event.set()

    def set_error(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._result


@attrs.define(eq=False)
class _Write:
    """One parameterised statement; consecutive equal ``sql`` are ``executemany``-ed."""

    table: str
    sql: str
    params: tuple[Any, ...]
    lastupdate: tuple[str, float] | None = None
    waiter: _Waiter | None = None


@attrs.define(eq=False)
class _Call:
    """A write needing its own statement(s) and a result (e.g. one purge round)."""

    table: str
    fn: Callable[[sqlite3.Connection], Any]
    waiter: _Waiter | None = None


@attrs.define(eq=False)
class _Read:
    fn: Callable[[sqlite3.Connection], Any]
    waiter: _Waiter
    # Runs in the trio thread right after the batch, before anything else can
    # change the in-memory state; used to merge unflushed memory into results.
    post: Callable[[Any], Any] | None = None


@attrs.define(eq=False)
class _Barrier:
    waiter: _Waiter | None = None
    usage: bool = False  # also write the accumulated usage counters


_Item: TypeAlias = _Write | _Call | _Read | _Barrier
_WriteOp: TypeAlias = _Write | _Call
_UsageKey: TypeAlias = tuple[str, str]


def _urgent(item: _Item) -> bool:
    return item.waiter is not None


@attrs.define(eq=False)
class _Batch:
    writes: list[_WriteOp]
    reads: list[_Read]
    barriers: list[_Barrier]
    lastupdates: dict[str, float]
    token_lastused: dict[str, float]
    usage: dict[_UsageKey, list[int]]

    def has_writes(self) -> bool:
        return bool(self.writes or self.lastupdates or self.token_lastused or self.usage)


@attrs.define(eq=False)
class _Failed:
    error: BaseException


@attrs.define(eq=False)
class _Outcome:
    committed: bool
    results: list[Any]
    errors: list[BaseException | None]
    reads: list[Any]


# --------------------------------------------------------------------------- SQL

_UPSERT_LATEST = (
    "INSERT INTO latest(vehicleid, code, msgtime, paranoid, ptoken, data) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(vehicleid, code) DO UPDATE SET "
    "msgtime=excluded.msgtime, paranoid=excluded.paranoid, ptoken=excluded.ptoken, "
    "data=excluded.data"
)
_DELETE_PARANOID = "DELETE FROM latest WHERE vehicleid=? AND paranoid<>0 AND ptoken<>?"
_SET_PTOKEN = "UPDATE vehicles SET ptoken=? WHERE vehicleid=?"
_UPSERT_HISTORICAL = (
    "INSERT INTO historical(vehicleid, htype, recordnumber, ts, expires, data) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(vehicleid, htype, recordnumber, ts) DO UPDATE SET "
    "expires=excluded.expires, data=excluded.data"
)
_UPSERT_PUSH = (
    "INSERT INTO push_subscriptions(vehicleid, appid, owner, pushtype, pushkeytype, "
    "pushkeyvalue, active, created, lastused) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) "
    "ON CONFLICT(vehicleid, appid) DO UPDATE SET owner=excluded.owner, "
    "pushtype=excluded.pushtype, pushkeytype=excluded.pushkeytype, "
    "pushkeyvalue=excluded.pushkeyvalue, active=1, lastused=excluded.lastused"
)
_INSERT_PENDING = (
    "INSERT OR REPLACE INTO push_pending(nid, vehicleid, appid, owner, pushtype, pushkeytype, "
    "pushkeyvalue, alerttype, alerttext, created, expires, attempts, next_try) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RETRY_PENDING = (
    "UPDATE push_pending SET attempts=?, next_try=? WHERE nid=? AND vehicleid=? AND appid=?"
)
_DELETE_PENDING = "DELETE FROM push_pending WHERE nid=? AND vehicleid=? AND appid=?"
# Only the exact token that failed: the app may have re-subscribed with a new one meanwhile.
_DEACTIVATE_PUSH = (
    "UPDATE push_subscriptions SET active=0 WHERE vehicleid=? AND appid=? AND pushkeyvalue=?"
)
_ADD_USAGE = (
    "INSERT INTO usage(vehicleid, day, car_rx, car_tx, app_rx, app_tx) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(vehicleid, day) DO UPDATE SET "
    "car_rx=car_rx+excluded.car_rx, car_tx=car_tx+excluded.car_tx, "
    "app_rx=app_rx+excluded.app_rx, app_tx=app_tx+excluded.app_tx"
)
_SET_LASTUPDATE = "UPDATE vehicles SET lastupdate=? WHERE vehicleid=?"
_SET_TOKEN_LASTUSED = "UPDATE tokens SET lastused=? WHERE token_hash=?"


# --------------------------------------------------------------------------- worker-thread side


def _is_transient(exc: BaseException) -> bool:
    """Errors worth retrying the whole batch for (the data itself is fine)."""
    if isinstance(exc, sqlite3.OperationalError | OSError | MemoryError):
        return True
    return type(exc) is sqlite3.DatabaseError  # e.g. corruption detected, I/O


def _run_write(conn: sqlite3.Connection, op: _WriteOp) -> Any:
    if isinstance(op, _Call):
        return op.fn(conn)
    conn.execute(op.sql, op.params)
    return None


def _apply_coalesced(conn: sqlite3.Connection, batch: _Batch) -> None:
    if batch.lastupdates:
        conn.executemany(_SET_LASTUPDATE, [(t, v) for v, t in batch.lastupdates.items()])
    if batch.token_lastused:
        conn.executemany(_SET_TOKEN_LASTUSED, [(t, h) for h, t in batch.token_lastused.items()])
    if batch.usage:
        conn.executemany(_ADD_USAGE, [(v, d, *c) for (v, d), c in batch.usage.items()])


def _apply_fast(conn: sqlite3.Connection, batch: _Batch) -> list[Any]:
    writes = batch.writes
    results: list[Any] = [None] * len(writes)
    with db.transaction(conn):
        i, n = 0, len(writes)
        while i < n:
            op = writes[i]
            if isinstance(op, _Call):
                results[i] = op.fn(conn)
                i += 1
                continue
            j = i + 1
            while j < n and isinstance(writes[j], _Write) and writes[j].sql == op.sql:  # type: ignore[union-attr]
                j += 1
            if j - i == 1:
                conn.execute(op.sql, op.params)
            else:
                conn.executemany(op.sql, [w.params for w in writes[i:j]])  # type: ignore[union-attr]
            i = j
        _apply_coalesced(conn, batch)
    return results


def _apply_slow(
    conn: sqlite3.Connection, batch: _Batch
) -> tuple[list[Any], list[BaseException | None]]:
    """One savepoint per operation, so a bad operation only loses itself."""
    writes = batch.writes
    results: list[Any] = [None] * len(writes)
    errors: list[BaseException | None] = [None] * len(writes)
    with db.transaction(conn):
        for i, op in enumerate(writes):
            conn.execute("SAVEPOINT op")
            try:
                results[i] = _run_write(conn, op)
            except Exception as exc:
                if _is_transient(exc):
                    raise
                conn.execute("ROLLBACK TO op")
                errors[i] = exc
            conn.execute("RELEASE op")
        conn.execute("SAVEPOINT coalesced")
        try:
            _apply_coalesced(conn, batch)
        except Exception as exc:
            if _is_transient(exc):
                raise
            conn.execute("ROLLBACK TO coalesced")
            log.error("dropped bookkeeping updates (lastupdate/usage/token): %s", exc)
        conn.execute("RELEASE coalesced")
    return results, errors


def _execute_batch(conn: sqlite3.Connection, batch: _Batch) -> _Outcome:
    """Runs in a worker thread: all writes in one transaction, then the reads."""
    committed = False
    results: list[Any] = []
    errors: list[BaseException | None] = [None] * len(batch.writes)
    if conn.in_transaction:
        # Left open by a failed attempt whose rollback failed too: start clean,
        # or every retry would fail with "cannot start a transaction".
        conn.rollback()
    if batch.has_writes():
        try:
            results = _apply_fast(conn, batch)
        except Exception as exc:
            if _is_transient(exc):
                raise
            results, errors = _apply_slow(conn, batch)
        committed = True
    reads: list[Any] = []
    for read in batch.reads:
        try:
            reads.append(read.fn(conn))
        except Exception as exc:
            reads.append(_Failed(exc))
    return _Outcome(committed, results, errors, reads)


# --------------------------------------------------------------------------- reads (thread side)


def _load_latest(
    conn: sqlite3.Connection, vehicleid: str
) -> tuple[dict[str, StoredMessage], float | None]:
    rows = conn.execute(
        "SELECT code, data, msgtime, paranoid, ptoken FROM latest WHERE vehicleid=?",
        (vehicleid,),
    ).fetchall()
    messages = {r[0]: StoredMessage(r[0], _dec(r[1]), float(r[2]), bool(r[3]), r[4]) for r in rows}
    row = conn.execute("SELECT lastupdate FROM vehicles WHERE vehicleid=?", (vehicleid,)).fetchone()
    lastupdate = row[0] if row is not None else None
    if lastupdate is None and messages:
        lastupdate = max(m.msgtime for m in messages.values())
    return messages, lastupdate


def _read_vehicle(conn: sqlite3.Connection, vehicleid: str) -> dict[str, Any] | None:
    return db.get_vehicle(conn, vehicleid)


def _read_owner(conn: sqlite3.Connection, name: str) -> OwnerRecord | None:
    row = db.get_owner(conn, name)
    if row is None:
        return None
    return OwnerRecord(row["name"], row["password_hash"], int(row["status"]), row["permissions"])


def _read_owner_vehicles(conn: sqlite3.Connection, owner: str) -> list[str]:
    rows = conn.execute(
        "SELECT vehicleid FROM vehicles WHERE owner=? ORDER BY vehicleid", (owner,)
    ).fetchall()
    return [r[0] for r in rows]


def _read_token_permit(conn: sqlite3.Connection, owner: str, digest: str) -> str | None:
    row = conn.execute(
        "SELECT permit FROM tokens WHERE token_hash=? AND owner=?", (digest, owner)
    ).fetchone()
    return row[0] if row is not None else None


def _read_token_owner(conn: sqlite3.Connection, digest: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT owner, permit FROM tokens WHERE token_hash=?", (digest,)
    ).fetchone()
    return (row[0], row[1]) if row is not None else None


def _read_tokens(conn: sqlite3.Connection, owner: str) -> list[TokenRecord]:
    rows = conn.execute(
        "SELECT token_hash, owner, application, purpose, permit, created, lastused "
        "FROM tokens WHERE owner=? ORDER BY created, token_hash",
        (owner,),
    ).fetchall()
    return [TokenRecord(r[0], r[1], r[2], r[3], r[4], float(r[5]),
                        None if r[6] is None else float(r[6])) for r in rows]


def _insert_token(conn: sqlite3.Connection, record: TokenRecord) -> None:
    conn.execute(
        "INSERT INTO tokens(token_hash, owner, application, purpose, permit, created) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (record.token_hash, record.owner, record.application, record.purpose, record.permit,
         record.created),
    )


def _delete_token(
    conn: sqlite3.Connection, owner: str, candidates: tuple[str, ...]
) -> str | None:
    for candidate in candidates:
        if conn.execute(
            "DELETE FROM tokens WHERE token_hash=? AND owner=?", (candidate, owner)
        ).rowcount:
            return candidate
    return None


def _read_credentials(
    conn: sqlite3.Connection, owners: tuple[str, ...], digests: tuple[str, ...]
) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
    """Of these owners, (password hash, status) by name; of these tokens, owner by digest."""
    found_owners: dict[str, tuple[str, int]] = {}
    found_tokens: dict[str, str] = {}
    step = 500  # well under SQLite's bound on query parameters
    for i in range(0, len(owners), step):
        chunk = owners[i:i + step]
        for row in conn.execute(
            "SELECT name, password_hash, status FROM owners WHERE name IN "
            f"({','.join('?' * len(chunk))})", chunk
        ):
            found_owners[row["name"]] = (row["password_hash"], int(row["status"]))
    for i in range(0, len(digests), step):
        chunk = digests[i:i + step]
        for row in conn.execute(
            "SELECT token_hash, owner FROM tokens WHERE token_hash IN "
            f"({','.join('?' * len(chunk))})", chunk
        ):
            found_tokens[row["token_hash"]] = row["owner"]
    return found_owners, found_tokens


def _read_historical_summary(
    conn: sqlite3.Connection, vehicleid: str, since: int | None, now: float
) -> list[HistoricalSummary]:
    sql = (
        "SELECT htype, COUNT(DISTINCT recordnumber), COUNT(*), "
        "COALESCE(SUM(LENGTH(CAST(data AS BLOB))), 0), MIN(ts), MAX(ts) "
        "FROM historical WHERE vehicleid=? AND expires>=?"
    )
    params: list[Any] = [vehicleid, now]
    if since is not None:
        sql += " AND ts>?"
        params.append(since)
    sql += " GROUP BY htype ORDER BY htype"
    return [
        HistoricalSummary(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
        for r in conn.execute(sql, params)
    ]


def _read_historical_records(
    conn: sqlite3.Connection, vehicleid: str, htype: str, since: int | None, now: float
) -> list[HistoricalRecord]:
    sql = (
        "SELECT htype, ts, recordnumber, data FROM historical "
        "WHERE vehicleid=? AND htype=? AND expires>=?"
    )
    params: list[Any] = [vehicleid, htype, now]
    if since is not None:
        sql += " AND ts>?"
        params.append(since)
    sql += " ORDER BY ts, recordnumber"
    return [
        HistoricalRecord(r[0], int(r[1]), int(r[2]), _dec(r[3])) for r in conn.execute(sql, params)
    ]


def _read_usage(conn: sqlite3.Connection, vehicleid: str, first_day: str) -> dict[str, list[int]]:
    rows = conn.execute(
        "SELECT day, car_rx, car_tx, app_rx, app_tx FROM usage WHERE vehicleid=? AND day>=?",
        (vehicleid, first_day),
    ).fetchall()
    return {r[0]: [int(r[1]), int(r[2]), int(r[3]), int(r[4])] for r in rows}


def _read_push(conn: sqlite3.Connection, vehicleid: str) -> list[PushSubscription]:
    rows = conn.execute(
        "SELECT vehicleid, appid, owner, pushtype, pushkeytype, pushkeyvalue "
        "FROM push_subscriptions WHERE vehicleid=? AND active<>0 ORDER BY appid",
        (vehicleid,),
    ).fetchall()
    return [PushSubscription(*r) for r in rows]


def _take_pending(conn: sqlite3.Connection, now: float) -> tuple[list[PendingPush], int]:
    """Unexpired pending notifications, oldest first; expired ones are deleted."""
    expired = conn.execute("DELETE FROM push_pending WHERE expires<?", (now,)).rowcount
    rows = conn.execute(
        "SELECT nid, vehicleid, appid, owner, pushtype, pushkeytype, pushkeyvalue, alerttype, "
        "alerttext, created, expires, attempts, next_try FROM push_pending "
        "ORDER BY created, nid, appid"
    ).fetchall()
    pending = [
        PendingPush(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _dec(r[8]), float(r[9]),
                    float(r[10]), int(r[11]), float(r[12]))
        for r in rows
    ]
    return pending, expired


def _read_provision(conn: sqlite3.Connection, apkey: str) -> ProvisionRecord | None:
    row = db.get_provision(conn, apkey)
    if row is None:
        return None
    return ProvisionRecord(row["apkey"], row["stoken"], row["sdigest"], row["provisioning"])


def _purge_round(conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
    cur = conn.execute(
        "DELETE FROM historical WHERE rowid IN "
        "(SELECT rowid FROM historical WHERE expires<? LIMIT ?)",
        (cutoff, limit),
    )
    return cur.rowcount


def _data_size(messages: dict[str, StoredMessage]) -> int:
    return sum(len(m.data) for m in messages.values())


def _keep_order(message: StoredMessage) -> tuple[int, float]:
    """``F`` and ``S`` first (what apps need most), then the newest."""
    return ({"F": 0, "S": 1}.get(message.code, 2), -message.msgtime)


def _utc_day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


# --------------------------------------------------------------------------- read connections


class _ReadPool:
    """Read-only connections for reads that must not wait for the writer.

    At most ``size`` threads read at once (the limiter), so at most ``size``
    connections exist; a thread takes an idle one or opens one. A read abandoned
    at its deadline keeps its thread and connection until SQLite returns, and the
    limiter stays taken until then, so a stuck read never shares a connection.
    """

    def __init__(self, path: str, size: int) -> None:
        self._path = path
        self.limiter = trio.CapacityLimiter(max(1, size))
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """In a worker thread: ``fn`` on an idle (or new) read connection."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = db.connect_reader(self._path)
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.put(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


# --------------------------------------------------------------------------- the store


class Store:
    """See the module docstring. Create with :func:`open_store`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        flush_interval: float = 0.005,
        max_batch: int = 2000,
        purge_interval: float = 3600.0,
        purge_batch: int = 5000,
        cache_ttl: float = 30.0,
        usage_interval: float = USAGE_INTERVAL,
        close_timeout: float = CLOSE_TIMEOUT,
        hash_concurrency: int = 2,
        read_pool: _ReadPool | None = None,
        read_timeout: float = READ_TIMEOUT,
        max_stored_codes: int = MAX_STORED_CODES,
        max_stored_bytes: int = MAX_STORED_BYTES,
    ) -> None:
        self._conn = conn
        # None: every read is queued to the writer (a store without a file path).
        self._pool = read_pool
        self._read_timeout = read_timeout
        self._max_codes = max(1, max_stored_codes)
        self._max_bytes = max(1, max_stored_bytes)
        self._refusals: dict[str, tuple[float, int]] = {}  # vehicle -> (last logged, unlogged)
        # Set while write batches fail (trio time of the first failure).
        self._failing_since: float | None = None
        self._flush_interval = flush_interval
        self._max_batch = max(1, max_batch)
        self._purge_interval = purge_interval
        self._purge_batch = max(1, purge_batch)
        self._cache_ttl = cache_ttl
        self._usage_interval = usage_interval
        self._close_timeout = close_timeout
        self.stats = StoreStats()

        self._send, self._recv = trio.open_memory_channel[_Item](QUEUE_SIZE)
        self._accepting = True
        self._closing = False
        self._give_up_at = float("inf")
        self._writer_done = trio.Event()
        self._bg_scope = trio.CancelScope()

        self._vehicles: dict[str, tuple[VehicleRecord, float]] = {}
        self._owners: dict[str, tuple[OwnerRecord, float]] = {}
        self._ptokens: dict[str, str] = {}
        self._latest: dict[str, dict[str, StoredMessage]] = {}
        self._latest_loaded: set[str] = set()
        self._latest_loading: dict[str, trio.Event] = {}
        self._lastupdate: dict[str, float | None] = {}
        self._usage: dict[_UsageKey, list[int]] = {}
        self._day_cache: tuple[int, str] = (-1, "")
        self._token_lastused: dict[str, float] = {}
        # Argon2 checks in flight at once: each takes 64 MiB, so this bounds peak memory
        # under a flood of bad passwords (the rest wait their turn).
        self._hash_limiter = trio.CapacityLimiter(max(1, hash_concurrency))
        self._dummy_hash: str | None = None
        # Further bounded purges (name -> round), run after the historical one.
        self._purges: dict[str, Callable[..., int]] = {}

    @property
    def queue_depth(self) -> int:
        """Reads and writes waiting for the writer task (server status)."""
        return self._send.statistics().current_buffer_used

    def forget_cached(self, *, vehicleid: str | None = None, owner: str | None = None) -> None:
        """Drop cached records an account change made stale (relay.accounts)."""
        if vehicleid is not None:
            self._vehicles.pop(vehicleid, None)
        if owner is not None:
            self._owners.pop(owner, None)

    # ----------------------------------------------------------------- queueing

    async def _submit(self, item: _Item) -> None:
        if not self._accepting:
            raise StoreClosed("store is closed")
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            try:
                await self._send.send(item)
            except trio.ClosedResourceError:
                raise StoreClosed("store is closed") from None
        except trio.ClosedResourceError:
            raise StoreClosed("store is closed") from None

    @property
    def writes_failing(self) -> bool:
        """True while write batches fail and are being retried (e.g. the disk is full)."""
        return self._failing_since is not None

    def _timed_out(self) -> StoreTimeout:
        state = "writes are failing" if self.writes_failing else "database busy"
        return StoreTimeout(f"no answer from the database within {self._read_timeout:g} s "
                            f"({state})")

    async def _read(
        self, fn: Callable[[sqlite3.Connection], Any], post: Callable[[Any], Any] | None = None
    ) -> Any:
        """A read queued to the writer: it sees every write queued before it."""
        waiter = _Waiter()
        try:
            with trio.fail_after(self._read_timeout):
                await self._submit(_Read(fn, waiter, post))
                return await waiter.wait()
        except trio.TooSlowError:
            raise self._timed_out() from None

    async def _read_now(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """A read on a read connection: it never waits for the writer."""
        pool = self._pool
        if pool is None:
            return await self._read(fn)
        try:
            with trio.fail_after(self._read_timeout):
                result = await trio.to_thread.run_sync(
                    pool.run, fn, limiter=pool.limiter, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise self._timed_out() from None
        self.stats.reads += 1
        return result

    async def _call(
        self, table: str, fn: Callable[[sqlite3.Connection], Any], *, wait: bool = False
    ) -> Any:
        """A write with a result; gives up waiting at the deadline unless ``wait``.

        A write given up on stays queued and is committed later.
        """
        waiter = _Waiter()
        if wait:
            await self._submit(_Call(table, fn, waiter))
            return await waiter.wait()
        try:
            with trio.fail_after(self._read_timeout):
                await self._submit(_Call(table, fn, waiter))
                return await waiter.wait()
        except trio.TooSlowError:
            raise self._timed_out() from None

    async def flush(self) -> None:
        """Wait until everything queued so far (and the usage counters) is committed."""
        waiter = _Waiter()
        await self._submit(_Barrier(waiter, usage=True))
        await waiter.wait()

    # ----------------------------------------------------------------- writer task

    async def _writer(self) -> None:
        # Shielded: only closing the channel (Store._close) ends this task, so
        # nothing that was queued is lost to a cancellation.
        with trio.CancelScope(shield=True):
            try:
                while True:
                    items = await self._collect()
                    if items is None:
                        break
                    await self._run_batch(items)
            except BaseException:
                log.exception("store writer crashed")
                raise
            finally:
                self._writer_done.set()

    async def _collect(self) -> list[_Item] | None:
        try:
            first = await self._recv.receive()
        except trio.EndOfChannel:
            return None
        items = [first]
        urgent = _urgent(first)
        deadline = trio.current_time() + self._flush_interval
        while len(items) < self._max_batch:
            try:
                try:
                    item = self._recv.receive_nowait()
                except trio.WouldBlock:
                    if urgent or self._closing:
                        break
                    with trio.move_on_at(deadline) as scope:
                        item = await self._recv.receive()
                    if scope.cancelled_caught:
                        break
            except trio.EndOfChannel:
                break
            items.append(item)
            urgent = urgent or _urgent(item)
        return items

    def _plan(self, items: list[_Item]) -> _Batch:
        writes: list[_WriteOp] = []
        reads: list[_Read] = []
        barriers: list[_Barrier] = []
        lastupdates: dict[str, float] = {}
        take_usage = False
        for item in items:
            if isinstance(item, _Write):
                writes.append(item)
                if item.lastupdate is not None:
                    lastupdates[item.lastupdate[0]] = item.lastupdate[1]
            elif isinstance(item, _Call):
                writes.append(item)
            elif isinstance(item, _Read):
                reads.append(item)
            else:
                barriers.append(item)
                take_usage = take_usage or item.usage
        # Operations on different tables commute; a stable sort keeps the order
        # within each table and lets same-statement runs be executemany-ed.
        writes.sort(key=lambda op: op.table)
        token_lastused, self._token_lastused = self._token_lastused, {}
        usage: dict[_UsageKey, list[int]] = {}
        if take_usage and self._usage:
            usage, self._usage = self._usage, {}
        return _Batch(writes, reads, barriers, lastupdates, token_lastused, usage)

    async def _run_batch(self, items: list[_Item]) -> None:
        batch = self._plan(items)
        delay = 0.05
        unexpected = 0
        while True:
            try:
                outcome = await trio.to_thread.run_sync(_execute_batch, self._conn, batch)
                break
            except Exception as exc:
                transient = _is_transient(exc)
                unexpected += not transient
                if (self._closing and trio.current_time() >= self._give_up_at) or (
                    unexpected >= _MAX_UNEXPECTED_FAILURES
                ):
                    self._abandon(batch, exc)
                    return
                self.stats.retries += 1
                self._batch_failed(batch, exc, transient)
                await trio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
        if self._failing_since is not None:
            log.warning(
                "database writes work again after %.1f s; the %d queued operations are "
                "committed, none lost",
                trio.current_time() - self._failing_since,
                len(batch.writes) + self._recv.statistics().current_buffer_used,
            )
            self._failing_since = None
        self._finish(batch, outcome)

    def _batch_failed(self, batch: _Batch, exc: BaseException, transient: bool) -> None:
        """Log an outage once at its start (and each unexpected error, retried at most twice)."""
        if transient and self._failing_since is not None:
            log.debug("write batch failed again: %s", db._one_line(exc))
            return
        if transient:
            self._failing_since = trio.current_time()
        log.error(
            "database writes failing (%d ops, %s: %s); retrying until they succeed, "
            "nothing is dropped and no h record is acked meanwhile",
            len(batch.writes),
            type(exc).__name__,
            db._one_line(exc),
        )

    def _finish(self, batch: _Batch, outcome: _Outcome) -> None:
        self.stats.batches += 1
        if outcome.committed:
            self.stats.commits += 1
        for i, op in enumerate(batch.writes):
            error = outcome.errors[i]
            if error is not None:
                self.stats.dropped += 1
                log.error(
                    "dropped a %s write that cannot be stored: %s: %s",
                    op.table,
                    type(error).__name__,
                    db._one_line(error),
                )
                if op.waiter is not None:
                    op.waiter.set_error(StoreError(f"write failed: {db._one_line(error)}"))
                continue
            self.stats.writes += 1
            if op.waiter is not None:
                op.waiter.set_result(outcome.results[i] if outcome.results else None)
        for read, result in zip(batch.reads, outcome.reads, strict=True):
            self.stats.reads += 1
            if isinstance(result, _Failed):
                read.waiter.set_error(result.error)
                continue
            if read.post is not None:
                try:
                    result = read.post(result)
                except Exception as exc:
                    read.waiter.set_error(exc)
                    continue
            read.waiter.set_result(result)
        for barrier in batch.barriers:
            if barrier.waiter is not None:
                barrier.waiter.set_result(None)

    def _abandon(self, batch: _Batch, exc: BaseException) -> None:
        self.stats.dropped += len(batch.writes)
        log.error(
            "giving up on a write batch: %d operations, %d usage counters and %d "
            "lastupdate values NOT stored (%s: %s)",
            len(batch.writes),
            len(batch.usage),
            len(batch.lastupdates),
            type(exc).__name__,
            db._one_line(exc),
        )
        error = StoreError(f"not stored: {db._one_line(exc)}")
        for op in batch.writes:
            if op.waiter is not None:
                op.waiter.set_error(error)
        for read in batch.reads:
            read.waiter.set_error(error)
        for barrier in batch.barriers:
            if barrier.waiter is not None:
                barrier.waiter.set_error(error)

    # ----------------------------------------------------------------- background tasks

    async def _background(self) -> None:
        with self._bg_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._purge_loop)
                nursery.start_soon(self._usage_loop)

    async def _purge_loop(self) -> None:
        while True:
            await trio.sleep(self._purge_interval)
            try:
                await self.purge_expired()
            except StoreClosed:
                return
            except Exception as exc:
                log.error("purge of expired historical records failed: %s", db._one_line(exc))

    async def _usage_loop(self) -> None:
        while True:
            await trio.sleep(self._usage_interval)
            if self._usage or self._token_lastused:
                try:
                    self._send.send_nowait(_Barrier(usage=True))
                except trio.WouldBlock:
                    pass  # busy: the next round will do
                except trio.ClosedResourceError:
                    return

    async def _close(self) -> None:
        """Flush everything and stop the writer. Call shielded."""
        self._accepting = False
        self._closing = True
        self._give_up_at = trio.current_time() + self._close_timeout
        if not self._writer_done.is_set():
            with trio.move_on_after(self._close_timeout):
                # Final usage counters and token bookkeeping.
                await self._send.send(_Barrier(usage=True))
        await self._send.aclose()
        await self._writer_done.wait()
        if self._usage:
            log.error("%d usage counters NOT stored at close", len(self._usage))

    # ----------------------------------------------------------------- vehicles & owners

    async def get_vehicle(self, vehicleid: str, *, fresh: bool = False) -> VehicleRecord | None:
        """The vehicle (cached up to the cache TTL); ``fresh``: always from the database,
        as for logins, where a cache that only holds known ids would tell them apart."""
        now = trio.current_time()
        hit = self._vehicles.get(vehicleid)
        if not fresh and hit is not None and hit[1] > now:
            return hit[0]
        row: dict[str, Any] | None = await self._read_now(
            partial(_read_vehicle, vehicleid=vehicleid))
        if row is None:
            self._vehicles.pop(vehicleid, None)
            return None
        record = VehicleRecord(
            row["vehicleid"],
            row["owner"],
            row["carpass"],
            row["vtype"],
            self._ptokens.get(vehicleid, row["ptoken"]),
        )
        self._vehicles[vehicleid] = (record, trio.current_time() + self._cache_ttl)
        if vehicleid not in self._lastupdate and row["lastupdate"] is not None:
            self._lastupdate[vehicleid] = float(row["lastupdate"])
        return record

    async def get_owner(self, name: str) -> OwnerRecord | None:
        now = trio.current_time()
        hit = self._owners.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        record: OwnerRecord | None = await self._read_now(partial(_read_owner, name=name))
        if record is None:
            self._owners.pop(name, None)
            return None
        self._owners[name] = (record, trio.current_time() + self._cache_ttl)
        return record

    def forget_owner(self, name: str) -> None:
        """Drop the cached owner record (its password or status changed in the database)."""
        self._owners.pop(name, None)

    async def owner_vehicles(self, owner: str) -> list[str]:
        result: list[str] = await self._read_now(partial(_read_owner_vehicles, owner=owner))
        return result

    async def check_password(
        self, name: str, password: str, *, admit: Callable[[], None] | None = None
    ) -> bool:
        """argon2-verify ``password`` for an active owner (slow; runs in a worker thread).

        ``admit()`` is called once the check has its hash slot, right before hashing; it
        may raise to refuse the check (the login guard: the check may have waited).
        """
        owner = await self.get_owner(name)
        async with self._hash_limiter:
            if admit is not None:
                admit()
            if owner is None or owner.status <= 0:
                # Spend the same time as a real check, so unknown names don't show.
                if self._dummy_hash is None:
                    self._dummy_hash = await trio.to_thread.run_sync(
                        db.hash_password, "not a password")
                await trio.to_thread.run_sync(db.verify_password, self._dummy_hash, password)
                return False
            ok: bool = await trio.to_thread.run_sync(
                db.verify_password, owner.password_hash, password)
        # Outside the slot: the upgrade takes one of its own.
        if ok and legacy_hash.is_legacy(owner.password_hash):
            await self._upgrade_legacy_hash(name, owner.password_hash, password)
        return ok

    async def _upgrade_legacy_hash(self, name: str, old_hash: str, password: str) -> None:
        """An imported Drupal hash just verified: store the project's own hash instead."""
        new_hash = await trio.to_thread.run_sync(
            db.hash_password, password, limiter=self._hash_limiter)
        try:
            await self._call("owners", partial(
                db.upgrade_password_hash, name=name, old_hash=old_hash, new_hash=new_hash))
        except StoreError as exc:  # the login stands; the next one tries again
            log.warning("owner %s: imported password hash not replaced: %s", name, exc)
        self._owners.pop(name, None)

    async def token_owner(self, token: str) -> tuple[str, str] | None:
        """(owner, permit) of an API token presented alone (``Authorization: Bearer``)."""
        digest = db.token_hash(token)
        found: tuple[str, str] | None = await self._read_now(
            partial(_read_token_owner, digest=digest))
        if found is not None:
            self._token_lastused[digest] = time.time()  # written with the next batch
        return found

    async def check_token(self, name: str, token: str) -> str | None:
        """The permit of ``token`` if it is one of ``name``'s API tokens, else None."""
        digest = db.token_hash(token)
        permit: str | None = await self._read_now(
            partial(_read_token_permit, owner=name, digest=digest)
        )
        if permit is not None:
            self._token_lastused[digest] = time.time()  # written with the next batch
        return permit

    async def list_tokens(self, owner: str) -> list[TokenRecord]:
        result: list[TokenRecord] = await self._read(partial(_read_tokens, owner=owner))
        return result

    async def create_token(
        self, owner: str, application: str, purpose: str, permit: str
    ) -> tuple[str, TokenRecord]:
        """A new random 64-hex-char token for ``owner``, committed before returning.

        Returns the token (shown once, never stored) and its stored record.
        """
        token = secrets.token_hex(32)
        record = TokenRecord(db.token_hash(token), owner, application, purpose, permit,
                             time.time())
        await self._call("tokens", partial(_insert_token, record=record))
        return token, record

    async def delete_token(self, owner: str, token: str) -> str | None:
        """Delete one of ``owner``'s tokens, given the token or its digest; its digest if found."""
        candidates = (db.token_hash(token), token.lower())
        deleted: str | None = await self._call(
            "tokens", partial(_delete_token, owner=owner, candidates=candidates)
        )
        return deleted

    async def credentials(
        self, owners: Iterable[str], digests: Iterable[str]
    ) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
        """From the database (never the cache): of ``owners``, (password hash, status) by
        name, and of the API tokens ``digests``, their owner by digest; missing ones left out."""
        result: tuple[dict[str, tuple[str, int]], dict[str, str]] = await self._read(
            partial(_read_credentials, owners=tuple(owners), digests=tuple(digests)))
        return result

    async def get_provision(self, apkey: str) -> ProvisionRecord | None:
        result: ProvisionRecord | None = await self._read_now(partial(_read_provision, apkey=apkey))
        return result

    # ----------------------------------------------------------------- latest messages

    async def _ensure_latest(self, vehicleid: str) -> None:
        while vehicleid not in self._latest_loaded:
            loading = self._latest_loading.get(vehicleid)
            if loading is not None:
                await loading.wait()
                continue
            event = self._latest_loading[vehicleid] = trio.Event()
            try:
                stored, lastupdate = await self._read_now(
                    partial(_load_latest, vehicleid=vehicleid))
                # Anything put while loading is newer than what was read.
                overlay = self._latest.get(vehicleid, {})
                stored.update(overlay)
                stored = self._trim(vehicleid, stored)
                self._latest[vehicleid] = stored
                if vehicleid not in self._lastupdate or self._lastupdate[vehicleid] is None:
                    self._lastupdate[vehicleid] = lastupdate
                self._latest_loaded.add(vehicleid)
            finally:
                del self._latest_loading[vehicleid]
                event.set()

    def _trim(self, vehicleid: str, stored: dict[str, StoredMessage]) -> dict[str, StoredMessage]:
        """Keep a vehicle's loaded messages within the limits (F, S, then the newest).

        Only a database written before the limits existed holds more; the rest stay
        in the file but are neither served nor replayed.
        """
        if len(stored) <= self._max_codes and _data_size(stored) <= self._max_bytes:
            return stored
        kept: dict[str, StoredMessage] = {}
        size = 0
        for message in sorted(stored.values(), key=_keep_order):
            if len(kept) >= self._max_codes:
                break
            if size + len(message.data) > self._max_bytes:
                continue
            kept[message.code] = message
            size += len(message.data)
        log.warning(
            "vehicle=%s: %d stored message codes (%d bytes) exceed the limits "
            "(max_stored_codes=%d, max_stored_bytes=%d); serving %d of them",
            vehicleid, len(stored), _data_size(stored), self._max_codes, self._max_bytes,
            len(kept),
        )
        return kept

    def _refuse(self, vehicleid: str, code: str, reason: str) -> None:
        """Log a refused store, at most once per interval per vehicle."""
        now = trio.current_time()
        last, unlogged = self._refusals.get(vehicleid, (-_REFUSAL_LOG_INTERVAL, 0))
        if now - last < _REFUSAL_LOG_INTERVAL:
            self._refusals[vehicleid] = (last, unlogged + 1)
            return
        self._refusals[vehicleid] = (now, 0)
        log.warning(
            "vehicle=%s: message code %r not stored: %s%s", vehicleid, code[:1], reason,
            f" ({unlogged} more refused since the last such line)" if unlogged else "",
        )

    async def latest(self, vehicleid: str) -> dict[str, StoredMessage]:
        """The vehicle's stored messages by code (a copy)."""
        await self._ensure_latest(vehicleid)
        return dict(self._latest[vehicleid])

    def last_update(self, vehicleid: str) -> float | None:
        return self._lastupdate.get(vehicleid)

    async def put_latest(
        self,
        vehicleid: str,
        code: str,
        data: str,
        *,
        paranoid: bool = False,
        ptoken: str = "",
        when: float | None = None,
    ) -> bool:
        """Store the vehicle's latest message of this code; False if refused (limits).

        A refusal is logged (rate-limited); the message may still be relayed live.
        """
        await self._ensure_latest(vehicleid)
        messages = self._latest[vehicleid]
        old = messages.get(code)
        if old is None and len(messages) >= self._max_codes:
            self._refuse(vehicleid, code, f"the vehicle already has {len(messages)} message "
                                          f"codes stored (max_stored_codes)")
            return False
        size = _data_size(messages) - (len(old.data) if old is not None else 0) + len(data)
        if size > self._max_bytes:
            self._refuse(vehicleid, code, f"stored data would be {size} bytes, over "
                                          f"max_stored_bytes={self._max_bytes}")
            return False
        when = time.time() if when is None else when
        write = _Write(
            "latest",
            _UPSERT_LATEST,
            (vehicleid, code, when, int(paranoid), ptoken, _enc(data)),
            lastupdate=(vehicleid, when),
        )
        messages[code] = StoredMessage(code, data, when, paranoid, ptoken)
        self._lastupdate[vehicleid] = when
        await self._submit(write)
        return True

    async def set_paranoid_token(self, vehicleid: str, ptoken: str) -> bool:
        """Record the car's paranoid-mode token; True if it changed.

        On a change, stored paranoid messages under any other token are deleted.
        """
        current = self._ptokens.get(vehicleid)
        if current is None:
            record = await self.get_vehicle(vehicleid)
            current = self._ptokens.get(vehicleid, record.ptoken if record else "")
        if current == ptoken:
            return False
        await self._ensure_latest(vehicleid)
        if self._ptokens.get(vehicleid, current) == ptoken:
            return False  # a concurrent call got there first
        self._ptokens[vehicleid] = ptoken
        messages = self._latest[vehicleid]
        for code in [c for c, m in messages.items() if m.paranoid and m.ptoken != ptoken]:
            del messages[code]
        hit = self._vehicles.get(vehicleid)
        if hit is not None:
            self._vehicles[vehicleid] = (attrs.evolve(hit[0], ptoken=ptoken), hit[1])
        await self._submit(_Write("latest", _DELETE_PARANOID, (vehicleid, ptoken)))
        await self._submit(_Write("vehicles", _SET_PTOKEN, (ptoken, vehicleid)))
        return True

    # ----------------------------------------------------------------- historical

    async def add_historical(
        self,
        vehicleid: str,
        htype: str,
        recordnumber: int,
        data: str,
        *,
        timestamp: int,
        expires: int,
        durable: bool = False,
        from_car: bool = True,
    ) -> None:
        """Upsert a historical record; with ``durable=True`` return once committed.

        ``from_car=False`` marks a record the server writes itself (alert logs): it
        does not move the vehicle's last-update time, which apps see as ``T``.
        """
        now = time.time()
        waiter = _Waiter() if durable else None
        write = _Write(
            "historical",
            _UPSERT_HISTORICAL,
            (vehicleid, htype, int(recordnumber), int(timestamp), int(expires), _enc(data)),
            lastupdate=(vehicleid, now) if from_car else None,
            waiter=waiter,
        )
        if from_car:
            self._lastupdate[vehicleid] = now
        await self._submit(write)
        if waiter is not None:
            await waiter.wait()

    async def historical_summary(
        self, vehicleid: str, since: int | None = None
    ) -> list[HistoricalSummary]:
        """Per record type (unexpired, ``ts > since``): counts, data bytes, first/last ts."""
        result: list[HistoricalSummary] = await self._read(
            partial(_read_historical_summary, vehicleid=vehicleid, since=since, now=time.time())
        )
        return result

    async def historical_records(
        self, vehicleid: str, htype: str, since: int | None = None
    ) -> list[HistoricalRecord]:
        """Unexpired records of one type with ``ts > since``, by ts then recordnumber."""
        result: list[HistoricalRecord] = await self._read(
            partial(
                _read_historical_records,
                vehicleid=vehicleid,
                htype=htype,
                since=since,
                now=time.time(),
            )
        )
        return result

    async def purge_expired(self, now: float | None = None) -> int:
        """Delete historical records with ``expires < now`` in batches; returns the count."""
        cutoff = time.time() if now is None else now
        total = 0
        while True:
            deleted: int = await self._call(
                "historical", partial(_purge_round, cutoff=cutoff, limit=self._purge_batch)
            )
            self.stats.purge_batches += 1
            self.stats.purged += deleted
            total += deleted
            if deleted < self._purge_batch:
                break
            await trio.sleep(0)
        if total:
            log.info("purged %d expired historical records", total)
        for name, purge in self._purges.items():
            count = 0
            while True:
                deleted = await self._call(
                    name, partial(purge, now=cutoff, limit=self._purge_batch))
                self.stats.purge_batches += 1
                count += deleted
                if deleted < self._purge_batch:
                    break
                await trio.sleep(0)
            if count:
                log.info("purged %d expired %s rows", count, name)
            total += count
        return total

    # ----------------------------------------------------------------- extensions
    # Optional components (relay.v4) keep their SQL next to their code and run it
    # through the one writer, so they share its group commit and FIFO ordering.

    def add_purge(self, name: str, fn: Callable[..., int]) -> None:
        """Run ``fn(conn, now=..., limit=...) -> rows deleted`` in every purge, in rounds."""
        self._purges[name] = fn

    async def query(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read in the writer's thread after everything queued so far."""
        return await self._read(fn)

    async def write(self, table: str, sql: str, params: tuple[Any, ...]) -> None:
        """Queue one statement; group-committed, not waited for (like ``put_latest``)."""
        await self._submit(_Write(table, sql, params))

    async def write_call(self, table: str, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` inside the next batch's transaction; returns once committed."""
        return await self._call(table, fn)

    # ----------------------------------------------------------------- usage

    def _day(self, when: float) -> str:
        number = int(when // 86400)
        if self._day_cache[0] != number:
            self._day_cache = (number, _utc_day(when))
        return self._day_cache[1]

    def add_usage(
        self,
        vehicleid: str,
        *,
        car_rx: int = 0,
        car_tx: int = 0,
        app_rx: int = 0,
        app_tx: int = 0,
        when: float | None = None,
    ) -> None:
        """Count traffic for the vehicle's UTC day (in memory; flushed every few seconds)."""
        day = self._day(time.time() if when is None else when)
        counts = self._usage.get((vehicleid, day))
        if counts is None:
            self._usage[(vehicleid, day)] = [car_rx, car_tx, app_rx, app_tx]
        else:
            counts[0] += car_rx
            counts[1] += car_tx
            counts[2] += app_rx
            counts[3] += app_tx

    async def usage(self, vehicleid: str, days: int = 90) -> list[UsageDay]:
        """Daily traffic for the last ``days`` UTC days (today included), newest first."""
        first_day = _utc_day(time.time() - (max(days, 1) - 1) * 86400)

        def merge(stored: dict[str, list[int]]) -> list[UsageDay]:
            # Runs right after the read, so unflushed counts are exactly self._usage.
            for (vid, day), counts in self._usage.items():
                if vid == vehicleid and day >= first_day:
                    total = stored.setdefault(day, [0, 0, 0, 0])
                    for i in range(4):
                        total[i] += counts[i]
            return [UsageDay(day, *stored[day]) for day in sorted(stored, reverse=True)]

        result: list[UsageDay] = await self._read(
            partial(_read_usage, vehicleid=vehicleid, first_day=first_day), post=merge
        )
        return result

    # ----------------------------------------------------------------- push subscriptions

    async def add_push_subscription(self, sub: PushSubscription) -> None:
        now = time.time()
        await self._submit(
            _Write(
                "push_subscriptions",
                _UPSERT_PUSH,
                (
                    sub.vehicleid,
                    sub.appid,
                    sub.owner,
                    sub.pushtype,
                    sub.pushkeytype,
                    sub.pushkeyvalue,
                    now,
                    now,
                ),
            )
        )

    async def push_subscriptions(self, vehicleid: str) -> list[PushSubscription]:
        result: list[PushSubscription] = await self._read(partial(_read_push, vehicleid=vehicleid))
        return result

    async def deactivate_push_subscription(
        self, vehicleid: str, appid: str, pushkeyvalue: str
    ) -> None:
        """The push service called this token dead: stop delivering to it (until re-subscribed)."""
        await self._submit(
            _Write("push_subscriptions", _DEACTIVATE_PUSH, (vehicleid, appid, pushkeyvalue))
        )

    # Pending push deliveries: group-committed like everything else (no waiting), so
    # the relay never waits on them; FIFO order makes a later delete follow its insert.

    async def add_push_pending(self, item: PendingPush) -> None:
        await self._submit(
            _Write(
                "push_pending",
                _INSERT_PENDING,
                (item.nid, item.vehicleid, item.appid, item.owner, item.pushtype,
                 item.pushkeytype, item.pushkeyvalue, item.alerttype, _enc(item.text),
                 item.created, item.expires, item.attempts, item.next_try),
            )
        )

    async def retry_push_pending(self, item: PendingPush) -> None:
        """Store the item's new ``attempts`` and ``next_try``."""
        await self._submit(
            _Write("push_pending", _RETRY_PENDING,
                   (item.attempts, item.next_try, item.nid, item.vehicleid, item.appid))
        )

    async def delete_push_pending(self, item: PendingPush) -> None:
        await self._submit(
            _Write("push_pending", _DELETE_PENDING, (item.nid, item.vehicleid, item.appid))
        )

    async def take_push_pending(self, now: float | None = None) -> tuple[list[PendingPush], int]:
        """All unexpired pending deliveries (at startup) and how many expired ones were deleted."""
        cutoff = time.time() if now is None else now
        result: tuple[list[PendingPush], int] = await self._call(
            "push_pending", partial(_take_pending, now=cutoff), wait=True
        )
        return result


@asynccontextmanager
async def open_store(
    path: str,
    *,
    flush_interval: float = 0.005,
    max_batch: int = 2000,
    purge_interval: float = 3600.0,
    purge_batch: int = 5000,
    cache_ttl: float = 30.0,
    usage_interval: float = USAGE_INTERVAL,
    close_timeout: float = CLOSE_TIMEOUT,
    hash_concurrency: int = 2,
    read_timeout: float = READ_TIMEOUT,
    read_threads: int = READ_THREADS,
    max_stored_codes: int = MAX_STORED_CODES,
    max_stored_bytes: int = MAX_STORED_BYTES,
) -> AsyncIterator[Store]:
    """Open the database at ``path`` and run the store's tasks while the block runs.

    Raises ``relay.db.DatabaseError`` if the file cannot be used. On exit (also
    on error or cancellation) everything queued is committed before closing.
    """
    conn = await trio.to_thread.run_sync(db.connect, path)
    # An in-memory database exists only in its one connection: no separate readers.
    in_memory = path == ":memory:" or path.startswith("file:")
    pool = None if in_memory else _ReadPool(path, read_threads)
    store = Store(
        conn,
        flush_interval=flush_interval,
        max_batch=max_batch,
        purge_interval=purge_interval,
        purge_batch=purge_batch,
        cache_ttl=cache_ttl,
        usage_interval=usage_interval,
        close_timeout=close_timeout,
        hash_concurrency=hash_concurrency,
        read_pool=pool,
        read_timeout=read_timeout,
        max_stored_codes=max_stored_codes,
        max_stored_bytes=max_stored_bytes,
    )
    log.info("store opened: %s", path)
    # The nursery is an implementation detail: an exception from the caller's
    # block is re-raised as itself, not wrapped in an ExceptionGroup.
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store._writer)
            nursery.start_soon(store._background)
            try:
                yield store
            except BaseException as exc:
                body_error = exc
            finally:
                store._bg_scope.cancel()
                with trio.CancelScope(shield=True):
                    await store._close()
        if body_error is not None:
            raise body_error
    finally:
        with trio.CancelScope(shield=True):
            if pool is not None:
                await trio.to_thread.run_sync(pool.close)
            await trio.to_thread.run_sync(conn.close)
        log.info(
            "store closed: %s (%d commits, %d writes)",
            path,
            store.stats.commits,
            store.stats.writes,
        )
