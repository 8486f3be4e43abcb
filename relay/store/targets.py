"""What a ``--db`` value is (a SQLite path or a PostgreSQL URL), and how to log it.

Apart from ``relay.store.engines`` so that the PostgreSQL backend can redact its own
URL without importing the module that chooses it.
"""

from __future__ import annotations

import urllib.parse

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
