"""Provisioning repository (SQL written once, for the store and ``relay.db``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.store.records import ProvisionRecord

if TYPE_CHECKING:
    from relay.store.backend import Connection

INSERT_PROVISION = ("INSERT INTO provisioning(apkey, owner, vehicleid, stoken, sdigest, "
                    "provisioning, created) VALUES (?, ?, ?, ?, ?, ?, ?)")


def provision_row(conn: Connection, apkey: str) -> Any:
    """apkey, owner, vehicleid, stoken, sdigest, provisioning (or None)."""
    return conn.execute(
        "SELECT apkey, owner, vehicleid, stoken, sdigest, provisioning FROM provisioning "
        "WHERE apkey=?",
        (apkey,),
    ).fetchone()


def read_provision(conn: Connection, apkey: str) -> ProvisionRecord | None:
    row = provision_row(conn, apkey)
    if row is None:
        return None
    return ProvisionRecord(row[0], row[3], row[4], row[5])
