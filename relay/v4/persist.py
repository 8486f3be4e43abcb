"""API v4 rows in the relay's database, through the store's one writer.

The tables and their SQL are the v4 repository, ``relay.store.v4rows``; this
module runs them through ``Store.query``/``write``/``write_call`` so v4 writes
share the store's group commit and are ordered with everything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from relay.store import Store, v4rows
from relay.store.backend import Connection
from relay.store.v4rows import MonitorRow, Sample, TripRow, purge_telemetry

__all__ = ["MonitorRow", "Sample", "TripRow", "purge_telemetry"]


async def owner_info(store: Store, owner: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await store.query(
        partial(v4rows.read_owner_info, owner=owner))
    return result


async def vehicles(store: Store, owner: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await store.query(partial(v4rows.read_vehicles, owner=owner))
    return result


async def load_monitors(store: Store) -> list[MonitorRow]:
    result: list[MonitorRow] = await store.query(v4rows.read_monitors)
    return result


# One vehicle's rows, read when a cluster's car moves to this process (relay.v4.engine's
# Reload): indexed lookups, where reading every row per car login would not scale.

def _vehicle_monitors(conn: Connection, vehicleid: str) -> list[MonitorRow]:
    rows = conn.execute("SELECT monitorid, vehicleid, owner, definition, state, batch, created, "
                        "updated FROM v4_monitors WHERE vehicleid=? ORDER BY created, monitorid",
                        (vehicleid,)).fetchall()
    return [MonitorRow(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), json.loads(r[5]),
                       float(r[6]), float(r[7])) for r in rows]


def _vehicle_trip_state(conn: Connection, vehicleid: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT state FROM v4_trip_state WHERE vehicleid=?",
                       (vehicleid,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


async def vehicle_monitors(store: Store, vehicleid: str) -> list[MonitorRow]:
    result: list[MonitorRow] = await store.query(
        partial(_vehicle_monitors, vehicleid=vehicleid))
    return result


async def vehicle_trip_state(store: Store, vehicleid: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await store.query(
        partial(_vehicle_trip_state, vehicleid=vehicleid))
    return result


async def save_monitor(store: Store, row: MonitorRow) -> None:
    """Insert or replace a monitor; returns once committed (a 201 means it is stored)."""
    params = v4rows.monitor_params(row)
    await store.write_call("v4_monitors",
                           lambda conn: conn.execute(v4rows.UPSERT_MONITOR, params).rowcount)


async def save_monitor_state(store: Store, monitorid: str, state: dict[str, Any],
                             batch: dict[str, Any]) -> None:
    await store.write("v4_monitors", v4rows.SAVE_MONITOR_STATE,
                      (v4rows.dumps(state), v4rows.dumps(batch), monitorid))


async def delete_monitor(store: Store, monitorid: str) -> None:
    await store.write_call("v4_monitors",
                           lambda conn: conn.execute(v4rows.DELETE_MONITOR, (monitorid,)).rowcount)


async def add_trip(store: Store, vehicleid: str, started: float, ended: float,
                   trip: dict[str, Any]) -> None:
    await store.write("v4_trips", v4rows.UPSERT_TRIP,
                      (vehicleid, started, ended, v4rows.dumps(trip)))


async def trips(store: Store, vehicleid: str) -> list[TripRow]:
    """The vehicle's finished trips, newest first."""
    result: list[TripRow] = await store.query(partial(v4rows.read_trips, vehicleid=vehicleid))
    return result


async def save_trip_state(store: Store, vehicleid: str, state: dict[str, Any],
                          at: float) -> None:
    """``at``: the wall time the state is saved."""
    await store.write("v4_trip_state", v4rows.UPSERT_TRIP_STATE,
                      (vehicleid, v4rows.dumps(state), at))


async def load_trip_states(store: Store) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = await store.query(v4rows.read_trip_states)
    return result


async def add_samples(store: Store, vehicleid: str, ts: int,
                      values: Iterable[tuple[str, float]]) -> None:
    # Consecutive equal statements are executemany-ed by the writer.
    for metric, value in values:
        await store.write("v4_telemetry", v4rows.INSERT_SAMPLE, (vehicleid, ts, metric, value))


async def samples(store: Store, vehicleid: str, metrics: Sequence[str], since: int,
                  until: int, limit: int) -> list[Sample]:
    """Samples of ``metrics`` with ``since <= ts <= until``, by metric then time."""
    if not metrics:
        return []
    result: list[Sample] = await store.query(partial(
        v4rows.read_samples, vehicleid=vehicleid, metrics=tuple(metrics), since=since,
        until=until, limit=limit))
    return result
