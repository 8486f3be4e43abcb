"""Synchronous admin API over the relay's database (``ovms-admin``, imports, backup).

Blocking calls; the server itself uses ``relay.store``. :func:`connect` opens a SQLite
file (a plain ``sqlite3`` connection) or a ``postgresql://`` URL (a
:class:`relay.store.postgres.PostgresConnection`); both take the same ``?`` SQL. The
schema is ``relay.store.schema``; statements the store also runs are its repositories'
(``relay.store.accounts``, ``vehicles``, ``provisioning``), so each is written once.
Connections are in autocommit mode and every write goes through :func:`transaction`.

Secrets: owner passwords are stored as argon2 hashes and API tokens as SHA-256
hex digests (``relay.store.passwords``); car passwords are stored as given
because the protocol's HMAC handshake needs the shared secret itself.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

from relay import permits
from relay.store import accounts, sqlite, vehicles
from relay.store import provisioning as provision_repo
from relay.store.backend import Connection
from relay.store.engines import is_postgres, postgres_backend
from relay.store.errors import DatabaseError
from relay.store.passwords import hash_password, token_hash, token_shaped, verify_password
from relay.store.schema import LOGIN_TABLES, OWNER_COLUMNS, SCHEMA_VERSION, VEHICLE_DATA_TABLES
from relay.store.sqlite import SQLiteConnection

__all__ = [
    "SCHEMA_VERSION", "AdminError", "DatabaseError", "connect", "connect_reader",
    "hash_password", "token_hash", "token_shaped", "transaction", "verify_password",
]

VEHICLE_TYPES = ("CAR", "SERVER")


# A SQLite file's plain connection, or another backend's (PostgreSQL).
AdminConnection: TypeAlias = sqlite3.Connection | Connection


class AdminError(Exception):
    """An administrative operation was refused (one-line reason)."""


def connect(target: str) -> AdminConnection:
    """Open (creating or migrating the schema) the SQLite file or ``postgresql://`` URL."""
    if is_postgres(target):
        return postgres_backend(target).connect()
    return sqlite.connect(target)


def connect_reader(target: str) -> AdminConnection:
    """A read-only connection to a database :func:`connect` has set up."""
    if is_postgres(target):
        return postgres_backend(target).connect_reader()
    return sqlite.connect_reader(target)


@contextmanager
def transaction(conn: AdminConnection) -> Iterator[AdminConnection]:
    """Begin ... commit, rolling back on any exception."""
    if isinstance(conn, sqlite3.Connection):
        with sqlite.transaction(conn):
            yield conn
    else:
        with conn.transaction():
            yield conn


def wrapped(conn: AdminConnection) -> Connection:
    """The connection as a ``relay.store.backend.Connection`` (lossless text on SQLite too)."""
    return SQLiteConnection(conn) if isinstance(conn, sqlite3.Connection) else conn


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


def _require_owner(conn: AdminConnection, name: str) -> None:
    if conn.execute("SELECT 1 FROM owners WHERE name=?", (name,)).fetchone() is None:
        raise AdminError(f"unknown owner {name!r}")


def _require_vehicle(conn: AdminConnection, vehicleid: str) -> None:
    if conn.execute("SELECT 1 FROM vehicles WHERE vehicleid=?", (vehicleid,)).fetchone() is None:
        raise AdminError(f"unknown vehicle {vehicleid!r}")


# --------------------------------------------------------------------------- owners


def add_owner(conn: AdminConnection, name: str, password: str, permissions: str = "*") -> None:
    _check_owner_name(name)
    if not password:
        raise AdminError("password must not be empty")
    password_hash = hash_password(password)  # slow: do it outside the write lock
    with transaction(conn):
        if conn.execute("SELECT 1 FROM owners WHERE name=?", (name,)).fetchone() is not None:
            raise AdminError(f"owner {name!r} already exists")
        conn.execute(accounts.INSERT_OWNER, (name, password_hash, permissions, time.time()))


def set_password(conn: AdminConnection, name: str, password: str) -> None:
    if not password:
        raise AdminError("password must not be empty")
    password_hash = hash_password(password)
    with transaction(conn):
        _require_owner(conn, name)
        conn.execute("UPDATE owners SET password_hash=? WHERE name=?", (password_hash, name))
        # Cluster mode's stored cookie sessions made with the old password end too.
        conn.execute("DELETE FROM api_sessions WHERE owner=? AND cred_kind='password'", (name,))


