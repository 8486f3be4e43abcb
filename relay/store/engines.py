"""Which database a ``--db`` value names: a SQLite file, or a PostgreSQL URL.

psycopg is an optional dependency (the ``postgres`` extra), imported only for a URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.store.errors import DatabaseError
from relay.store.targets import POSTGRES_SCHEMES, is_postgres, redact

if TYPE_CHECKING:
    from relay.store.backend import Backend
    from relay.store.postgres import PostgresBackend

__all__ = ["POSTGRES_SCHEMES", "backend_for", "is_postgres", "postgres_backend", "redact"]

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
