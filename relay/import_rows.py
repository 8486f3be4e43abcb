"""Rows of the public (Perl) server's MySQL database, checked and written into this store.

``tools.import_perl`` reads the source tables; this module decides, row by row,
what the store gets (or why a row is skipped) and writes it with upserts, so a
second import updates instead of duplicating. Source rows are dicts of column ->
value with dates as the raw ``DATETIME`` text (the server's local time, in
practice UTC; a zero date means "never").

Bookkeeping tables (``import_perl_*``) remember what an earlier import wrote:
which source password an owner's hash came from (so a hash upgraded at login
is not put back by a re-import), the usage counts taken from each source record
(so a re-import adds only the difference) and the checkpoints of an interrupted
run.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import attrs

from protocol import MAX_LINE_LENGTH
from relay import db, legacy_hash
from relay.store import historical, usage
from relay.store.sqlite import encode_text

# Perl's zero h_expires ("never") becomes 9999-12-31T23:59:59Z.
NEVER = 253402300799
UTILISATION = "*-OVM-Utilisation"
# The Perl server's utilisation record numbers: 0/1 car rx/tx, 2/3 app rx/tx.
USAGE_COLUMNS = ("car_rx", "car_tx", "app_rx", "app_tx")
# A stored value no v2 line could carry back is not worth keeping.
MAX_VALUE = MAX_LINE_LENGTH
MAX_RECORD_TYPE = 32
# Stands for an owner password that cannot be used (argon2 never matches it).
UNUSABLE_PASSWORD = "!imported-without-usable-password"

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS import_perl_owners (
    perl_owner  INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    pass_digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS import_perl_usage (
    vehicleid    TEXT NOT NULL,
    recordnumber INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    value        INTEGER NOT NULL,
    PRIMARY KEY (vehicleid, recordnumber, ts)
);
CREATE TABLE IF NOT EXISTS import_perl_progress (
    source   TEXT NOT NULL,
    tbl      TEXT NOT NULL,
    last_key TEXT,
    done     INTEGER NOT NULL DEFAULT 0,
    counts   TEXT NOT NULL,
    PRIMARY KEY (source, tbl)
);
"""

_DATETIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?)?")


class BadRow(Exception):
    """A source row that is skipped; the message is the reason shown in the report."""