def delete_owner(conn: AdminConnection, name: str) -> None:
    """Delete an owner, its vehicles (with all their stored data) and its API tokens."""
    with transaction(conn):
        _require_owner(conn, name)
        rows = conn.execute("SELECT vehicleid FROM vehicles WHERE owner=?", (name,)).fetchall()
        for row in rows:
            _delete_vehicle_rows(conn, row[0])
        conn.execute("DELETE FROM push_subscriptions WHERE owner=?", (name,))
        conn.execute("DELETE FROM tokens WHERE owner=?", (name,))
        _delete_logins(conn, name)
        conn.execute("DELETE FROM owners WHERE name=?", (name,))


def _delete_logins(conn: AdminConnection, owner: str) -> None:
    for table in LOGIN_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE owner=?", (owner,))


def list_owners(conn: AdminConnection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT o.name, o.status, o.permissions, o.created, "
        "(SELECT COUNT(*) FROM vehicles v WHERE v.owner = o.name) AS vehicles "
        "FROM owners o ORDER BY o.name"
    ).fetchall()
    return [dict(row) for row in rows]


def get_owner(conn: AdminConnection, name: str) -> dict[str, Any] | None:
    row = accounts.owner_row(wrapped(conn), name)
    return dict(row) if row is not None else None


# --------------------------------------------------------------------------- vehicles


