"""Issue 12 (PostgreSQL store): what only PostgreSQL has. Lossless text in a text type
that holds neither NUL nor non-UTF-8 bytes, passwords kept out of logs, connection
loss and server restarts (writes retried, nothing acked that is not committed), and
large batches sent with COPY giving what row-by-row upserts give.

The store layer's shared behaviour runs on both engines in the other store tests.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from protocol import ClientType
from relay.store import DatabaseError, StoreError, open_store
from relay.store.engines import redact
from relay.store.postgres import COPY_THRESHOLD, PostgresBackend, decode_text, encode_text
from tests.conftest import make_db
from tests.pg_server import PgServer, free_port, reachable, run_sql
from tools.v2client import V2Client

BAD = b"a\xff\x00\xe9z".decode("utf-8", "surrogateescape")
TRICKY = ["", "plain", "\x00", "\uffff", "\uffff0000", "\uffffdc80", BAD, "é\udcff\uffff\x00",
          "\ud800 lone high surrogate", "100%?'\"\\"]


def test_text_escape_is_lossless_and_leaves_plain_text_alone() -> None:
    for text in TRICKY:
        stored = encode_text(text)
        assert "\x00" not in stored
        stored.encode("utf-8")  # PostgreSQL can hold it
        assert decode_text(stored) == text
    assert encode_text("plain é ✓") == "plain é ✓"
    assert len({encode_text(t) for t in TRICKY}) == len(TRICKY)  # one-to-one


def test_tricky_text_round_trips_with_its_byte_size(pg_url: str) -> None:
    conn = PostgresBackend(pg_url).connect()
    try:
        with conn.transaction():
            conn.executemany("INSERT INTO latest VALUES (?, ?, 1.0, 0, '', ?)",
                             [("V", str(i), t) for i, t in enumerate(TRICKY)])
        rows = conn.execute(f"SELECT code, data, {conn.octet_length('data')} FROM latest "
                            "WHERE vehicleid=? AND data=?", ("V", BAD)).fetchall()
        assert [tuple(r) for r in rows] == [(str(TRICKY.index(BAD)), BAD, 5)]
        for code, data, size in conn.execute(
                f"SELECT code, data, {conn.octet_length('data')} FROM latest"):
            assert data == TRICKY[int(code)]
            assert "\ud800" in data or size == len(data.encode("utf-8", "surrogateescape"))
    finally:
        conn.close()


def test_the_password_is_never_shown() -> None:
    url = "postgresql://relay:s3cret@db.example:5433/ovms?sslmode=require&password=s3cret"
    shown = redact(url)
    assert "s3cret" not in shown
    assert shown == "postgresql://relay:***@db.example:5433/ovms?sslmode=require&password=***"
    assert PostgresBackend(url).name == shown
    assert redact("/var/lib/ovms/relay.db") == "/var/lib/ovms/relay.db"


async def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    port = free_port()
    with pytest.raises(DatabaseError) as failure:
        async with open_store(f"postgresql://u:topsecret@127.0.0.1:{port}/none"):
            pass
    text = str(failure.value)
    assert "topsecret" not in text and "\n" not in text
    assert f"cannot open database postgresql://u:***@127.0.0.1:{port}/none: " in text


async def test_copy_batches_give_what_row_by_row_upserts_give(pg_url: str) -> None:
    """A batch above the COPY threshold, with repeated keys, leaves the rows running the
    upserts one by one would leave (latest: the last per vehicle and code)."""
    n = COPY_THRESHOLD * 2
    async with open_store(pg_url, flush_interval=60.0, max_batch=10 * n) as store:
        for i in range(n):
            await store.put_latest(f"V{i % 7}", f"C{i % 11}", f"data {i}{BAD}", when=float(i))
        for i in range(n):
            await store.add_historical("V", "*-T", i % 50, f"r{i}", timestamp=i % 3,
                                       expires=2**40, from_car=False)
        await store.flush()
        assert store.stats.commits == 1
    expected = {(f"V{i % 7}", f"C{i % 11}"): (f"data {i}{BAD}", float(i)) for i in range(n)}
    got = run_sql(pg_url, "SELECT vehicleid, code, data, msgtime FROM latest")
    assert {(v, c): (d, t) for v, c, d, t in got} == expected
    hist = {(r, t): d for r, t, d in run_sql(
        pg_url, "SELECT recordnumber, ts, data FROM historical")}
    assert hist == {(i % 50, i % 3): f"r{i}" for i in range(n)}


def _terminate_others(url: str) -> int:
    rows = run_sql(url, "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname=current_database() AND pid<>pg_backend_pid()")
    return int(rows[0][0])


async def test_lost_connections_are_reopened_and_writes_retried(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every connection of the store cut (as by a server restart): the next durable write
    fails once, is retried on a new connection and acked once committed; reads reconnect."""
    caplog.set_level(logging.INFO, logger="relay.store")
    make_db(pg_url)
    async with open_store(pg_url) as store:
        assert await store.get_vehicle("DEMO", fresh=True) is not None
        assert _terminate_others(pg_url) >= 2  # the writer and a reader
        await store.add_historical("DEMO", "*-T", 1, "after the cut", timestamp=1,
                                   expires=2**40, durable=True)
        assert store.stats.retries >= 1
        assert await store.get_vehicle("DEMO", fresh=True) is not None  # a reader reconnects
    assert run_sql(pg_url, "SELECT data FROM historical") == [("after the cut",)]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database writes failing" in m for m in messages) == 1
    assert sum("work again" in m for m in messages) == 1
    assert sum(m.startswith("reconnected to postgresql://") for m in messages) == 1


