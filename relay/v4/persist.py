"""API v4 rows in the relay's database (tables ``v4_*``, schema version 3 in ``relay.db``).

The SQL lives here, next to the code that uses it; every statement runs
through the store's one writer (``Store.query``/``write``/``write_call``), so
v4 writes share its group commit and are ordered with everything else. The
thread-side functions (``_read_*``) take the ``sqlite3`` connection.

What is stored: monitors (definition as ``monitor_to_json``, evaluation state,
waiting batch), finished trips and each vehicle's trip builder state (so a
trip in progress survives a restart), and telemetry samples, one compact row
per (vehicle, time, data path) purged by age with the store's bounded purge.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import attrs

from relay.store import Store


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


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# --- owners and vehicles (read-only: created times the store's records lack) ----------


def _read_owner_info(conn: sqlite3.Connection, owner: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT name, permissions, created FROM owners WHERE name=?",
                       (owner,)).fetchone()
    return dict(row) if row is not None else None


def _read_vehicles(conn: sqlite3.Connection, owner: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT vehicleid, created, lastupdate FROM vehicles WHERE owner=? "
                        "ORDER BY vehicleid", (owner,)).fetchall()
    return [dict(r) for r in rows]


async def owner_info(store: Store, owner: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await store.query(partial(_read_owner_info, owner=owner))
    return result


async def vehicles(store: Store, owner: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await store.query(partial(_read_vehicles, owner=owner))
    return result


# --- monitors ----------------------------------------------------------------------------

_UPSERT_MONITOR = (
    "INSERT INTO v4_monitors(monitorid, vehicleid, owner, definition, state, batch, created, "
    "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(monitorid) DO UPDATE SET "
    "definition=excluded.definition, state=excluded.state, batch=excluded.batch, "
    "updated=excluded.updated"
)
_SAVE_MONITOR_STATE = "UPDATE v4_monitors SET state=?, batch=? WHERE monitorid=?"
_DELETE_MONITOR = "DELETE FROM v4_monitors WHERE monitorid=?"


def _read_monitors(conn: sqlite3.Connection) -> list[MonitorRow]:
    rows = conn.execute("SELECT monitorid, vehicleid, owner, definition, state, batch, created, "
                        "updated FROM v4_monitors ORDER BY created, monitorid").fetchall()
    return [MonitorRow(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), json.loads(r[5]),
                       float(r[6]), float(r[7])) for r in rows]


async def load_monitors(store: Store) -> list[MonitorRow]:
    result: list[MonitorRow] = await store.query(_read_monitors)
    return result


async def save_monitor(store: Store, row: MonitorRow) -> None:
    """Insert or replace a monitor; returns once committed (a 201 means it is stored)."""
    params = (row.monitorid, row.vehicleid, row.owner, _dumps(row.definition),
              _dumps(row.state), _dumps(row.batch), row.created, row.updated)
    await store.write_call("v4_monitors",
                           lambda conn: conn.execute(_UPSERT_MONITOR, params).rowcount)


async def save_monitor_state(store: Store, monitorid: str, state: dict[str, Any],
                             batch: dict[str, Any]) -> None:
    await store.write("v4_monitors", _SAVE_MONITOR_STATE,
                      (_dumps(state), _dumps(batch), monitorid))


async def delete_monitor(store: Store, monitorid: str) -> None:
    await store.write_call("v4_monitors",
                           lambda conn: conn.execute(_DELETE_MONITOR, (monitorid,)).rowcount)


# --- trips -------------------------------------------------------------------------------

_INSERT_TRIP = ("INSERT OR REPLACE INTO v4_trips(vehicleid, started, ended, trip) "
                "VALUES (?, ?, ?, ?)")
_UPSERT_TRIP_STATE = (
    "INSERT INTO v4_trip_state(vehicleid, state, updated) VALUES (?, ?, ?) "
    "ON CONFLICT(vehicleid) DO UPDATE SET state=excluded.state, updated=excluded.updated"
)


def _read_trips(conn: sqlite3.Connection, vehicleid: str) -> list[TripRow]:
    rows = conn.execute("SELECT vehicleid, started, ended, trip FROM v4_trips "
                        "WHERE vehicleid=? ORDER BY started DESC", (vehicleid,)).fetchall()
    return [TripRow(r[0], float(r[1]), float(r[2]), json.loads(r[3])) for r in rows]


def _read_trip_states(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute("SELECT vehicleid, state FROM v4_trip_state").fetchall()
    return {r[0]: json.loads(r[1]) for r in rows}


async def add_trip(store: Store, vehicleid: str, started: float, ended: float,
                   trip: dict[str, Any]) -> None:
    await store.write("v4_trips", _INSERT_TRIP, (vehicleid, started, ended, _dumps(trip)))


async def trips(store: Store, vehicleid: str) -> list[TripRow]:
    """The vehicle's finished trips, newest first."""
    result: list[TripRow] = await store.query(partial(_read_trips, vehicleid=vehicleid))
    return result


async def save_trip_state(store: Store, vehicleid: str, state: dict[str, Any]) -> None:
    await store.write("v4_trip_state", _UPSERT_TRIP_STATE,
                      (vehicleid, _dumps(state), time.time()))


async def load_trip_states(store: Store) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = await store.query(_read_trip_states)
    return result


# --- telemetry ---------------------------------------------------------------------------

_INSERT_SAMPLE = "INSERT INTO v4_telemetry(vehicleid, ts, metric, value) VALUES (?, ?, ?, ?)"


def _read_samples(conn: sqlite3.Connection, vehicleid: str, metrics: Sequence[str],
                  since: int, until: int, limit: int) -> list[Sample]:
    marks = ",".join("?" * len(metrics))
    rows = conn.execute(
        f"SELECT ts, metric, value FROM v4_telemetry WHERE vehicleid=? AND metric IN ({marks}) "
        "AND ts>=? AND ts<=? ORDER BY metric, ts LIMIT ?",
        (vehicleid, *metrics, since, until, limit),
    ).fetchall()
    return [Sample(int(r[0]), r[1], float(r[2])) for r in rows]


def purge_telemetry(conn: sqlite3.Connection, *, now: float, limit: int,
                    retention: float) -> int:
    """One bounded purge round (``Store.add_purge``): samples older than ``retention``."""
    cur = conn.execute(
        "DELETE FROM v4_telemetry WHERE rowid IN "
        "(SELECT rowid FROM v4_telemetry WHERE ts<? LIMIT ?)",
        (int(now - retention), limit),
    )
    return cur.rowcount


async def add_samples(store: Store, vehicleid: str, ts: int,
                      values: Iterable[tuple[str, float]]) -> None:
    # Consecutive equal statements are executemany-ed by the writer.
    for metric, value in values:
        await store.write("v4_telemetry", _INSERT_SAMPLE, (vehicleid, ts, metric, value))


async def samples(store: Store, vehicleid: str, metrics: Sequence[str], since: int,
                  until: int, limit: int) -> list[Sample]:
    """Samples of ``metrics`` with ``since <= ts <= until``, by metric then time."""
    if not metrics:
        return []
    result: list[Sample] = await store.query(partial(
        _read_samples, vehicleid=vehicleid, metrics=tuple(metrics), since=since, until=until,
        limit=limit))
    return result
