"""``ovms-admin migrate --from A --to B``: copy every table of one database into another
(a SQLite file into PostgreSQL, or back), verified by counting each table's rows.

Both are opened as ``ovms-admin`` opens a database, so both get the current schema
first. The copy is one transaction on the target: it lands whole or not at all. A
target that already holds rows is refused unless ``--force``, which empties its
tables first. ``import-perl``'s own bookkeeping (resuming an interrupted import) is
not copied. Stop the server on the source first, or rows it writes meanwhile may be
missing from the copy (the counts then differ, and the command says so).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from relay import db
from relay.store import schema
from relay.store.backend import Connection
from relay.store.engines import redact

CHUNK = 5000


def tables() -> list[str]:
    """Every table of the schema, in creation order (a referenced table first)."""
    names: list[str] = []
    for _, script in schema.MIGRATIONS:
        for statement in schema.statements(script):
            match = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)
            if match is not None:
                names.append(match.group(1))
    return names


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _columns(conn: Connection, table: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM {table} WHERE 1=0")
    return [d[0] for d in cur.description or ()]


def _chunks(conn: Connection, table: str,
            columns: Sequence[str]) -> Iterator[list[Sequence[Any]]]:
    cur = conn.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while True:
        rows = cur.fetchmany(CHUNK)
        if not rows:
            return
        yield [tuple(r) for r in rows]


def migrate(source: str, target: str, *, force: bool = False,
            out: Any = None) -> dict[str, tuple[int, int]]:
    """Copy ``source`` into ``target``; (source rows, target rows) per table. Raises
    ``db.AdminError`` if the target is not empty (without ``force``) or counts differ."""
    out = out or sys.stdout
    if source == target:
        raise db.AdminError("--from and --to name the same database")
    src = db.connect(source)
    try:
        dst = db.connect(target)
        try:
            return _copy(db.wrapped(src), db.wrapped(dst), redact(target), force, out)
        finally:
            dst.close()
    finally:
        src.close()


def _copy(src: Connection, dst: Connection, shown: str, force: bool,
          out: Any) -> dict[str, tuple[int, int]]:
    names = tables()
    filled = [t for t in names if _count(dst, t)]
    if filled and not force:
        raise db.AdminError(f"{shown} is not empty ({', '.join(filled)} hold rows): "
                            "use --force to replace its contents")
    with dst.transaction():
        for table in reversed(names):  # referencing tables first
            dst.execute(f"DELETE FROM {table}")
        for table in names:
            columns = _columns(src, table)
            insert = (f"INSERT INTO {table}({', '.join(columns)}) "
                      f"VALUES ({', '.join('?' * len(columns))})")
            for rows in _chunks(src, table, columns):
                dst.executemany(insert, rows)
    counts = {t: (_count(src, t), _count(dst, t)) for t in names}
    print("table\tsource\ttarget", file=out)
    for table, (a, b) in counts.items():
        print(f"{table}\t{a}\t{b}", file=out)
    wrong = [t for t, (a, b) in counts.items() if a != b]
    if wrong:
        raise db.AdminError(f"row counts differ in {', '.join(wrong)} (was the source "
                            "written to meanwhile? stop its server and run again with --force)")
    return counts


# --------------------------------------------------------------------------- ovms-admin


def _migrate(conn: object, args: argparse.Namespace) -> None:
    counts = migrate(args.source, args.target, force=args.force)
    total = sum(a for a, _ in counts.values())
    print(f"copied {total} rows from {redact(args.source)} to {redact(args.target)}")


def add_commands(groups: argparse._SubParsersAction[Any]) -> None:
    """Register ``migrate`` with ``ovms-admin`` (tools/admin.py)."""
    p = groups.add_parser(
        "migrate", help="copy a database into another (SQLite file <-> PostgreSQL)")
    p.add_argument("--from", dest="source", required=True, metavar="PATH|URL",
                   help="the database to copy (a SQLite file or postgresql://...)")
    p.add_argument("--to", dest="target", required=True, metavar="PATH|URL",
                   help="the database to copy into (created if it is a new SQLite file)")
    p.add_argument("--force", action="store_true",
                   help="replace the target's contents if it is not empty")
    p.set_defaults(func=_migrate, no_db=True)
