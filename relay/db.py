"""Synchronous SQLite layer shared by the relay's store and the ``ovms-admin`` CLI.

Everything here is plain blocking ``sqlite3``; the server only calls it from a
worker thread (see ``relay.store``). Connections are opened in autocommit mode
(``isolation_level=None``) and every write goes through :func:`transaction`, so
transaction boundaries are always explicit.

Secrets: owner passwords are stored as argon2 hashes and API tokens as SHA-256
hex digests; car passwords are stored as given because the protocol's HMAC
handshake needs the shared secret itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

from relay import legacy_hash, permits

SCHEMA_VERSION = 3

VEHICLE_TYPES = ("CAR", "SERVER")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owners (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    status        INTEGER NOT NULL DEFAULT 1,
    permissions   TEXT NOT NULL DEFAULT '*',
    created       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vehicles (
    vehicleid  TEXT PRIMARY KEY,
    owner      TEXT NOT NULL REFERENCES owners(name),
    carpass    TEXT NOT NULL,
    vtype      TEXT NOT NULL DEFAULT 'CAR' CHECK (vtype IN ('CAR', 'SERVER')),
    ptoken     TEXT NOT NULL DEFAULT '',
    created    REAL NOT NULL,
    lastupdate REAL
);
CREATE INDEX IF NOT EXISTS vehicles_owner ON vehicles(owner);
CREATE TABLE IF NOT EXISTS latest (
    vehicleid TEXT NOT NULL,
    code      TEXT NOT NULL,
    msgtime   REAL NOT NULL,
    paranoid  INTEGER NOT NULL DEFAULT 0,
    ptoken    TEXT NOT NULL DEFAULT '',
    data      TEXT NOT NULL,
    PRIMARY KEY (vehicleid, code)
);
CREATE TABLE IF NOT EXISTS historical (
    vehicleid    TEXT NOT NULL,
    htype        TEXT NOT NULL,
    recordnumber INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    expires      INTEGER NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (vehicleid, htype, recordnumber, ts)
);
CREATE INDEX IF NOT EXISTS historical_expires ON historical(expires);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash  TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    application TEXT NOT NULL DEFAULT '',
    purpose     TEXT NOT NULL DEFAULT '',
    permit      TEXT NOT NULL DEFAULT 'auth',
    created     REAL NOT NULL,
    lastused    REAL
);
CREATE INDEX IF NOT EXISTS tokens_owner ON tokens(owner);
CREATE TABLE IF NOT EXISTS push_subscriptions (
    vehicleid    TEXT NOT NULL,
    appid        TEXT NOT NULL,
    owner        TEXT NOT NULL,
    pushtype     TEXT NOT NULL,
    pushkeytype  TEXT NOT NULL,
    pushkeyvalue TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1,
    created      REAL NOT NULL,
    lastused     REAL NOT NULL,
    PRIMARY KEY (vehicleid, appid)
);
CREATE TABLE IF NOT EXISTS provisioning (
    apkey        TEXT PRIMARY KEY,
    owner        TEXT,
    vehicleid    TEXT,
    stoken       TEXT NOT NULL,
    sdigest      TEXT NOT NULL,
    provisioning TEXT NOT NULL,
    created      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    vehicleid TEXT NOT NULL,
    day       TEXT NOT NULL,
    car_rx    INTEGER NOT NULL DEFAULT 0,
    car_tx    INTEGER NOT NULL DEFAULT 0,
    app_rx    INTEGER NOT NULL DEFAULT 0,
    app_tx    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (vehicleid, day)
);
"""

