"""Which database a ``--db`` value names: a SQLite file, or a PostgreSQL URL.

psycopg is an optional dependency (the ``postgres`` extra), imported only for a URL.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from relay.store.errors import DatabaseError

if TYPE_CHECKING:
    from relay.store.backend import Backend
    from relay.store.postgres import PostgresBackend

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str) -> bool:
    """True for ``postgresql://...`` (or ``postgres://...``), False for a SQLite path."""
    return target.startswith(POSTGRES_SCHEMES)


def redact(target: str) -> str:
    """``target`` safe to log or print: a URL's password (in the user part or the query)
    replaced by ``***``; a file path as it is."""
    if not is_postgres(target):
        return target
    parts = urllib.parse.urlsplit(target)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    query = "&".join(
        f"{k}=***" if k == "password" else (f"{k}={v}" if v or "=" in item else k)
        for item in parts.query.split("&") if item
        for k, _, v in [item.partition("=")])
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def postgres_backend(url: str) -> PostgresBackend:
    try:
        from relay.store.postgres import PostgresBackend
    except ImportError:
        raise DatabaseError(
            f"{redact(url)}: PostgreSQL needs psycopg: pip install 'ovms-relay[postgres]'"
        ) from None
    return PostgresBackend(url)


def backend_for(target: str) -> Backend:
    """The backend a ``--db`` value names."""
    if is_postgres(target):
        return postgres_backend(target)
    from relay.store.sqlite import SQLiteBackend

    return SQLiteBackend(target)
