"""Latest-messages repository: each vehicle's last message per code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.store.backend import upsert_sql
from relay.store.records import StoredMessage

if TYPE_CHECKING:
    from relay.store.backend import Connection

UPSERT_LATEST = upsert_sql("latest", ("vehicleid", "code"),
                           ("vehicleid", "code", "msgtime", "paranoid", "ptoken", "data"))
DELETE_PARANOID = "DELETE FROM latest WHERE vehicleid=? AND paranoid<>0 AND ptoken<>?"


def load_latest(conn: Connection, vehicleid: str
                ) -> tuple[dict[str, StoredMessage], float | None, str | None]:
    """The vehicle's stored messages by code, its last update time and its paranoid
    token (None: no such vehicle)."""
    rows = conn.execute(
        "SELECT code, data, msgtime, paranoid, ptoken FROM latest WHERE vehicleid=?",
        (vehicleid,),
    ).fetchall()
    messages = {r[0]: StoredMessage(r[0], r[1], float(r[2]), bool(r[3]), r[4]) for r in rows}
    row = conn.execute("SELECT lastupdate, ptoken FROM vehicles WHERE vehicleid=?",
                       (vehicleid,)).fetchone()
    lastupdate = row[0] if row is not None else None
    if lastupdate is None and messages:
        lastupdate = max(m.msgtime for m in messages.values())
    return messages, lastupdate, (row[1] if row is not None else None)