# Version 2: push notifications waiting for delivery, one row per (notification,
# subscription), kept until delivered or expired so a restart loses none (relay.push).
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS push_pending (
    nid          TEXT NOT NULL,
    vehicleid    TEXT NOT NULL,
    appid        TEXT NOT NULL,
    owner        TEXT NOT NULL,
    pushtype     TEXT NOT NULL,
    pushkeytype  TEXT NOT NULL,
    pushkeyvalue TEXT NOT NULL,
    alerttype    TEXT NOT NULL,
    alerttext    TEXT NOT NULL,
    created      REAL NOT NULL,
    expires      REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_try     REAL NOT NULL,
    PRIMARY KEY (nid, vehicleid, appid)
);
"""

# Version 3: API v4 (relay.v4.persist): monitors with their evaluation state and
# waiting batch, finished trips and each vehicle's trip builder state, and compact
# telemetry samples (one row per vehicle, time and data path; purged by age).
_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS v4_monitors (
    monitorid  TEXT PRIMARY KEY,
    vehicleid  TEXT NOT NULL,
    owner      TEXT NOT NULL,
    definition TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT '{}',
    batch      TEXT NOT NULL DEFAULT '{}',
    created    REAL NOT NULL,
    updated    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS v4_monitors_vehicle ON v4_monitors(vehicleid);
CREATE TABLE IF NOT EXISTS v4_trips (
    vehicleid TEXT NOT NULL,
    started   REAL NOT NULL,
    ended     REAL NOT NULL,
    trip      TEXT NOT NULL,
    PRIMARY KEY (vehicleid, started)
);
CREATE TABLE IF NOT EXISTS v4_trip_state (
    vehicleid TEXT PRIMARY KEY,
    state     TEXT NOT NULL,
    updated   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS v4_telemetry (
    vehicleid TEXT NOT NULL,
    ts        INTEGER NOT NULL,
    metric    TEXT NOT NULL,
    value     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS v4_telemetry_series ON v4_telemetry(vehicleid, metric, ts);
CREATE INDEX IF NOT EXISTS v4_telemetry_ts ON v4_telemetry(ts);
"""

# Tables holding per-vehicle data, deleted together with the vehicle.
_VEHICLE_DATA_TABLES = ("latest", "historical", "usage", "push_subscriptions", "push_pending",
                        "v4_monitors", "v4_trips", "v4_trip_state", "v4_telemetry")


class DatabaseError(Exception):
    """The database file cannot be opened or used (one-line reason)."""


class AdminError(Exception):
    """An administrative operation was refused (one-line reason)."""


# --------------------------------------------------------------------------- connection


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and ensure the schema exists.

    The connection is in autocommit mode and may be used from any one thread at
    a time (``check_same_thread=False``); rows are ``sqlite3.Row``.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseError(f"cannot open database {path!r}: {_one_line(exc)}") from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        _ensure_schema(conn)
    except (sqlite3.Error, OSError, DatabaseError) as exc:
        conn.close()
        if isinstance(exc, DatabaseError):
            raise
        raise DatabaseError(f"cannot open database {path!r}: {_one_line(exc)}") from None
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to a database :func:`connect` has set up.

    In WAL mode readers never wait for the writer, so the server's reads keep
    working while a write is stuck (a full disk, a long transaction).
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseError(f"cannot open database {path!r}: {_one_line(exc)}") from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(f"cannot open database {path!r}: {_one_line(exc)}") from None
    return conn


def _ensure_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database schema version {version} is newer than this program supports "
            f"({SCHEMA_VERSION})"
        )
    with transaction(conn):
        # Re-check under the write lock: another process may have just done it.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in (_SCHEMA + _SCHEMA_V2 + _SCHEMA_V3).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        else:
            if version == 1:
                conn.execute(_SCHEMA_V2)
                version = 2
            if version == 2:
                for statement in _SCHEMA_V3.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                version = 3
            conn.execute(f"PRAGMA user_version={version}")
        # Future migrations: ``if version == 1: ...; version = 2`` and so on.


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


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