def add_vehicle(
    conn: AdminConnection, vehicleid: str, owner: str, carpass: str, vtype: str = "CAR"
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
        conn.execute(vehicles.INSERT_VEHICLE, (vid, owner, carpass, vtype, time.time()))
    return vid


def _delete_vehicle_rows(conn: AdminConnection, vid: str) -> None:
    for table in VEHICLE_DATA_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE vehicleid=?", (vid,))
    conn.execute("DELETE FROM vehicles WHERE vehicleid=?", (vid,))


def delete_vehicle(conn: AdminConnection, vehicleid: str) -> None:
    """Delete a vehicle and everything stored for it."""
    vid = normalize_vehicleid(vehicleid)
    with transaction(conn):
        _require_vehicle(conn, vid)
        _delete_vehicle_rows(conn, vid)


def list_vehicles(conn: AdminConnection, owner: str | None = None) -> list[dict[str, Any]]:
    """Vehicles (without their car passwords), optionally only those of ``owner``."""
    columns = "vehicleid, owner, vtype, created, lastupdate, name"
    if owner is None:
        rows = conn.execute(f"SELECT {columns} FROM vehicles ORDER BY vehicleid").fetchall()
    else:
        _require_owner(conn, owner)
        rows = conn.execute(
            f"SELECT {columns} FROM vehicles WHERE owner=? ORDER BY vehicleid", (owner,)
        ).fetchall()
    return [dict(row) for row in rows]


def get_vehicle(conn: AdminConnection, vehicleid: str) -> dict[str, Any] | None:
    return vehicles.read_vehicle(wrapped(conn), vehicleid)


def set_carpass(conn: AdminConnection, vehicleid: str, carpass: str) -> None:
    vid = normalize_vehicleid(vehicleid)
    if not carpass:
        raise AdminError("car password must not be empty")
    with transaction(conn):
        _require_vehicle(conn, vid)
        conn.execute("UPDATE vehicles SET carpass=? WHERE vehicleid=?", (carpass, vid))


# --------------------------------------------------------------------------- API tokens


def add_token(
    conn: AdminConnection,
    owner: str,
    application: str = "",
    purpose: str = "",
    permit: str = "auth",
) -> str:
    """Create an API token for ``owner``; returns the plain token (only stored hashed)."""
    token = secrets.token_hex(32)
    with transaction(conn):
        _require_owner(conn, owner)
        conn.execute(accounts.INSERT_TOKEN,
                     (token_hash(token), owner, application, purpose, permit, time.time()))
    return token


def list_tokens(conn: AdminConnection, owner: str) -> list[dict[str, Any]]:
    """The owner's tokens; each identified by its ``token_hash`` (the token itself is gone)."""
    _require_owner(conn, owner)
    return [dict(row) for row in accounts.token_rows(wrapped(conn), owner)]


def delete_token(conn: AdminConnection, owner: str, token: str) -> None:
    """Delete one of the owner's tokens, given the plain token or its ``token_hash``."""
    with transaction(conn):
        _require_owner(conn, owner)
        if accounts.delete_token(wrapped(conn), owner, (token_hash(token), token.lower())):
            return
        raise AdminError(f"no such token for owner {owner!r}")


# --------------------------------------------------------------------------- provisioning


def add_provision(
    conn: AdminConnection,
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
        conn.execute(provision_repo.INSERT_PROVISION,
                     (apkey, owner, vid, stoken, sdigest, provisioning, time.time()))


def list_provisions(conn: AdminConnection) -> list[dict[str, Any]]:
    """Provisioning records without their server tokens."""
    rows = conn.execute(
        "SELECT apkey, owner, vehicleid, created FROM provisioning ORDER BY apkey"
    ).fetchall()
    return [dict(row) for row in rows]


def get_provision(conn: AdminConnection, apkey: str) -> dict[str, Any] | None:
    row = provision_repo.provision_row(wrapped(conn), apkey)
    return dict(row) if row is not None else None


def delete_provision(conn: AdminConnection, apkey: str) -> None:
    with transaction(conn):
        cur = conn.execute("DELETE FROM provisioning WHERE apkey=?", (apkey,))
        if not cur.rowcount:
            raise AdminError(f"unknown provisioning record {apkey!r}")


# --------------------------------------------------------------------------- imported hashes


def upgrade_password_hash(
    conn: AdminConnection, name: str, old_hash: str, new_hash: str
) -> bool:
    """Replace ``name``'s password hash if it is still ``old_hash``; False if it changed
    meanwhile (a new password wins). Runs in the caller's transaction."""
    return accounts.upgrade_password_hash(wrapped(conn), name, old_hash, new_hash)


# --------------------------------------------------------------------------- names

# A vehicle's display name: shown in lists, so short and on one line.
MAX_VEHICLE_NAME = 64


def check_vehicle_name(name: str) -> str:
    """A display name as stored: surrounding spaces dropped, at most ``MAX_VEHICLE_NAME``
    printable characters ('' clears it)."""
    name = name.strip()
    if len(name) > MAX_VEHICLE_NAME:
        raise AdminError(f"vehicle name too long: at most {MAX_VEHICLE_NAME} characters")
    if not name.isprintable():
        raise AdminError("vehicle name: only printable characters (no control characters)")
    return name


def set_vehicle_name(
    conn: AdminConnection, vehicleid: str, name: str, owner: str | None = None
) -> str:
    """Set a vehicle's display name; with ``owner``, only if it is that owner's vehicle
    (the owner's own change). Returns the name as stored."""
    vid = normalize_vehicleid(vehicleid)
    name = check_vehicle_name(name)
    with transaction(conn):
        row = conn.execute("SELECT owner FROM vehicles WHERE vehicleid=?", (vid,)).fetchone()
        if row is None or (owner is not None and row[0] != owner):
            raise AdminError(f"unknown vehicle {vid!r}")
        conn.execute(vehicles.SET_NAME, (name, vid))
    return name


def rename_owner(conn: AdminConnection, old: str, new: str) -> None:
    """Give owner ``old`` the name ``new``: the account, and every row naming it
    (``schema.OWNER_COLUMNS``), in one transaction. Refused if ``new`` exists."""
    _check_owner_name(new)
    if new == old:
        raise AdminError(f"owner {old!r} already has that name")
    with transaction(conn):
        _require_owner(conn, old)
        if conn.execute("SELECT 1 FROM owners WHERE name=?", (new,)).fetchone() is not None:
            raise AdminError(f"owner {new!r} already exists")
        # New row first, old one last: vehicles.owner references owners(name).
        conn.execute("INSERT INTO owners(name, password_hash, status, permissions, created) "
                     "SELECT ?, password_hash, status, permissions, created FROM owners "
                     "WHERE name=?", (new, old))
        for table, column in OWNER_COLUMNS:
            conn.execute(f"UPDATE {table} SET {column}=? WHERE {column}=?", (new, old))
        _delete_logins(conn, old)
        conn.execute("DELETE FROM owners WHERE name=?", (old,))
