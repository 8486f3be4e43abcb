"""``ovms-admin import-perl``: carry a public (Perl) server's MySQL database over.

Reads the source with PyMySQL (``pip install 'ovms-relay[import]'``) in
primary-key order, a chunk at a time, so the live server's MyISAM tables are
never locked for long; each chunk is written in one SQLite transaction together
with its checkpoint, so an interrupted import resumes where it stopped. Which
rows are taken, and why others are skipped, is decided in
``relay.import_rows``; docs/migrating.md describes the cut-over.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import attrs

from relay import db
from relay import import_rows as rows_
from relay.import_rows import BadRow, Counts
from relay.store import sqlite
from relay.store.engines import is_postgres

DEFAULT_PORT = 3306
CHUNK = 2000
# Skips that are the point of the import (not damage in the source): no examples shown.
EXPECTED_REASONS = frozenset({"deleted", "expired", "invalidated", "vehicle not imported",
                              "owner not imported"})
EXAMPLES_PER_REASON = 5


class ImportFailed(db.AdminError):
    """The import cannot go on (one-line reason); what was committed stays."""


@attrs.frozen
class Source:
    host: str
    port: int
    user: str
    password: str = attrs.field(repr=False)
    database: str

    @property
    def name(self) -> str:
        """Identifies the source in checkpoints and messages (never with the password)."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_source(url: str) -> Source:
    """``mysql://USER[:PW]@HOST[:PORT]/DB``; without PW, ``$MYSQL_PWD`` (or none)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise db.AdminError("--from must be a mysql://USER[:PW]@HOST[:PORT]/DB URL")
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise db.AdminError("--from: bad port") from None
    if not parts.hostname or not parts.username or not database or "/" in database:
        raise db.AdminError("--from must be a mysql://USER[:PW]@HOST[:PORT]/DB URL")
    password = (urllib.parse.unquote(parts.password) if parts.password is not None
                else os.environ.get("MYSQL_PWD", ""))
    return Source(parts.hostname, port, urllib.parse.unquote(parts.username), password,
                  database)


def connect_source(source: Source) -> Any:
    try:
        import pymysql
        import pymysql.converters
        from pymysql.constants import FIELD_TYPE
    except ImportError:
        raise db.AdminError(
            "import-perl needs PyMySQL: pip install 'ovms-relay[import]'") from None
    # Dates arrive as their text: zero and invalid dates are data here, not errors.
    conv = dict(pymysql.converters.conversions)
    for field in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.DATE):
        conv.pop(field, None)
    try:
        conn = pymysql.connect(
            host=source.host, port=source.port, user=source.user, password=source.password,
            database=source.database, charset="utf8mb4", conv=conv, connect_timeout=10,
            cursorclass=pymysql.cursors.DictCursor, autocommit=True,
        )
        with conn.cursor() as cur:
            # Keyset paging compares dates as text; invalid and zero dates must compare too.
            cur.execute("SET SESSION sql_mode='ALLOW_INVALID_DATES'")
    except pymysql.MySQLError as exc:
        raise db.AdminError(f"cannot read {source.name}: {_mysql_reason(exc)}") from None
    return conn


def _mysql_reason(exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2:
        return f"{args[1]} (MySQL error {args[0]})"
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- source tables


@attrs.frozen
class Table:
    label: str  # the name in the report
    name: str  # the source table
    key: tuple[str, ...]  # its primary key, the reading order
    where: str = ""
    # Key columns shown for a skipped row (never secrets such as API tokens).
    shown: tuple[str, ...] = ()


OWNERS = Table("ovms_owners", "ovms_owners", ("owner",), shown=("owner",))
CARS = Table("ovms_cars", "ovms_cars", ("owner", "vehicleid"), shown=("owner", "vehicleid"))
MESSAGES = Table("ovms_carmessages", "ovms_carmessages", ("owner", "vehicleid", "m_code"),
                 shown=("owner", "vehicleid", "m_code"))
_HKEY = ("owner", "vehicleid", "h_recordtype", "h_recordnumber", "h_timestamp")
HISTORICAL = Table("ovms_historicalmessages", "ovms_historicalmessages", _HKEY,
                   where=f"h_recordtype <> '{rows_.UTILISATION}'", shown=_HKEY)
USAGE = Table("usage (*-OVM-Utilisation)", "ovms_historicalmessages", _HKEY,
              where=f"h_recordtype = '{rows_.UTILISATION}'", shown=_HKEY)
NOTIFIES = Table("ovms_notifies", "ovms_notifies", ("owner", "vehicleid", "appid"),
                 shown=("owner", "vehicleid", "appid"))
TOKENS = Table("ovms_apitokens", "ovms_apitokens", ("owner", "token"), shown=("owner",))
PROVISION = Table("ovms_autoprovision", "ovms_autoprovision", ("ap_key",), shown=("ap_key",))


def _after(key: tuple[str, ...], values: tuple[Any, ...]) -> tuple[str, list[Any]]:
    """``key > values`` spelled out as ORs of ANDs: MySQL ranges an index on that form."""
    ors: list[str] = []
    params: list[Any] = []
    for i, column in enumerate(key):
        ands = [f"`{c}` = %s" for c in key[:i]] + [f"`{column}` > %s"]
        ors.append("(" + " AND ".join(ands) + ")")
        params.extend(values[: i + 1])
    return "(" + " OR ".join(ors) + ")", params


def read_chunks(conn: Any, table: Table, after: tuple[Any, ...] | None,
                size: int) -> Iterator[list[dict[str, Any]]]:
    order = ", ".join(f"`{c}`" for c in table.key)
    while True:
        clauses: list[str] = [table.where] if table.where else []
        params: list[Any] = []
        if after is not None:
            clause, params = _after(table.key, after)
            clauses.append(clause)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table.name}`{where} ORDER BY {order} LIMIT {size}",
                        params)
            rows = list(cur.fetchall())
        if not rows:
            return
        last = tuple(rows[-1][c] for c in table.key)
        if last == after:
            raise ImportFailed(f"{table.name}: reading does not advance past {last!r}")
        yield rows
        if len(rows) < size:
            return
        after = last


def count_rows(conn: Any, table: Table) -> int:
    where = f" WHERE {table.where}" if table.where else ""
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) AS n FROM `{table.name}`{where}")
        return int(cur.fetchone()["n"])


# --------------------------------------------------------------------------- the run


@attrs.define
class Importer:
    source: Source
    mysql: Any
    local: sqlite3.Connection | None  # None: dry run on a database that does not exist yet
    dry_run: bool
    chunk: int = CHUNK
    err: IO[str] = sys.stderr
    # Called after each committed chunk with the table's label (tests interrupt here).
    on_chunk: Callable[[str], None] | None = None
    report: dict[str, Counts] = attrs.field(factory=dict)
    checkpoints: dict[str, tuple[str | None, bool, Counts]] = attrs.field(factory=dict)
    owners: dict[int, str] = attrs.field(factory=dict)
    vehicles: dict[tuple[int, str], rows_.VehicleRow] = attrs.field(factory=dict)
    _examples: dict[tuple[str, str], int] = attrs.field(factory=dict)

    # ----------------------------------------------------------------- reporting

    def skipped(self, table: Table, counts: Counts, row: dict[str, Any], reason: str) -> None:
        counts.skip(reason)
        if reason in EXPECTED_REASONS:
            return
        seen = self._examples.get((table.label, reason), 0)
        self._examples[(table.label, reason)] = seen + 1
        if seen < EXAMPLES_PER_REASON:
            where = ", ".join(f"{c}={row.get(c)!r}" for c in table.shown)
            print(f"skipped {table.name} row ({where}): {reason}", file=self.err)

    def _progress(self, table: Table, done: int, total: int, final: bool = False) -> None:
        if not self.err.isatty() or total < self.chunk:
            return
        width = 30
        filled = width * min(done, total) // max(total, 1)
        end = "\n" if final else ""
        print(f"\r{table.label:<28} [{'#' * filled}{'.' * (width - filled)}] "
              f"{done}/{total}", end=end, file=self.err, flush=True)

    # ----------------------------------------------------------------- owners & vehicles

    def import_owners(self) -> None:
        counts = self.report.setdefault(OWNERS.label, Counts())
        plans: list[rows_.OwnerPlan] = []
        names: set[str] = set()
        for chunk in read_chunks(self.mysql, OWNERS, None, self.chunk):
            for row in chunk:
                counts.read += 1
                try:
                    plan = rows_.plan_owner(row)
                    if plan.name in names:
                        raise BadRow("duplicate owner name")
                    conflict = rows_.owner_conflict(self.local, plan)
                    if conflict:
                        raise BadRow(conflict)
                except BadRow as exc:
                    self.skipped(OWNERS, counts, row, str(exc))
                    continue
                names.add(plan.name)
                plans.append(plan)
                self.owners[plan.perl_id] = plan.name
                if plan.kind == "unusable":
                    counts.notes["password unusable (empty or unsupported hash)"] += 1
        counts.written = len(plans)
        if self.dry_run or self.local is None:
            return
        local = self.local
        stored = [rows_.stored_owner(local, plan) for plan in plans]
        # Hashing clear passwords (argon2) is the slow part: spread it over the cores.
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            hashes = list(pool.map(rows_.new_password_hash, plans, stored))
        now = time.time()
        for start in range(0, len(plans), self.chunk):
            with db.transaction(local):
                for plan, password_hash in zip(plans[start:start + self.chunk],
                                               hashes[start:start + self.chunk], strict=True):
                    rows_.write_owner(local, plan, password_hash, now)

    def import_vehicles(self) -> None:
        counts = self.report.setdefault(CARS.label, Counts())
        accepted: list[rows_.VehicleRow] = []
        taken: set[str] = set()
        for chunk in read_chunks(self.mysql, CARS, None, self.chunk):
            for row in chunk:
                counts.read += 1
                try:
                    vehicle = rows_.plan_vehicle(row, self.owners, counts)
                    if vehicle.vehicleid in taken:
                        raise BadRow("vehicle id used by another owner")
                    conflict = rows_.vehicle_conflict(self.local, vehicle)
                    if conflict:
                        raise BadRow(conflict)
                except BadRow as exc:
                    self.skipped(CARS, counts, row, str(exc))
                    continue
                taken.add(vehicle.vehicleid)
                accepted.append(vehicle)
                self.vehicles[vehicle.key] = vehicle
        counts.written = len(accepted)
        if self.dry_run or self.local is None:
            return
        for start in range(0, len(accepted), self.chunk):
            with db.transaction(self.local):
                for vehicle in accepted[start:start + self.chunk]:
                    rows_.write_vehicle(self.local, vehicle)

    # ----------------------------------------------------------------- checkpointed tables

    def copy(self, table: Table, apply: Callable[[dict[str, Any]], None]) -> None:
        """Read ``table`` chunk by chunk; ``apply(row)`` writes it or raises BadRow."""
        last_key: tuple[Any, ...] | None = None
        saved = self.checkpoints.get(table.label)
        if saved is not None:
            key_json, done, counts = saved
            self.report[table.label] = counts
            if done:
                return
            if key_json is not None:
                last_key = tuple(json.loads(key_json))
            print(f"{table.label}: resuming after {counts.read} rows", file=self.err)
        counts = self.report.setdefault(table.label, Counts())
        total = count_rows(self.mysql, table)
        for chunk in read_chunks(self.mysql, table, last_key, self.chunk):
            if self.dry_run or self.local is None:
                self._apply_chunk(table, counts, chunk, apply)
            else:
                with db.transaction(self.local):
                    self._apply_chunk(table, counts, chunk, apply)
                    last_key = tuple(chunk[-1][c] for c in table.key)
                    rows_.save_progress(self.local, self.source.name, table.label,
                                        json.dumps(list(last_key)), False, counts)
            self._progress(table, counts.read, total)
            if self.on_chunk is not None:
                self.on_chunk(table.label)
        self._progress(table, counts.read, total, final=True)
        if not self.dry_run and self.local is not None:
            with db.transaction(self.local):
                rows_.save_progress(self.local, self.source.name, table.label, None, True,
                                    counts)

    def _apply_chunk(self, table: Table, counts: Counts, chunk: list[dict[str, Any]],
                     apply: Callable[[dict[str, Any]], None]) -> None:
        for row in chunk:
            counts.read += 1
            try:
                apply(row)
            except BadRow as exc:
                self.skipped(table, counts, row, str(exc))
                continue
            counts.written += 1

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        if not self.dry_run and self.local is not None:
            self.local.execute(sql, params)

    def run(self) -> dict[str, Counts]:
        now = time.time()
        self.import_owners()
        self.import_vehicles()

        def latest(row: dict[str, Any]) -> None:
            self._write(rows_.WRITE_LATEST, rows_.plan_latest(row, self.vehicles))

        def historical(row: dict[str, Any]) -> None:
            self._write(rows_.WRITE_HISTORICAL, rows_.plan_historical(row, self.vehicles, now))

        def usage(row: dict[str, Any]) -> None:
            planned = rows_.plan_usage(row, self.vehicles)
            if not self.dry_run and self.local is not None:
                rows_.write_usage(self.local, *planned)

        def push(row: dict[str, Any]) -> None:
            self._write(rows_.WRITE_PUSH, rows_.plan_push(row, self.vehicles, now))

        token_owners: dict[str, str] = {}

        def token(row: dict[str, Any]) -> None:
            planned = rows_.plan_token(row, self.owners, now)
            if token_owners.setdefault(planned[0], planned[1]) != planned[1]:
                raise BadRow("token held by another owner")
            conflict = rows_.token_conflict(self.local, planned)
            if conflict:
                raise BadRow(conflict)
            self._write(rows_.WRITE_TOKEN, planned)

        def provision(row: dict[str, Any]) -> None:
            counts = self.report[PROVISION.label]
            self._write(rows_.WRITE_PROVISION,
                        rows_.plan_provision(row, self.owners, counts, now))

        for table, apply in ((MESSAGES, latest), (HISTORICAL, historical), (USAGE, usage),
                             (NOTIFIES, push), (TOKENS, token), (PROVISION, provision)):
            self.copy(table, apply)
        return self.report


def format_report(report: dict[str, Counts], dry_run: bool) -> list[str]:
    written = "would write" if dry_run else "written"
    lines = [f"{'table':<28} {'read':>9} {written:>11} {'skipped':>9}  reasons"]
    for label, counts in report.items():
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.skipped.items()))
        lines.append(f"{label:<28} {counts.read:>9} {counts.written:>11} "
                     f"{sum(counts.skipped.values()):>9}  {reasons}".rstrip())
        for note, n in sorted(counts.notes.items()):
            lines.append(f"{'':<28} note: {note}: {n}")
    return lines


def import_perl(
    url: str,
    db_path: str,
    *,
    dry_run: bool = False,
    restart: bool = False,
    chunk: int = CHUNK,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    on_chunk: Callable[[str], None] | None = None,
) -> dict[str, Counts]:
    """Run one import (see the module docstring); prints the report table to ``out``."""
    out = out or sys.stdout
    err = err or sys.stderr
    if is_postgres(db_path):
        raise db.AdminError(
            "import-perl writes a SQLite file: import into one, then copy it with "
            "'ovms-admin migrate --from FILE --to postgresql://...'")
    source = parse_source(url)
    local: sqlite3.Connection | None = None
    if dry_run:
        if os.path.exists(db_path):
            # Read-only: a dry run writes nothing, not even the schema.
            local = sqlite3.connect(
                f"file:{urllib.parse.quote(os.path.abspath(db_path))}?mode=ro", uri=True)
    else:
        local = sqlite.connect(db_path)
        rows_.ensure_bookkeeping(local)
    mysql = connect_source(source)
    try:
        importer = Importer(source, mysql, local, dry_run, max(1, chunk), err, on_chunk)
        if local is not None and not dry_run:
            if restart:
                rows_.clear_progress(local, source.name)
            importer.checkpoints = rows_.load_progress(local, source.name)
            if importer.checkpoints:
                print(f"resuming the interrupted import from {source.name}", file=err)
        try:
            report = importer.run()
        except Exception as exc:
            if type(exc).__module__.startswith("pymysql"):
                raise ImportFailed(f"reading {source.name} failed: {_mysql_reason(exc)} "
                                   "(run the import again to resume)") from None
            raise
        if local is not None and not dry_run:
            rows_.clear_progress(local, source.name)
    finally:
        mysql.close()
        if local is not None:
            local.close()
    for line in format_report(report, dry_run):
        print(line, file=out)
    return report


# --------------------------------------------------------------------------- ovms-admin


def _command(conn: object, args: argparse.Namespace) -> None:
    import_perl(args.source, args.db, dry_run=args.dry_run, restart=args.restart,
                chunk=args.chunk)


def add_commands(groups: argparse._SubParsersAction[Any]) -> None:
    """Register ``import-perl`` with ``ovms-admin`` (tools/admin.py)."""
    p = groups.add_parser("import-perl", help="import a public (Perl) server's MySQL database")
    p.add_argument("--from", dest="source", required=True,
                   metavar="mysql://USER[:PW]@HOST[:PORT]/DB",
                   help="the source database (password also from $MYSQL_PWD)")
    p.add_argument("--dry-run", action="store_true", help="read and report, write nothing")
    p.add_argument("--restart", action="store_true",
                   help="ignore the checkpoints of an interrupted import and start over")
    p.add_argument("--chunk", type=int, default=CHUNK, help="rows per read and commit")
    p.set_defaults(func=_command, no_db=True)