# --------------------------------------------------------------------------- secrets

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches the argon2 ``password_hash``; never raises."""
    if legacy_hash.is_legacy(password_hash):  # imported from the Perl server (Drupal 7)
        return legacy_hash.verify(password_hash, password)
    try:
        return _hasher.verify(password_hash, password)
    except (Argon2Error, InvalidHashError, ValueError, TypeError):
        return False


_TOKEN_RE = re.compile(r"[0-9a-fA-F]{64}")


def token_shaped(secret: str) -> bool:
    """Could ``secret`` be an API token (64 hex characters) rather than a password?"""
    return _TOKEN_RE.fullmatch(secret) is not None


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which an API token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


# --------------------------------------------------------------------------- validation


def normalize_vehicleid(vehicleid: str) -> str:
    """Validate a vehicle id (1-32 of ``[A-Za-z0-9_-]``) and return it upper-cased."""
    if not isinstance(vehicleid, str) or permits.vehicle_id(vehicleid) is None:
        raise AdminError(
            f"bad vehicle id {vehicleid!r}: use 1-32 characters of A-Z, a-z, 0-9, '_' and '-'"
        )
    return vehicleid.upper()


def _check_owner_name(name: str) -> None:
    if not name or name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise AdminError(f"bad owner name {name!r}")


def _require_owner(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM owners WHERE name=?", (name,)).fetchone() is None:
        raise AdminError(f"unknown owner {name!r}")


def _require_vehicle(conn: sqlite3.Connection, vehicleid: str) -> None:
    if conn.execute("SELECT 1 FROM vehicles WHERE vehicleid=?", (vehicleid,)).fetchone() is None:
        raise AdminError(f"unknown vehicle {vehicleid!r}")


# --------------------------------------------------------------------------- owners


def add_owner(conn: sqlite3.Connection, name: str, password: str, permissions: str = "*") -> None:
    _check_owner_name(name)
    if not password:
        raise AdminError("password must not be empty")
    password_hash = hash_password(password)  # slow: do it outside the write lock
    with transaction(conn):
        if conn.execute("SELECT 1 FROM owners WHERE name=?", (name,)).fetchone() is not None:
            raise AdminError(f"owner {name!r} already exists")
        conn.execute(
            "INSERT INTO owners(name, password_hash, status, permissions, created) "
            "VALUES (?, ?, 1, ?, ?)",
            (name, password_hash, permissions, time.time()),
        )


def set_password(conn: sqlite3.Connection, name: str, password: str) -> None:
    if not password:
        raise AdminError("password must not be empty")
    password_hash = hash_password(password)
    with transaction(conn):
        _require_owner(conn, name)
        conn.execute("UPDATE owners SET password_hash=? WHERE name=?", (password_hash, name))


def delete_owner(conn: sqlite3.Connection, name: str) -> None:
    """Delete an owner, its vehicles (with all their stored data) and its API tokens."""
    with transaction(conn):
        _require_owner(conn, name)
        rows = conn.execute("SELECT vehicleid FROM vehicles WHERE owner=?", (name,)).fetchall()
        for row in rows:
            _delete_vehicle_rows(conn, row[0])
        conn.execute("DELETE FROM push_subscriptions WHERE owner=?", (name,))
        conn.execute("DELETE FROM tokens WHERE owner=?", (name,))
        conn.execute("DELETE FROM owners WHERE name=?", (name,))


def list_owners(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT o.name, o.status, o.permissions, o.created, "
        "(SELECT COUNT(*) FROM vehicles v WHERE v.owner = o.name) AS vehicles "
        "FROM owners o ORDER BY o.name"
    ).fetchall()
    return [dict(row) for row in rows]


def get_owner(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT name, password_hash, status, permissions FROM owners WHERE name=?", (name,)
    ).fetchone()
    return dict(row) if row is not None else None


# --------------------------------------------------------------------------- vehicles


def add_vehicle(
    conn: sqlite3.Connection, vehicleid: str, owner: str, carpass: str, vtype: str = "CAR"
) -> str:
    """Register a vehicle; returns the stored (upper-case) vehicle id."""
    vid = normalize_vehicleid(vehicleid)
    vtype = (vtype or "").upper()
    if vtype not in VEHICLE_TYPES:
        raise AdminError(f"bad vehicle type {vtype!r}: use CAR or SERVER")
    if not carpass:
        raise AdminError("car password must not be empty")
    with transaction(conn):
        _require_owner(conn, owner)
        existing = conn.execute("SELECT owner FROM vehicles WHERE vehicleid=?", (vid,)).fetchone()
        if existing is not None:
            raise AdminError(f"vehicle {vid!r} already exists (owner {existing[0]!r})")
        conn.execute(
            "INSERT INTO vehicles(vehicleid, owner, carpass, vtype, ptoken, created) "
            "VALUES (?, ?, ?, ?, '', ?)",
            (vid, owner, carpass, vtype, time.time()),
        )
    return vid


def _delete_vehicle_rows(conn: sqlite3.Connection, vid: str) -> None:
    for table in _VEHICLE_DATA_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE vehicleid=?", (vid,))
    conn.execute("DELETE FROM vehicles WHERE vehicleid=?", (vid,))


def delete_vehicle(conn: sqlite3.Connection, vehicleid: str) -> None:
    """Delete a vehicle and everything stored for it."""
    vid = normalize_vehicleid(vehicleid)
    with transaction(conn):
        _require_vehicle(conn, vid)
        _delete_vehicle_rows(conn, vid)


def list_vehicles(conn: sqlite3.Connection, owner: str | None = None) -> list[dict[str, Any]]:
    """Vehicles (without their car passwords), optionally only those of ``owner``."""
    columns = "vehicleid, owner, vtype, created, lastupdate"
    if owner is None:
        rows = conn.execute(f"SELECT {columns} FROM vehicles ORDER BY vehicleid").fetchall()
    else:
        _require_owner(conn, owner)
        rows = conn.execute(
            f"SELECT {columns} FROM vehicles WHERE owner=? ORDER BY vehicleid", (owner,)
        ).fetchall()
    return [dict(row) for row in rows]


def get_vehicle(conn: sqlite3.Connection, vehicleid: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT vehicleid, owner, carpass, vtype, ptoken, lastupdate FROM vehicles "
        "WHERE vehicleid=?",
        (vehicleid,),
    ).fetchone()
    return dict(row) if row is not None else None


def set_carpass(conn: sqlite3.Connection, vehicleid: str, carpass: str) -> None:
    vid = normalize_vehicleid(vehicleid)
    if not carpass:
        raise AdminError("car password must not be empty")
    with transaction(conn):
        _require_vehicle(conn, vid)
        conn.execute("UPDATE vehicles SET carpass=? WHERE vehicleid=?", (carpass, vid))


# --------------------------------------------------------------------------- API tokens


def add_token(
    conn: sqlite3.Connection,
    owner: str,
    application: str = "",
    purpose: str = "",
    permit: str = "auth",
) -> str:
    """Create an API token for ``owner``; returns the plain token (only stored hashed)."""
    token = secrets.token_hex(32)
    with transaction(conn):
        _require_owner(conn, owner)
        conn.execute(
            "INSERT INTO tokens(token_hash, owner, application, purpose, permit, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token_hash(token), owner, application, purpose, permit, time.time()),
        )
    return token


def list_tokens(conn: sqlite3.Connection, owner: str) -> list[dict[str, Any]]:
    """The owner's tokens; each identified by its ``token_hash`` (the token itself is gone)."""
    _require_owner(conn, owner)
    rows = conn.execute(
        "SELECT token_hash, owner, application, purpose, permit, created, lastused "
        "FROM tokens WHERE owner=? ORDER BY created, token_hash",
        (owner,),
    ).fetchall()
    return [dict(row) for row in rows]