async def test_while_the_server_is_down_nothing_is_acked_and_reads_fail_fast(
    pg_cluster: PgServer
) -> None:
    """PostgreSQL stopped: a durable write waits (not acked, not dropped), a login read
    fails with a StoreError at once; started again: the write commits, reads work."""
    cluster = pg_cluster.cluster
    assert cluster is not None
    with pg_cluster.fresh_database() as url:
        make_db(url)
        async with open_store(url) as store:
            assert await store.get_vehicle("DEMO", fresh=True) is not None
            await trio.to_thread.run_sync(cluster.stop)
            try:
                acked = trio.Event()

                async def durable() -> None:
                    await store.add_historical("DEMO", "*-T", 7, "kept", timestamp=1,
                                               expires=2**40, durable=True)
                    acked.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(durable)
                    with pytest.raises(StoreError, match="database unavailable"):
                        await store.get_vehicle("DEMO", fresh=True)
                    with trio.move_on_after(0.5):
                        await acked.wait()
                    assert not acked.is_set() and store.writes_failing
                    await trio.to_thread.run_sync(cluster.start)
                    with trio.fail_after(20):
                        await acked.wait()
            finally:
                if not reachable(cluster.url):
                    cluster.start()
            assert store.stats.dropped == 0 and not store.writes_failing
            assert await store.get_vehicle("DEMO", fresh=True) is not None
        assert run_sql(url, "SELECT recordnumber, data FROM historical") == [(7, "kept")]


# --------------------------------------------------------------------------- end to end


def _serve(url: str, log: Path, echo: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--db", url, "--host", "127.0.0.1",
         "--v2-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if echo is not None:
        echo.write_text(line)
    match = re.search(r"v2 protocol on [\d.]+:(\d+)", line)
    assert match, f"unexpected first line {line!r}: {log.read_text()}"
    return proc, int(match.group(1))


async def _acks(car: V2Client, acked: set[int], until: int) -> None:
    while len(acked) < until:
        msg = await car.receive()
        if msg.code == "h":
            acked.add(int(msg.data))


def test_serve_shows_the_url_without_its_password(pg_url: str, tmp_path: Path) -> None:
    """``ovms-relay serve --db postgresql://USER:PW@...``: the database is named in the
    start line and the log, the password in neither (a trust server ignores it)."""
    secret = "never-shown-pw"
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    log = tmp_path / "serve.log"
    proc, _ = _serve(url, log, echo=tmp_path / "first-line")
    proc.terminate()
    assert proc.wait(30) == 0
    first = (tmp_path / "first-line").read_text()
    assert "database postgresql://postgres:***@127.0.0.1:" in first
    text = log.read_text()
    assert "store opened: postgresql://postgres:***@" in text
    assert secret not in first + text


async def test_postgres_restart_mid_stream_loses_nothing_acked(
    pg_cluster: PgServer, tmp_path: Path
) -> None:
    """``ovms-relay serve`` on PostgreSQL: the server restarts while a car sends ``h``
    records; writes resume by themselves, every record is acked once stored, none before,
    and the outage is one log line at its start and one at its end."""
    assert pg_cluster.cluster is not None
    total = 200
    with pg_cluster.fresh_database() as url:
        make_db(url)
        log = tmp_path / "relay.log"
        proc, port = await trio.to_thread.run_sync(_serve, url, log)
        try:
            car = await V2Client.connect("127.0.0.1", port, "DEMO",
                                         client_type=ClientType.CAR, carpass="DEMO")
            acked: set[int] = set()
            for n in range(1, total // 2 + 1):
                await car.send("h", f"{n},0,*-LOG-Test,{n},86400,record {n}")
            with trio.fail_after(20):
                await _acks(car, acked, 10)
            await trio.to_thread.run_sync(pg_cluster.cluster.restart)
            for n in range(total // 2 + 1, total + 1):
                await car.send("h", f"{n},0,*-LOG-Test,{n},86400,record {n}")
            with trio.fail_after(30):
                await _acks(car, acked, total)
            stored = {r[0] for r in run_sql(url, "SELECT recordnumber FROM historical")}
            assert acked == set(range(1, total + 1)) and acked <= stored
            await car.aclose()
        finally:
            proc.terminate()
            await trio.to_thread.run_sync(proc.wait, 30)
        text = log.read_text()
        assert proc.returncode == 0, text
        # The writer's connection died with the server: its next batch fails once.
        assert text.count("database writes failing") == 1, text
        assert text.count("work again") == 1, text
        assert "reconnected to postgresql://postgres@127.0.0.1" in text, text


def test_copy_works_again_after_a_rolled_back_first_use(pg_url: str) -> None:
    """The temporary table COPY fills is created in the batch's transaction: a rollback
    of that first batch must not leave the connection believing it exists."""
    conn = PostgresBackend(pg_url).connect()
    sql = conn.upsert_sql("v4_trip_state", ("vehicleid",), ("vehicleid", "state", "updated"))
    rows = [(f"V{i}", "{}", float(i)) for i in range(COPY_THRESHOLD)]
    try:
        with pytest.raises(RuntimeError), conn.transaction():
            conn.executemany(sql, rows)
            raise RuntimeError("the rest of the batch failed")
        with conn.transaction():
            conn.executemany(sql, rows)
        assert run_sql(pg_url, "SELECT COUNT(*) FROM v4_trip_state") == [(COPY_THRESHOLD,)]
    finally:
        conn.close()
