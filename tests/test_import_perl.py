"""Issue 15: ``ovms-admin import-perl`` from a real MariaDB loaded in the public server's schema."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protocol import ClientType
from relay import db
from relay.import_rows import Counts
from tests import perl_fixture as fx
from tests.conftest import RelayUnderTest, StartRelay, sqlite_only
from tests.mariadb_server import fresh_database, mariadb_url
from tests.test_admin_cli import admin as admin_in_process
from tools.import_perl import import_perl

pytestmark = sqlite_only("import-perl writes a SQLite file (ovms-admin migrate then copies it)")

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("owners", "vehicles", "latest", "historical", "usage", "push_subscriptions", "tokens",
          "provisioning")


@pytest.fixture(scope="module")
def perl_db() -> Iterator[fx.Fixture]:
    with mariadb_url() as server, fresh_database(server) as (url, conn):
        yield fx.load(conn, url)


def assert_counts(report: dict[str, Counts], fixture: fx.Fixture) -> None:
    got = {label: (c.read, c.written, dict(c.skipped)) for label, c in report.items()}
    want = {label: (e.read, e.written, dict(e.skipped)) for label, e in fixture.expected.items()}
    assert got == want


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in TABLES}
    finally:
        conn.close()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_import(url: str, path: Path, tty: bool = False,
               **kwargs: object) -> tuple[dict[str, Counts], str, str]:
    out, err = io.StringIO(), Terminal() if tty else io.StringIO()
    report = import_perl(url, str(path), out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return report, out.getvalue(), err.getvalue()


def test_import_counts_idempotence_and_dry_run(tmp_path: Path, perl_db: fx.Fixture) -> None:
    path = tmp_path / "imported.db"
    # A dry run reads and reports everything, and creates nothing.
    report, out, _ = run_import(perl_db.url, path, dry_run=True)
    assert_counts(report, perl_db)
    assert "would write" in out.splitlines()[0]
    assert not path.exists()

    report, out, err = run_import(perl_db.url, path)
    assert_counts(report, perl_db)
    # The final table: one line per source table, with the skip reasons.
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["table", "read", "written", "skipped"]
    cars = next(line for line in lines if line.startswith("ovms_cars "))
    assert "invalid vehicle id: 1" in cars and "deleted: 1" in cars
    # Bad rows are reported (without secrets); expected skips such as deletions are not.
    assert "skipped ovms_cars row (owner=5, vehicleid='BAD ID!'): invalid vehicle id" in err
    assert "oversized record data" in err and "unparseable h_timestamp" in err
    assert "deleted" not in err and fx.ALICE_TOKEN not in err + out

    first = dump(path)
    assert len(first["vehicles"]) == len(perl_db.vehicles)
    assert len(first["historical"]) == perl_db.historical_written >= 10_000
    conn = db.connect(str(path))
    try:
        vehicle = db.get_vehicle(conn, fx.ALICE_CAR)
        assert vehicle is not None and vehicle["ptoken"] == "ptok1"
        assert vehicle["owner"] == fx.ALICE and vehicle["carpass"] == fx.ALICE_CARPASS
        assert db.get_vehicle(conn, "ERINCAR") is not None  # ids are upper-cased
        alice = db.get_owner(conn, fx.ALICE)
        bob = db.get_owner(conn, fx.BOB)
        dave = db.get_owner(conn, "dave")
        assert alice is not None and bob is not None and dave is not None
        assert alice["password_hash"].startswith("$S$")  # kept until the next login
        assert bob["password_hash"].startswith("$argon2")  # clear: hashed at import
        assert db.verify_password(bob["password_hash"], fx.BOB_PW)
        assert not db.verify_password(dave["password_hash"], "")
        # Tokens are stored as digests only.
        tokens = {r[0]: r[1] for r in first["tokens"]}
        assert db.token_hash(fx.ALICE_TOKEN) in tokens and fx.ALICE_TOKEN not in tokens
        paranoid = conn.execute("SELECT paranoid, ptoken, data FROM latest WHERE vehicleid=? "
                                "AND code='D'", (fx.ALICE_CAR,)).fetchone()
        assert tuple(paranoid) == (1, "ptok1", "secret")
        for (vid, day), totals in perl_db.usage_days.items():
            row = conn.execute("SELECT car_rx, car_tx, app_rx, app_tx FROM usage "
                               "WHERE vehicleid=? AND day=?", (vid, day)).fetchone()
            assert tuple(row) == totals
        never = conn.execute("SELECT COUNT(*) FROM historical WHERE expires=253402300799"
                             ).fetchone()[0]
        assert never > 0
    finally:
        conn.close()

    # Again: the same counts, and nothing duplicated or changed.
    report, _, _ = run_import(perl_db.url, path)
    assert_counts(report, perl_db)
    assert dump(path) == first

    # A dry run against the existing database writes nothing either.
    before = path.read_bytes()
    report, _, _ = run_import(perl_db.url, path, dry_run=True)
    assert_counts(report, perl_db)
    assert path.read_bytes() == before


def test_an_interrupted_import_resumes(tmp_path: Path, perl_db: fx.Fixture) -> None:
    path = tmp_path / "resumed.db"
    chunks = 0

    def interrupt(label: str) -> None:
        nonlocal chunks
        if label == "ovms_historicalmessages":
            chunks += 1
            if chunks == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_import(perl_db.url, path, chunk=1000, on_chunk=interrupt)
    partial = sqlite3.connect(path).execute("SELECT COUNT(*) FROM historical").fetchone()[0]
    assert 0 < partial < perl_db.historical_written

    report, _, err = run_import(perl_db.url, path, chunk=1000, tty=True)
    assert "resuming" in err
    # On a terminal, large tables show a progress bar that ends full.
    total = perl_db.expected["ovms_historicalmessages"].read
    assert f"] {total}/{total}\n" in err and "[" + "#" * 30 + "]" in err
    assert_counts(report, perl_db)
    assert len(dump(path)["historical"]) == perl_db.historical_written


def test_a_second_import_after_the_switch_keeps_newer_data(
    tmp_path: Path, perl_db: fx.Fixture
) -> None:
    path = tmp_path / "switched.db"
    run_import(perl_db.url, path)
    now = time.time()
    # What this server received after the switch ...
    conn = db.connect(str(path))
    conn.execute("UPDATE latest SET msgtime=?, data='NEWER' WHERE vehicleid=? AND code='S'",
                 (now + 1000, fx.ALICE_CAR))
    conn.execute("UPDATE push_subscriptions SET pushkeyvalue='renewed', lastused=? "
                 "WHERE appid=?", (now + 1000, fx.ALICE_PUSH_APP))
    alice = db.get_owner(conn, fx.ALICE)
    assert alice is not None
    upgraded = db.hash_password(fx.ALICE_PW)  # as the first login does
    with db.transaction(conn):
        assert db.upgrade_password_hash(conn, fx.ALICE, alice["password_hash"], upgraded)
    usage_before = conn.execute("SELECT car_rx FROM usage WHERE vehicleid=? ORDER BY day DESC",
                                (fx.ALICE_CAR,)).fetchone()[0]
    conn.close()
    # ... and what the old server received in its last minutes.
    today = time.strftime("%Y-%m-%d 00:00:00", time.gmtime(now))
    with perl_db.conn.cursor() as cur:
        cur.execute("INSERT INTO ovms_historicalmessages VALUES (1, %s, %s, 'D', 77777, "
                    "'late', '0000-00-00 00:00:00')", (fx.ALICE_CAR, fx.dt(now)))
        cur.execute("UPDATE ovms_historicalmessages SET h_data=h_data+100 WHERE owner=1 AND "
                    "vehicleid=%s AND h_recordtype='*-OVM-Utilisation' AND h_recordnumber=0 "
                    "AND h_timestamp=%s", (fx.ALICE_CAR, today))
    try:
        run_import(perl_db.url, path)
    finally:
        with perl_db.conn.cursor() as cur:
            cur.execute("DELETE FROM ovms_historicalmessages WHERE h_recordnumber=77777")
            cur.execute("UPDATE ovms_historicalmessages SET h_data=h_data-100 WHERE owner=1 "
                        "AND vehicleid=%s AND h_recordtype='*-OVM-Utilisation' AND "
                        "h_recordnumber=0 AND h_timestamp=%s", (fx.ALICE_CAR, today))
    conn = db.connect(str(path))
    try:
        assert conn.execute("SELECT data FROM latest WHERE vehicleid=? AND code='S'",
                            (fx.ALICE_CAR,)).fetchone()[0] == "NEWER"
        assert conn.execute("SELECT pushkeyvalue FROM push_subscriptions WHERE appid=?",
                            (fx.ALICE_PUSH_APP,)).fetchone()[0] == "renewed"
        alice = db.get_owner(conn, fx.ALICE)
        assert alice is not None and alice["password_hash"] == upgraded
        assert conn.execute("SELECT data FROM historical WHERE recordnumber=77777"
                            ).fetchone()[0] == "late"
        # Usage grows by what the old server counted since, not by its total again.
        assert conn.execute("SELECT car_rx FROM usage WHERE vehicleid=? ORDER BY day DESC",
                            (fx.ALICE_CAR,)).fetchone()[0] == usage_before + 100
    finally:
        conn.close()


def admin(*args: str) -> subprocess.CompletedProcess[str]:
    """``ovms-admin`` in process (test_admin_cli runs the real program once)."""
    return admin_in_process(*args)


def test_command_line(tmp_path: Path, perl_db: fx.Fixture) -> None:
    path = tmp_path / "cli.db"
    result = admin("--db", str(path), "import-perl", "--from", perl_db.url, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:3] == ["table", "read", "would"]
    assert not path.exists()
    # Failures are one line, and never show the password.
    for url, reason in (("http://x/y", "mysql://USER"),
                        (perl_db.url.replace("://root", "://root:sekrit"), "cannot read")):
        result = admin("--db", str(path), "import-perl", "--from", url)
        assert result.returncode == 1
        assert len(result.stderr.splitlines()) == 1 and reason in result.stderr
        assert "sekrit" not in result.stderr


async def test_imported_credentials_work_end_to_end(
    tmp_path: Path, start_relay: StartRelay, perl_db: fx.Fixture
) -> None:
    path = tmp_path / "imported.db"
    run_import(perl_db.url, path)
    relay: RelayUnderTest = await start_relay(db=str(path), allow_plain_login=True)

    # The module logs in with its carpass (scheme 0); an app with the same secret
    # gets the imported latest status.
    car = await relay.car(fx.ALICE_CAR, carpass=fx.ALICE_CARPASS)
    app = await relay.app(fx.ALICE_CAR, carpass=fx.ALICE_CARPASS)
    messages = await app.drain(0.3)
    assert any(m.code == "S" and m.data == fx.ALICE_S for m in messages)
    await app.aclose()
    await car.aclose()

    # REST with the old Drupal password: accepted, then stored as argon2.
    assert relay.handle.http_port is not None
    base = f"http://127.0.0.1:{relay.handle.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        response = await api.get("/api/vehicles",
                                  params={"username": fx.ALICE, "password": fx.ALICE_PW})
        assert response.status_code == 200, response.text
        assert {v["id"] for v in response.json()} == {fx.ALICE_CAR, "ALICE2"}
        await relay.handle.store.flush()
        stored = db.get_owner(db.connect(str(path)), fx.ALICE)
        assert stored is not None and stored["password_hash"].startswith("$argon2")
        assert db.verify_password(stored["password_hash"], fx.ALICE_PW)
        # The imported API token works in place of the password.
        response = await api.get("/api/vehicles",
                                 params={"username": fx.ALICE, "password": fx.ALICE_TOKEN})
        assert response.status_code == 200, response.text
        # The DbSimple owner's clear password was hashed at import and works.
        response = await api.get("/api/vehicles",
                                 params={"username": fx.BOB, "password": fx.BOB_PW})
        assert response.status_code == 200, response.text

    # v2 scheme 1 with an old Drupal password.
    carol = await relay.connect("*", ClientType.APP, username=fx.CAROL, password=fx.CAROL_PW)
    await carol.aclose()
    await relay.handle.store.flush()
    stored = db.get_owner(db.connect(str(path)), fx.CAROL)
    assert stored is not None and stored["password_hash"].startswith("$argon2")

    subs = await relay.handle.store.push_subscriptions(fx.ALICE_CAR)
    assert [(s.appid, s.pushtype, s.owner) for s in subs] == [
        (fx.ALICE_PUSH_APP, "apns", fx.ALICE)]