def delete_token(conn: sqlite3.Connection, owner: str, token: str) -> None:
    """Delete one of the owner's tokens, given the plain token or its ``token_hash``."""
    with transaction(conn):
        _require_owner(conn, owner)
        for candidate in (token_hash(token), token.lower()):
            cur = conn.execute(
                "DELETE FROM tokens WHERE token_hash=? AND owner=?", (candidate, owner)
            )
            if cur.rowcount:
                return
        raise AdminError(f"no such token for owner {owner!r}")


# --------------------------------------------------------------------------- provisioning


def add_provision(
    conn: sqlite3.Connection,
    apkey: str,
    stoken: str,
    sdigest: str,
    provisioning: str,
    owner: str | None = None,
    vehicleid: str | None = None,
) -> None:
    if not apkey:
        raise AdminError("apkey must not be empty")
    vid = normalize_vehicleid(vehicleid) if vehicleid else None
    with transaction(conn):
        if owner is not None:
            _require_owner(conn, owner)
        if conn.execute("SELECT 1 FROM provisioning WHERE apkey=?", (apkey,)).fetchone():
            raise AdminError(f"provisioning record {apkey!r} already exists")
        conn.execute(
            "INSERT INTO provisioning(apkey, owner, vehicleid, stoken, sdigest, provisioning, "
            "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (apkey, owner, vid, stoken, sdigest, provisioning, time.time()),
        )


def list_provisions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Provisioning records without their server tokens."""
    rows = conn.execute(
        "SELECT apkey, owner, vehicleid, created FROM provisioning ORDER BY apkey"
    ).fetchall()
    return [dict(row) for row in rows]


def get_provision(conn: sqlite3.Connection, apkey: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT apkey, owner, vehicleid, stoken, sdigest, provisioning FROM provisioning "
        "WHERE apkey=?",
        (apkey,),
    ).fetchone()
    return dict(row) if row is not None else None


def delete_provision(conn: sqlite3.Connection, apkey: str) -> None:
    with transaction(conn):
        cur = conn.execute("DELETE FROM provisioning WHERE apkey=?", (apkey,))
        if not cur.rowcount:
            raise AdminError(f"unknown provisioning record {apkey!r}")


# --------------------------------------------------------------------------- imported hashes


def upgrade_password_hash(
    conn: sqlite3.Connection, name: str, old_hash: str, new_hash: str
) -> bool:
    """Replace ``name``'s password hash if it is still ``old_hash`` (an imported legacy hash
    verified at login); False if it changed meanwhile (a new password wins).

    Runs in the caller's transaction (the store's writer batch).
    """
    cur = conn.execute(
        "UPDATE owners SET password_hash=? WHERE name=? AND password_hash=?",
        (new_hash, name, old_hash),
    )
    return cur.rowcount > 0
