"""Monitor callback batches waiting for a retry, in table ``v4_callback_pending``.

A batch whose attempt failed and that will be tried again is stored (with the
monitor definition it was made for, so it is sent as it would have been even if
the monitor is changed meanwhile), its row updated at each further failure and
deleted once delivered or given up. At start the sender loads them again, so
pending callback retries survive a restart as pending pushes do; in a cluster each
row is retried by one node, the one holding its claim (``relay.store.claims``).

The SQL runs through the store's extension API (``query``/``write``/``add_purge``)
on any backend: writes are group-committed and not awaited for commit, like the
push rows. The table itself is created by the store's schema migrations.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from relay.store import Store, claims
from relay.store.backend import upsert_sql
from relay.v4 import monitor_model

if TYPE_CHECKING:
    from relay.store.backend import Connection

TABLE = "v4_callback_pending"
# A pending row of a vehicle that was deleted, or one older than the longest retry
# policy can last (plus a day for a stopped server), is purged.
MAX_AGE = (monitor_model.MAX_RETRIES + 2) * float(monitor_model.MAX_RETRY_DELAY)

_SAVE = upsert_sql(TABLE, ("jobid",), ("jobid", "monitorid", "vehicleid", "job", "failures",
                                         "next_try", "created", *claims.COLUMNS))
_DELETE = f"DELETE FROM {TABLE} WHERE jobid=?"
_LOAD = (f"SELECT jobid, monitorid, vehicleid, job, failures, next_try, created FROM {TABLE} "
         f"WHERE {claims.TAKEN} ORDER BY next_try")
_PURGE_WHERE = "created<? OR vehicleid NOT IN (SELECT vehicleid FROM vehicles)"


@attrs.frozen
class PendingRow:
    jobid: str
    monitorid: str
    vehicleid: str
    job: dict[str, Any]  # what ``callbacks`` needs to send the batch again
    failures: int
    next_try: float  # wall time
    created: float


async def save(store: Store, row: PendingRow) -> None:
    await store.write(TABLE, _SAVE, (
        row.jobid, row.monitorid, row.vehicleid,
        json.dumps(row.job, sort_keys=True, separators=(",", ":")),
        row.failures, row.next_try, row.created, *store.claims.stamp()))


async def delete(store: Store, jobid: str) -> None:
    await store.write(TABLE, _DELETE, (jobid,))


async def hold(store: Store, jobid: str) -> bool:
    """Before a retry: does this node still hold the row (``Claims.hold``)?"""
    return await store.claims.hold(TABLE, "jobid=?", (jobid,))


Loaded = tuple[list[PendingRow], list[str]]


def _load(conn: Connection, node: str, until: float) -> Loaded:
    rows: list[PendingRow] = []
    broken: list[str] = []
    for jobid, monitorid, vehicleid, job, failures, next_try, created in conn.execute(
            _LOAD, (node, until)):
        try:
            data = json.loads(job)
        except ValueError:
            broken.append(jobid)
            continue
        rows.append(PendingRow(jobid, monitorid, vehicleid, data, int(failures),
                               float(next_try), float(created)))
    return rows, broken


async def load(store: Store, taken: Callable[[Loaded], Awaitable[None]]) -> Loaded:
    """This node's rows (``Claims.claim``: at start, its own and those no node holds),
    and the ids of rows whose job is not valid JSON; ``taken`` is told of rows taken
    over later from a node that stopped."""
    result: Loaded = await store.claims.claim(TABLE, _load, taken)
    return result


def purge(conn: Connection, *, now: float, limit: int) -> int:
    """For ``Store.add_purge``: rows of deleted vehicles and rows older than MAX_AGE."""
    sql = conn.delete_some_sql(TABLE, _PURGE_WHERE)
    return int(conn.execute(sql, (now - MAX_AGE, limit)).rowcount)
