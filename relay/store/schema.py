"""The database schema and its migrations: every table, in one place.

The v4 tables' definitions live with their repository (``relay.store.v4rows``)
and are applied from here. A database is at version ``SCHEMA_VERSION`` after
:func:`migrate`; each step brings version ``n - 1`` to ``n``. Only portable DDL
(TEXT, INTEGER, REAL, composite keys, plain indexes) so every backend runs it, in
SQLite's types (64-bit INTEGER, double REAL): each backend maps them
(``Dialect.schema_sql``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.store import claims, sessions, v4rows
from relay.store.errors import DatabaseError

if TYPE_CHECKING:
    from relay.store.backend import Connection

CORE = """
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
PUSH_PENDING = """
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

# Monitor callback batches waiting for a retry (their SQL: relay.v4.callback_rows).
CALLBACK_PENDING = """
CREATE TABLE IF NOT EXISTS v4_callback_pending (
    jobid     TEXT PRIMARY KEY,
    monitorid TEXT NOT NULL,
    vehicleid TEXT NOT NULL,
    job       TEXT NOT NULL,
    failures  INTEGER NOT NULL,
    next_try  REAL NOT NULL,
    created   REAL NOT NULL
);
"""

# Version 5: a vehicle's display name, set by its owner or an operator (the console,
# ``ovms-admin vehicle name``); '' when none was given. Not part of the v2 protocol or
# the REST answers.
VEHICLE_NAME = """
ALTER TABLE vehicles ADD COLUMN name TEXT NOT NULL DEFAULT ''
"""

# Version n's statements, applied to a database at version n - 1.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, CORE),
    (2, PUSH_PENDING),
    (3, v4rows.SCHEMA),  # API v4: monitors, trips, trip builder state, telemetry
    (4, CALLBACK_PENDING),  # API v4 callback batches waiting for a retry
    (5, VEHICLE_NAME),
    (6, claims.MIGRATION),  # which node retries a pending push or callback, until when
    # REST cookie sessions shared by the nodes of a cluster (relay.http.shared)
    (7, sessions.SCHEMA),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Tables holding per-vehicle data, deleted together with the vehicle.
VEHICLE_DATA_TABLES = ("latest", "historical", "usage", "push_subscriptions", "push_pending",
                       *v4rows.VEHICLE_TABLES)

# Every (table, column) naming an owner besides ``owners.name``: renaming an owner
# (relay.db.rename_owner) rewrites them all in one transaction.
OWNER_COLUMNS = (("vehicles", "owner"), ("tokens", "owner"), ("push_subscriptions", "owner"),
                 ("push_pending", "owner"), ("provisioning", "owner"), ("v4_monitors", "owner"))
# Tables of logins naming an owner: their rows are deleted, not renamed, when the owner is
# renamed or deleted (a rename logs the owner out).
LOGIN_TABLES = ("api_sessions",)


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def migrate(conn: Connection) -> None:
    """Create or upgrade the schema to ``SCHEMA_VERSION``; refuse a newer database."""
    version = conn.schema_version()
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database schema version {version} is newer than this program supports "
            f"({SCHEMA_VERSION})"
        )
    with conn.transaction():
        # Re-check under the write lock: another process may have just done it.
        version = conn.schema_version()
        for step, script in MIGRATIONS:
            if step > version:
                for statement in statements(script):
                    conn.execute(conn.schema_sql(statement))
                version = step
        conn.set_schema_version(version)
