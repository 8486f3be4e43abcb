"""``ovms-admin backup FILE`` and ``ovms-admin restore FILE``.

Backup goes through SQLite's online backup API in one step: it reads one
snapshot of the database (WAL readers never block the running server, nor it
them), so the copy is consistent and holds everything committed before it
began, which includes every historical record the server has acknowledged.

Restore writes into the database through SQLite too, and refuses while a
server holds the database: a running server keeps an exclusive ``flock`` on
``<database>.lock`` with its pid in that file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from typing import Any

from relay import db
from relay.store.engines import is_postgres


def _read_only(path: str) -> str:
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"


def _quick_check(conn: sqlite3.Connection, what: str) -> None:
    result = conn.execute("PRAGMA quick_check").fetchone()
    if result is None or result[0] != "ok":
        raise db.AdminError(f"{what} is damaged: {result[0] if result else 'no answer'}")


def backup(db_path: str, target: str, *, force: bool = False) -> int:
    """Copy the live database at ``db_path`` to ``target``; returns the copy's size."""
    if not os.path.exists(db_path):
        raise db.AdminError(f"no database at {db_path}")
    if os.path.exists(target) and not force:
        raise db.AdminError(f"{target} exists (use --force to overwrite)")
    partial = f"{target}.partial"
    for leftover in (partial, partial + "-wal", partial + "-shm", partial + "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    source = sqlite3.connect(_read_only(db_path), uri=True, timeout=30.0)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # all pages in one step: a single snapshot
            # A single self-contained file: no WAL beside it to lose in transit.
            copy.execute("PRAGMA journal_mode=DELETE").fetchone()
            _quick_check(copy, "the copy")
        finally:
            copy.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise db.AdminError(f"backup failed: {exc}") from None
    finally:
        source.close()
    # Only a complete, checked copy ever carries the target's name.
    os.replace(partial, target)
    return os.path.getsize(target)


@contextlib.contextmanager
def database_unused(db_path: str) -> Iterator[None]:
    """Hold ``<db_path>.lock`` as a server would, or refuse naming the server holding it."""
    lock_path = f"{db_path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise db.AdminError(
                f"database {db_path} is in use by a running server (pid {holder}); "
                "stop it first") from None
        yield
    finally:
        os.close(fd)  # also releases the lock


def restore(source_path: str, db_path: str, *, force: bool = False) -> None:
    """Replace the database at ``db_path`` with the backup ``source_path``."""
    if not os.path.exists(source_path):
        raise db.AdminError(f"no backup at {source_path}")
    try:
        source = sqlite3.connect(_read_only(source_path), uri=True)
    except sqlite3.Error as exc:
        raise db.AdminError(f"cannot open {source_path}: {exc}") from None
    try:
        try:
            _quick_check(source, source_path)
            version = source.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise db.AdminError(f"{source_path} is not a database backup: {exc}") from None
        if not 1 <= version <= db.SCHEMA_VERSION:
            raise db.AdminError(f"{source_path} has schema version {version}; this program "
                                f"reads 1 to {db.SCHEMA_VERSION}")
        with database_unused(db_path):
            if os.path.exists(db_path) and os.path.getsize(db_path) > 0 and not force:
                raise db.AdminError(f"{db_path} exists (use --force to replace it)")
            target = sqlite3.connect(db_path)
            try:
                source.backup(target)
            finally:
                target.close()
    finally:
        source.close()


# --------------------------------------------------------------------------- ovms-admin


def _file_only(target: str, command: str) -> None:
    if is_postgres(target):
        raise db.AdminError(
            f"{command} copies a SQLite file; for PostgreSQL use pg_dump/pg_restore, or "
            "'ovms-admin migrate --from URL --to FILE' to copy it into a SQLite file")


def _backup(conn: object, args: argparse.Namespace) -> None:
    _file_only(args.db, "backup")
    size = backup(args.db, args.file, force=args.force)
    print(f"backup of {args.db} written to {args.file} ({size} bytes)")


def _restore(conn: object, args: argparse.Namespace) -> None:
    _file_only(args.db, "restore")
    restore(args.file, args.db, force=args.force)
    print(f"{args.db} restored from {args.file}")


def add_commands(groups: argparse._SubParsersAction[Any]) -> None:
    """Register ``backup`` and ``restore`` with ``ovms-admin`` (tools/admin.py)."""
    p = groups.add_parser("backup", help="copy the database consistently, also while it runs")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite FILE")
    p.set_defaults(func=_backup, no_db=True)
    p = groups.add_parser("restore", help="replace the database with a backup (server stopped)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace an existing database")
    p.set_defaults(func=_restore, no_db=True)
