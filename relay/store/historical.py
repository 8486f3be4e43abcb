"""Historical-records repository (a car's ``H``/``h`` records, kept until they expire)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.store.backend import upsert_sql
from relay.store.records import HistoricalRecord, HistoricalSummary

if TYPE_CHECKING:
    from relay.store.backend import Connection

UPSERT_HISTORICAL = upsert_sql(
    "historical", ("vehicleid", "htype", "recordnumber", "ts"),
    ("vehicleid", "htype", "recordnumber", "ts", "expires", "data"))


def read_summary(conn: Connection, vehicleid: str, since: int | None,
                 now: float) -> list[HistoricalSummary]:
    sql = (
        "SELECT htype, COUNT(DISTINCT recordnumber), COUNT(*), "
        f"COALESCE(SUM({conn.octet_length('data')}), 0), MIN(ts), MAX(ts) "
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


def read_records(conn: Connection, vehicleid: str, htype: str, since: int | None,
                 now: float) -> list[HistoricalRecord]:
    sql = ("SELECT htype, ts, recordnumber, data FROM historical "
           "WHERE vehicleid=? AND htype=? AND expires>=?")
    params: list[Any] = [vehicleid, htype, now]
    if since is not None:
        sql += " AND ts>?"
        params.append(since)
    sql += " ORDER BY ts, recordnumber"
    return [HistoricalRecord(r[0], int(r[1]), int(r[2]), r[3]) for r in conn.execute(sql, params)]


def purge_round(conn: Connection, cutoff: float, limit: int) -> int:
    """Delete at most ``limit`` records that expired before ``cutoff``; how many."""
    return conn.execute(conn.delete_some_sql("historical", "expires<?"), (cutoff, limit)).rowcount