@attrs.define
class Counts:
    """One source table's outcome: rows read, written, skipped (by reason), and notes."""

    read: int = 0
    written: int = 0
    skipped: Counter[str] = attrs.field(factory=Counter)
    notes: Counter[str] = attrs.field(factory=Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def to_json(self) -> str:
        return json.dumps({"read": self.read, "written": self.written,
                           "skipped": dict(self.skipped), "notes": dict(self.notes)})

    @classmethod
    def from_json(cls, text: str) -> Counts:
        data = json.loads(text)
        return cls(int(data["read"]), int(data["written"]), Counter(data["skipped"]),
                   Counter(data["notes"]))


# --------------------------------------------------------------------------- values


def parse_time(value: object, what: str) -> float | None:
    """Epoch seconds of a source ``DATETIME`` (taken as UTC); None for NULL or a zero date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).timestamp()
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    match = _DATETIME_RE.fullmatch(text.strip())
    if match is None:
        raise BadRow(f"unparseable {what}")
    parts = [int(p) if p is not None else 0 for p in match.groups()]
    if not any(parts[:3]):
        return None
    try:
        year, month, day, hour, minute, second = parts
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        raise BadRow(f"unparseable {what}") from None


def _text(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _int(row: dict[str, Any], column: str, default: int = 0) -> int:
    value = row.get(column)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRow(f"bad {column}") from None


def _vehicle_key(owner: int, vehicleid: str) -> tuple[int, str]:
    # MySQL compares vehicle ids without regard to case; this store keeps them upper-case.
    return owner, vehicleid.upper()


def _check_size(value: str, what: str, limit: int = MAX_VALUE) -> None:
    if len(value.encode("utf-8", "surrogateescape")) > limit:
        raise BadRow(f"oversized {what}")


# --------------------------------------------------------------------------- schema & progress


def ensure_bookkeeping(conn: sqlite3.Connection) -> None:
    with db.transaction(conn):
        for statement in _BOOKKEEPING.split(";"):
            if statement.strip():
                conn.execute(statement)


def has_bookkeeping(conn: sqlite3.Connection) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='import_perl_progress'"
    ).fetchone() is not None


def load_progress(conn: sqlite3.Connection, source: str) -> dict[str, tuple[str | None, bool,
                                                                          Counts]]:
    """An interrupted run's checkpoints: table -> (last key as JSON, finished, counts so far)."""
    if not has_bookkeeping(conn):
        return {}
    rows = conn.execute(
        "SELECT tbl, last_key, done, counts FROM import_perl_progress WHERE source=?", (source,)
    ).fetchall()
    return {r[0]: (r[1], bool(r[2]), Counts.from_json(r[3])) for r in rows}


def save_progress(conn: sqlite3.Connection, source: str, table: str, last_key: str | None,
                  done: bool, counts: Counts) -> None:
    """Called inside the transaction that wrote the chunk, so checkpoint and data agree."""
    conn.execute(
        "INSERT INTO import_perl_progress(source, tbl, last_key, done, counts) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(source, tbl) DO UPDATE SET "
        "last_key=excluded.last_key, done=excluded.done, counts=excluded.counts",
        (source, table, last_key, int(done), counts.to_json()),
    )


def clear_progress(conn: sqlite3.Connection, source: str) -> None:
    with db.transaction(conn):
        conn.execute("DELETE FROM import_perl_progress WHERE source=?", (source,))


# --------------------------------------------------------------------------- owners


@attrs.frozen
class OwnerPlan:
    perl_id: int
    name: str
    status: int
    # "drupal": ``secret`` is a $S$ hash kept as it is; "clear": a password to hash;
    # "unusable": nothing a login could match.
    kind: str
    secret: str = attrs.field(repr=False)
    digest: str


def plan_owner(row: dict[str, Any]) -> OwnerPlan:
    perl_id = _int(row, "owner", -1)
    if perl_id < 0:
        raise BadRow("bad owner id")
    if _int(row, "deleted"):
        raise BadRow("deleted")
    name = _text(row, "name")
    if not name or name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRow("bad owner name")
    _check_size(name, "owner name", 60 * 4)
    secret = _text(row, "pass")
    digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()
    if legacy_hash.is_legacy(secret) and len(secret) == legacy_hash.HASH_LENGTH:
        kind = "drupal"
    elif not secret or secret.startswith(("U$", "$P$", "$H$", "$S$")):
        # Drupal's upgraded MD5 and phpass forms, or a damaged $S$: no clear text to hash.
        kind = "unusable"
    else:
        kind = "clear"
        digest = ""  # a clear password leaves no unsalted trace; re-imports verify instead
    status = 1 if _int(row, "status", 1) == 1 else 0
    return OwnerPlan(perl_id, name, status, kind, secret, digest)


def owner_conflict(conn: sqlite3.Connection | None, plan: OwnerPlan) -> str | None:
    """Why the owner cannot be imported into this store (a local account of that name)."""
    if conn is None:
        return None
    exists = conn.execute("SELECT 1 FROM owners WHERE name=?", (plan.name,)).fetchone()
    if exists is None:
        return None
    if not has_bookkeeping(conn):
        return "owner exists locally (not imported)"
    mine = conn.execute(
        "SELECT 1 FROM import_perl_owners WHERE name=?", (plan.name,)
    ).fetchone()
    return None if mine is not None else "owner exists locally (not imported)"


def stored_owner(conn: sqlite3.Connection | None, plan: OwnerPlan) -> tuple[str, str] | None:
    """(source digest, stored hash) of the owner as an earlier import of this row left it."""
    if conn is None or not has_bookkeeping(conn):
        return None
    row = conn.execute(
        "SELECT i.pass_digest, o.password_hash FROM import_perl_owners i "
        "JOIN owners o ON o.name = i.name WHERE i.perl_owner=? AND i.name=?",
        (plan.perl_id, plan.name),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def new_password_hash(plan: OwnerPlan, stored: tuple[str, str] | None) -> str | None:
    """The hash to store, or None to keep the stored one (slow for clear passwords: argon2).

    A Drupal hash that the owner's login has since upgraded to argon2 stays upgraded
    as long as the source hash is the one imported before.
    """
    if stored is not None:
        if plan.kind == "clear" and db.verify_password(stored[1], plan.secret):
            return None
        if plan.kind != "clear" and stored[0] == plan.digest:
            return None
    return password_hash_for(plan)


def password_hash_for(plan: OwnerPlan) -> str:
    """The hash to store for a new or changed source password (argon2 for clear: slow)."""
    if plan.kind == "drupal":
        return plan.secret
    if plan.kind == "clear":
        return db.hash_password(plan.secret)
    return UNUSABLE_PASSWORD


def write_owner(conn: sqlite3.Connection, plan: OwnerPlan, password_hash: str | None,
                created: float) -> None:
    """Upsert one owner (``password_hash`` None: keep the stored one); in a transaction."""
    if password_hash is None:
        conn.execute("UPDATE owners SET status=? WHERE name=?", (plan.status, plan.name))
    else:
        conn.execute(
            "INSERT INTO owners(name, password_hash, status, permissions, created) "
            "VALUES (?, ?, ?, '*', ?) ON CONFLICT(name) DO UPDATE SET "
            "password_hash=excluded.password_hash, status=excluded.status",
            (plan.name, password_hash, plan.status, created),
        )
    conn.execute(
        "INSERT INTO import_perl_owners(perl_owner, name, pass_digest) VALUES (?, ?, ?) "
        "ON CONFLICT(perl_owner) DO UPDATE SET name=excluded.name, "
        "pass_digest=excluded.pass_digest",
        (plan.perl_id, plan.name, plan.digest),
    )


# --------------------------------------------------------------------------- vehicles


@attrs.frozen
class VehicleRow:
    key: tuple[int, str]
    vehicleid: str
    owner: str
    carpass: str = attrs.field(repr=False)
    vtype: str
    ptoken: str
    created: float
    lastupdate: float | None


def plan_vehicle(row: dict[str, Any], owners: dict[int, str], counts: Counts) -> VehicleRow:
    if _int(row, "deleted"):
        raise BadRow("deleted")
    owner = owners.get(_int(row, "owner", -1))
    if owner is None:
        raise BadRow("owner not imported")
    raw_id = _text(row, "vehicleid")
    try:
        vid = db.normalize_vehicleid(raw_id)
    except db.AdminError:
        raise BadRow("invalid vehicle id") from None
    carpass = _text(row, "carpass")
    if not carpass:
        raise BadRow("no car password")
    _check_size(carpass, "car password", 255 * 4)
    vtype = (_text(row, "v_type") or "CAR").upper()
    if vtype not in db.VEHICLE_TYPES:
        raise BadRow("unknown vehicle type")
    ptoken = _text(row, "v_ptoken")
    _check_size(ptoken, "paranoid token", 32 * 4)
    try:
        lastupdate = parse_time(row.get("v_lastupdate"), "v_lastupdate")
    except BadRow:
        counts.notes["unparseable v_lastupdate (left empty)"] += 1
        lastupdate = None
    try:
        created = parse_time(row.get("changed"), "changed") or time.time()
    except BadRow:
        created = time.time()
    return VehicleRow(_vehicle_key(_int(row, "owner"), raw_id), vid, owner, carpass, vtype,
                      ptoken, created, lastupdate)


def vehicle_conflict(conn: sqlite3.Connection | None, vehicle: VehicleRow) -> str | None:
    if conn is None:
        return None
    row = conn.execute("SELECT owner FROM vehicles WHERE vehicleid=?",
                       (vehicle.vehicleid,)).fetchone()
    if row is not None and row[0] != vehicle.owner:
        return "vehicle exists locally under another owner"
    return None


def write_vehicle(conn: sqlite3.Connection, v: VehicleRow) -> None:
    # The paranoid token and last update are the source's unless this store has
    # newer ones (a second import after the switch must not roll a car back).
    conn.execute(
        "INSERT INTO vehicles(vehicleid, owner, carpass, vtype, ptoken, created, lastupdate) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(vehicleid) DO UPDATE SET "
        "owner=excluded.owner, carpass=excluded.carpass, vtype=excluded.vtype, "
        "ptoken=CASE WHEN COALESCE(excluded.lastupdate, 0) >= COALESCE(vehicles.lastupdate, 0) "
        "THEN excluded.ptoken ELSE vehicles.ptoken END, "
        "lastupdate=MAX(COALESCE(excluded.lastupdate, 0), COALESCE(vehicles.lastupdate, 0))",
        (v.vehicleid, v.owner, v.carpass, v.vtype, v.ptoken, v.created, v.lastupdate),
    )


# --------------------------------------------------------------------------- per-vehicle data


def _vehicle(row: dict[str, Any], vehicles: dict[tuple[int, str], VehicleRow]) -> VehicleRow:
    found = vehicles.get(_vehicle_key(_int(row, "owner", -1), _text(row, "vehicleid")))
    if found is None:
        raise BadRow("vehicle not imported")
    return found


# As the store stores peer text: undecodable bytes go in as the original BLOB (one rule).
_enc = encode_text


def plan_latest(row: dict[str, Any], vehicles: dict[tuple[int, str], VehicleRow]
                ) -> tuple[Any, ...]:
    vehicle = _vehicle(row, vehicles)
    code = _text(row, "m_code")
    if len(code) != 1 or not code.isprintable() or code in ", ":
        raise BadRow("bad message code")
    if not _int(row, "m_valid", 1):
        raise BadRow("invalidated")
    msgtime = parse_time(row.get("m_msgtime"), "m_msgtime")
    if msgtime is None:
        raise BadRow("no message time")
    data = _text(row, "m_msg")
    _check_size(data, "message")
    ptoken = _text(row, "m_ptoken")
    _check_size(ptoken, "paranoid token", 32 * 4)
    return (vehicle.vehicleid, code, msgtime, 1 if _int(row, "m_paranoid") else 0, ptoken,
            _enc(data))


# A message the store has newer (received after the switch) is not replaced.
WRITE_LATEST = (
    "INSERT INTO latest(vehicleid, code, msgtime, paranoid, ptoken, data) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(vehicleid, code) DO UPDATE SET "
    "msgtime=excluded.msgtime, paranoid=excluded.paranoid, ptoken=excluded.ptoken, "
    "data=excluded.data WHERE excluded.msgtime >= latest.msgtime"
)


def plan_historical(row: dict[str, Any], vehicles: dict[tuple[int, str], VehicleRow],
                    now: float) -> tuple[Any, ...]:
    vehicle = _vehicle(row, vehicles)
    htype = _text(row, "h_recordtype")
    if not htype or not htype.isprintable():
        raise BadRow("bad record type")
    _check_size(htype, "record type", MAX_RECORD_TYPE)
    number = _int(row, "h_recordnumber")
    ts = parse_time(row.get("h_timestamp"), "h_timestamp")
    if ts is None:
        raise BadRow("no timestamp")
    expires = parse_time(row.get("h_expires"), "h_expires")
    if expires is not None and expires < now:
        raise BadRow("expired")
    data = _text(row, "h_data")
    _check_size(data, "record data")
    return (vehicle.vehicleid, htype, number, int(ts),
            NEVER if expires is None else int(expires), _enc(data))


WRITE_HISTORICAL = historical.UPSERT_HISTORICAL


def plan_usage(row: dict[str, Any], vehicles: dict[tuple[int, str], VehicleRow]
               ) -> tuple[str, int, int, int]:
    """(vehicleid, counter index 0-3, record time, bytes) of a ``*-OVM-Utilisation`` record."""
    vehicle = _vehicle(row, vehicles)
    number = _int(row, "h_recordnumber")
    if not 0 <= number < len(USAGE_COLUMNS):
        raise BadRow("bad usage record number")
    ts = parse_time(row.get("h_timestamp"), "h_timestamp")
    if ts is None:
        raise BadRow("no timestamp")
    text = _text(row, "h_data").strip()
    if not text.isdigit() or len(text) > 18:
        raise BadRow("bad usage value")
    return vehicle.vehicleid, number, int(ts), int(text)


def write_usage(conn: sqlite3.Connection, vehicleid: str, number: int, ts: int,
                value: int) -> None:
    """Add the difference to what an earlier import took from the same source record."""
    row = conn.execute(
        "SELECT value FROM import_perl_usage WHERE vehicleid=? AND recordnumber=? AND ts=?",
        (vehicleid, number, ts),
    ).fetchone()
    delta = value - (int(row[0]) if row is not None else 0)
    conn.execute(
        "INSERT INTO import_perl_usage(vehicleid, recordnumber, ts, value) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(vehicleid, recordnumber, ts) DO UPDATE SET value=excluded.value",
        (vehicleid, number, ts, value),
    )
    if delta:
        counts = [0, 0, 0, 0]
        counts[number] = delta
        conn.execute(usage.ADD_USAGE, (vehicleid, usage.utc_day(ts), *counts))


def plan_push(row: dict[str, Any], vehicles: dict[tuple[int, str], VehicleRow],
              now: float) -> tuple[Any, ...]:
    vehicle = _vehicle(row, vehicles)
    appid = _text(row, "appid")
    pushtype = _text(row, "pushtype")
    keytype = _text(row, "pushkeytype")
    keyvalue = _text(row, "pushkeyvalue")
    if not appid:
        raise BadRow("no app id")
    if not pushtype:
        raise BadRow("no push type")
    if not keyvalue:
        raise BadRow("no push key")
    for value, what in ((appid, "app id"), (pushtype, "push type"), (keytype, "push key type"),
                        (keyvalue, "push key")):
        _check_size(value, what, 256 * 4)
    when = parse_time(row.get("lastupdated"), "lastupdated") or now
    return (vehicle.vehicleid, appid, vehicle.owner, pushtype, keytype, keyvalue,
            1 if _int(row, "active", 1) else 0, when, when)


WRITE_PUSH = (
    "INSERT INTO push_subscriptions(vehicleid, appid, owner, pushtype, pushkeytype, "
    "pushkeyvalue, active, created, lastused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(vehicleid, appid) DO UPDATE SET owner=excluded.owner, "
    "pushtype=excluded.pushtype, pushkeytype=excluded.pushkeytype, "
    "pushkeyvalue=excluded.pushkeyvalue, active=excluded.active, lastused=excluded.lastused "
    "WHERE excluded.lastused >= push_subscriptions.lastused"
)


# --------------------------------------------------------------------------- owner-level data


def plan_token(row: dict[str, Any], owners: dict[int, str], now: float) -> tuple[Any, ...]:
    owner = owners.get(_int(row, "owner", -1))
    if owner is None:
        raise BadRow("owner not imported")
    token = _text(row, "token")
    if not token:
        raise BadRow("empty token")
    application, purpose = _text(row, "application"), _text(row, "purpose")
    permit = _text(row, "permit") or "none"
    for value, what in ((token, "token"), (application, "application"), (purpose, "purpose"),
                        (permit, "permit")):
        _check_size(value, what, 255 * 4)
    created = parse_time(row.get("created"), "created") or now
    lastused = parse_time(row.get("lastused"), "lastused")
    # Only the digest is stored from now on, as for tokens made here.
    return (db.token_hash(token), owner, application, purpose, permit, created, lastused)


def token_conflict(conn: sqlite3.Connection | None, token_row: tuple[Any, ...]) -> str | None:
    if conn is None:
        return None
    row = conn.execute("SELECT owner FROM tokens WHERE token_hash=?",
                       (token_row[0],)).fetchone()
    if row is not None and row[0] != token_row[1]:
        return "token held by another owner"
    return None


WRITE_TOKEN = (
    "INSERT INTO tokens(token_hash, owner, application, purpose, permit, created, lastused) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(token_hash) DO UPDATE SET "
    "application=excluded.application, purpose=excluded.purpose, permit=excluded.permit, "
    "lastused=COALESCE(MAX(tokens.lastused, excluded.lastused), tokens.lastused, "
    "excluded.lastused) "
    "WHERE tokens.owner = excluded.owner"
)


def plan_provision(row: dict[str, Any], owners: dict[int, str], counts: Counts,
                   now: float) -> tuple[Any, ...]:
    if _int(row, "deleted"):
        raise BadRow("deleted")
    apkey = _text(row, "ap_key")
    if not apkey or not apkey.isprintable():
        raise BadRow("bad key")
    stoken, sdigest, message = _text(row, "ap_stoken"), _text(row, "ap_sdigest"), _text(
        row, "ap_msg")
    for value, what in ((apkey, "key"), (stoken, "server token"), (sdigest, "digest"),
                        (message, "provisioning message")):
        _check_size(value, what, 4096 * 4)
    perl_owner = _int(row, "owner")
    owner = owners.get(perl_owner)
    if perl_owner and owner is None:
        counts.notes["owner not imported (record kept without owner)"] += 1
    created = parse_time(row.get("changed"), "changed") or now
    return (apkey, owner, None, stoken, sdigest, message, created)


WRITE_PROVISION = (
    "INSERT INTO provisioning(apkey, owner, vehicleid, stoken, sdigest, provisioning, created) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(apkey) DO UPDATE SET owner=excluded.owner, "
    "stoken=excluded.stoken, sdigest=excluded.sdigest, provisioning=excluded.provisioning"
)
