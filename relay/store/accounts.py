"""Accounts repository: owners and their API tokens (SQL written once, for the store and
``relay.db``). Thread-side functions take a ``relay.store.backend.Connection``.

Owner passwords are stored as argon2 hashes (or an imported Drupal 7 hash until the
next login), API tokens only as their SHA-256 hex digest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.store.records import OwnerRecord, TokenRecord

if TYPE_CHECKING:
    from relay.store.backend import Connection

INSERT_OWNER = ("INSERT INTO owners(name, password_hash, status, permissions, created) "
                "VALUES (?, ?, 1, ?, ?)")
INSERT_TOKEN = ("INSERT INTO tokens(token_hash, owner, application, purpose, permit, created) "
                "VALUES (?, ?, ?, ?, ?, ?)")
SET_TOKEN_LASTUSED = "UPDATE tokens SET lastused=? WHERE token_hash=?"
_TOKEN_COLUMNS = "token_hash, owner, application, purpose, permit, created, lastused"


def owner_row(conn: Connection, name: str) -> Any:
    """name, password_hash, status, permissions (or None)."""
    return conn.execute(
        "SELECT name, password_hash, status, permissions FROM owners WHERE name=?", (name,)
    ).fetchone()


def read_owner(conn: Connection, name: str) -> OwnerRecord | None:
    row = owner_row(conn, name)
    if row is None:
        return None
    return OwnerRecord(row[0], row[1], int(row[2]), row[3])


def upgrade_password_hash(conn: Connection, name: str, old_hash: str, new_hash: str) -> bool:
    """Replace ``name``'s password hash if it is still ``old_hash`` (an imported legacy hash
    verified at login); False if it changed meanwhile (a new password wins)."""
    cur = conn.execute("UPDATE owners SET password_hash=? WHERE name=? AND password_hash=?",
                       (new_hash, name, old_hash))
    return cur.rowcount > 0


def read_credentials(
    conn: Connection, owners: tuple[str, ...], digests: tuple[str, ...]
) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
    """Of these owners, (password hash, status) by name; of these tokens, owner by digest."""
    found_owners: dict[str, tuple[str, int]] = {}
    found_tokens: dict[str, str] = {}
    step = 500  # well under SQLite's bound on query parameters
    for i in range(0, len(owners), step):
        chunk = owners[i:i + step]
        for row in conn.execute(
            "SELECT name, password_hash, status FROM owners WHERE name IN "
            f"({','.join('?' * len(chunk))})", chunk
        ):
            found_owners[row[0]] = (row[1], int(row[2]))
    for i in range(0, len(digests), step):
        chunk = digests[i:i + step]
        for row in conn.execute(
            "SELECT token_hash, owner FROM tokens WHERE token_hash IN "
            f"({','.join('?' * len(chunk))})", chunk
        ):
            found_tokens[row[0]] = row[1]
    return found_owners, found_tokens


# --------------------------------------------------------------------------- tokens


def insert_token(conn: Connection, record: TokenRecord) -> None:
    conn.execute(INSERT_TOKEN, (record.token_hash, record.owner, record.application,
                                record.purpose, record.permit, record.created))


def token_rows(conn: Connection, owner: str) -> list[Any]:
    return conn.execute(
        f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE owner=? ORDER BY created, token_hash",
        (owner,),
    ).fetchall()


def read_tokens(conn: Connection, owner: str) -> list[TokenRecord]:
    return [TokenRecord(r[0], r[1], r[2], r[3], r[4], float(r[5]),
                        None if r[6] is None else float(r[6])) for r in token_rows(conn, owner)]


def read_token_permit(conn: Connection, owner: str, digest: str) -> str | None:
    row = conn.execute("SELECT permit FROM tokens WHERE token_hash=? AND owner=?",
                       (digest, owner)).fetchone()
    return row[0] if row is not None else None


def read_token_owner(conn: Connection, digest: str) -> tuple[str, str] | None:
    row = conn.execute("SELECT owner, permit FROM tokens WHERE token_hash=?",
                       (digest,)).fetchone()
    return (row[0], row[1]) if row is not None else None


def delete_token(conn: Connection, owner: str, candidates: tuple[str, ...]) -> str | None:
    """Delete the owner's token under the first digest of ``candidates`` found; that digest."""
    for candidate in candidates:
        if conn.execute("DELETE FROM tokens WHERE token_hash=? AND owner=?",
                        (candidate, owner)).rowcount:
            return candidate
    return None
