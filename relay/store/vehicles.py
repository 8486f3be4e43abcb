"""Vehicles repository (SQL written once, for the store and ``relay.db``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.store.backend import Connection

INSERT_VEHICLE = ("INSERT INTO vehicles(vehicleid, owner, carpass, vtype, ptoken, created) "
                  "VALUES (?, ?, ?, ?, '', ?)")
SET_PTOKEN = "UPDATE vehicles SET ptoken=? WHERE vehicleid=?"
SET_LASTUPDATE = "UPDATE vehicles SET lastupdate=? WHERE vehicleid=?"
SET_NAME = "UPDATE vehicles SET name=? WHERE vehicleid=?"


def read_vehicle(conn: Connection, vehicleid: str) -> dict[str, Any] | None:
    """vehicleid, owner, carpass, vtype, ptoken, lastupdate, name (or None)."""
    row = conn.execute(
        "SELECT vehicleid, owner, carpass, vtype, ptoken, lastupdate, name FROM vehicles "
        "WHERE vehicleid=?",
        (vehicleid,),
    ).fetchone()
    return dict(row) if row is not None else None


def read_vehicles(conn: Connection, vehicleids: list[str]) -> list[dict[str, Any] | None]:
    """``read_vehicle`` of each id in turn: a batch of logins' reads in one database call."""
    return [read_vehicle(conn, vid) for vid in vehicleids]


def read_owner_vehicles(conn: Connection, owner: str) -> list[str]:
    rows = conn.execute("SELECT vehicleid FROM vehicles WHERE owner=? ORDER BY vehicleid",
                        (owner,)).fetchall()
    return [r[0] for r in rows]
