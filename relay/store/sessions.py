"""API session repository: REST cookie sessions shared by the nodes of a cluster
(``relay.http.shared``). A row is keyed by the SHA-256 of the cookie, never the cookie:
the table does not hold bearer secrets. Times are wall-clock seconds (every node's)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from relay.store.backend import Connection

TABLE = "api_sessions"
SCHEMA = """
CREATE TABLE IF NOT EXISTS api_sessions (
    sid_hash    TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    permissions TEXT NOT NULL,
    host        TEXT NOT NULL,
    cred_kind   TEXT NOT NULL DEFAULT '',
    cred_value  TEXT NOT NULL DEFAULT '',
    created     REAL NOT NULL,
    last_used   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS api_sessions_last_used ON api_sessions(last_used)
"""
_COLUMNS = ("sid_hash", "owner", "permissions", "host", "cred_kind", "cred_value", "created",
            "last_used")
INSERT = f"INSERT INTO api_sessions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * 8)})"
# Only forward: nodes touch the same row with their own clocks.
TOUCH = "UPDATE api_sessions SET last_used=? WHERE sid_hash=? AND last_used<?"
DELETE = "DELETE FROM api_sessions WHERE sid_hash=?"


def sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class SessionRow:
    sid_hash: str
    owner: str
    permissions: str
    host: str
    cred_kind: str  # "" when the session rests on no credential
    cred_value: str
    created: float
    last_used: float

    def params(self) -> tuple[Any, ...]:
        return attrs.astuple(self)


def insert(conn: Connection, rows: list[SessionRow]) -> None:
    conn.executemany(INSERT, [r.params() for r in rows])


def delete(conn: Connection, hashes: list[str]) -> None:
    conn.executemany(DELETE, [(h,) for h in hashes])


def read_live(conn: Connection, digest: str, oldest: float) -> SessionRow | None:
    """The session ``digest`` if used at ``oldest`` or later, else None."""
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM api_sessions "
                       "WHERE sid_hash=? AND last_used>=?", (digest, oldest)).fetchone()
    if row is None:
        return None
    return SessionRow(row[0], row[1], row[2], row[3], row[4], row[5], float(row[6]),
                      float(row[7]))


def purge_round(conn: Connection, now: float, limit: int, timeout: float) -> int:
    """Delete at most ``limit`` sessions unused for ``timeout`` seconds; how many."""
    return conn.execute(conn.delete_some_sql(TABLE, "last_used<?"),
                        (now - timeout, limit)).rowcount
