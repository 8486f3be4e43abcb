"""The API v4 repository: its tables (schema version 3) and their SQL.

``relay.v4.persist`` runs these through the store's one writer
(``Store.query``/``write``/``write_call``), so v4 writes share its group commit
and are ordered with everything else. Thread-side functions (``read_*``,
``purge_telemetry``) take a ``relay.store.backend.Connection``.

What is stored: monitors (definition as ``monitor_to_json``, evaluation state,
waiting batch), finished trips and each vehicle's trip builder state (so a
trip in progress survives a restart), and telemetry samples, one compact row
per (vehicle, time, data path) purged by age with the store's bounded purge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from relay.store.backend import upsert_sql

if TYPE_CHECKING:
    from relay.store.backend import Connection

SCHEMA = """
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
VEHICLE_TABLES = ("v4_monitors", "v4_trips", "v4_trip_state", "v4_telemetry")


@attrs.frozen
class MonitorRow:
    monitorid: str
    vehicleid: str
    owner: str
    definition: dict[str, Any]
    state: dict[str, Any]
    batch: dict[str, Any]
    created: float
    updated: float


@attrs.frozen
class TripRow:
    vehicleid: str
    started: float
    ended: float
    trip: dict[str, Any]


@attrs.frozen
class Sample:
    ts: int
    metric: str
    value: float


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# --- owners and vehicles (read-only: created times the store's records lack) ----------


def read_owner_info(conn: Connection, owner: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT name, permissions, created FROM owners WHERE name=?",
                       (owner,)).fetchone()
    return dict(row) if row is not None else None


def read_vehicles(conn: Connection, owner: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT vehicleid, created, lastupdate FROM vehicles WHERE owner=? "
                        "ORDER BY vehicleid", (owner,)).fetchall()
    return [dict(r) for r in rows]


# --- monitors ----------------------------------------------------------------------------

UPSERT_MONITOR = upsert_sql(
    "v4_monitors", ("monitorid",),
    ("monitorid", "vehicleid", "owner", "definition", "state", "batch", "created", "updated"),
    update=("definition", "state", "batch", "updated"))
SAVE_MONITOR_STATE = "UPDATE v4_monitors SET state=?, batch=? WHERE monitorid=?"
DELETE_MONITOR = "DELETE FROM v4_monitors WHERE monitorid=?"


def read_monitors(conn: Connection) -> list[MonitorRow]:
    rows = conn.execute("SELECT monitorid, vehicleid, owner, definition, state, batch, created, "
                        "updated FROM v4_monitors ORDER BY created, monitorid").fetchall()
    return [MonitorRow(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), json.loads(r[5]),
                       float(r[6]), float(r[7])) for r in rows]


def monitor_params(row: MonitorRow) -> tuple[Any, ...]:
    return (row.monitorid, row.vehicleid, row.owner, dumps(row.definition),
            dumps(row.state), dumps(row.batch), row.created, row.updated)


# --- trips -------------------------------------------------------------------------------

UPSERT_TRIP = upsert_sql("v4_trips", ("vehicleid", "started"),
                         ("vehicleid", "started", "ended", "trip"))
UPSERT_TRIP_STATE = upsert_sql("v4_trip_state", ("vehicleid",), ("vehicleid", "state", "updated"))


def read_trips(conn: Connection, vehicleid: str) -> list[TripRow]:
    rows = conn.execute("SELECT vehicleid, started, ended, trip FROM v4_trips "
                        "WHERE vehicleid=? ORDER BY started DESC", (vehicleid,)).fetchall()
    return [TripRow(r[0], float(r[1]), float(r[2]), json.loads(r[3])) for r in rows]


def read_trip_states(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute("SELECT vehicleid, state FROM v4_trip_state").fetchall()
    return {r[0]: json.loads(r[1]) for r in rows}


# --- telemetry ---------------------------------------------------------------------------

INSERT_SAMPLE = "INSERT INTO v4_telemetry(vehicleid, ts, metric, value) VALUES (?, ?, ?, ?)"


def read_samples(conn: Connection, vehicleid: str, metrics: Sequence[str],
                 since: int, until: int, limit: int) -> list[Sample]:
    marks = ",".join("?" * len(metrics))
    rows = conn.execute(
        f"SELECT ts, metric, value FROM v4_telemetry WHERE vehicleid=? AND metric IN ({marks}) "
        "AND ts>=? AND ts<=? ORDER BY metric, ts LIMIT ?",
        (vehicleid, *metrics, since, until, limit),
    ).fetchall()
    return [Sample(int(r[0]), r[1], float(r[2])) for r in rows]


def purge_telemetry(conn: Connection, *, now: float, limit: int, retention: float) -> int:
    """One bounded purge round (``Store.add_purge``): samples older than ``retention``."""
    return conn.execute(conn.delete_some_sql("v4_telemetry", "ts<?"),
                        (int(now - retention), limit)).rowcount
