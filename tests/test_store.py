"""relay.store: group commit, durability, cache coherence, purge, usage (real SQLite files
and real PostgreSQL databases: every ``db_path`` test runs on both)."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from relay import db
from relay.store import (
    HistoricalRecord,
    HistoricalSummary,
    PushSubscription,
    Store,
    StoreClosed,
    StoreError,
    UsageDay,
    open_store,
)
from tests.pg_server import run_sql

VID = "DEMO"


@pytest.fixture
def db_path(db_target: str) -> str:
    path = db_target
    conn = db.connect(path)
    db.add_owner(conn, "alice", "hunter2")
    db.add_vehicle(conn, VID, "alice", "carpass")
    conn.close()
    return path


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store]:
    async with open_store(db_path) as s:
        yield s


def query(path: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """On a separate connection, as another process would."""
    return run_sql(path, sql, *params)


# --------------------------------------------------------------------------- vehicles & owners


async def test_get_vehicle_and_owner(store: Store) -> None:
    vehicle = await store.get_vehicle(VID)
    assert vehicle is not None
    assert (vehicle.vehicleid, vehicle.owner, vehicle.carpass, vehicle.vtype, vehicle.ptoken) == (
        VID,
        "alice",
        "carpass",
        "CAR",
        "",
    )
    assert "carpass" not in repr(vehicle)
    assert await store.get_vehicle("NOPE") is None
    owner = await store.get_owner("alice")
    assert owner is not None
    assert (owner.name, owner.status, owner.permissions) == ("alice", 1, "*")
    assert owner.password_hash not in repr(owner)
    assert await store.get_owner("bob") is None
    assert await store.owner_vehicles("alice") == [VID]
    assert await store.owner_vehicles("bob") == []


async def test_get_vehicle_cache_hit_does_not_read(store: Store) -> None:
    await store.get_vehicle(VID)
    reads = store.stats.reads
    for _ in range(50):
        assert await store.get_vehicle(VID) is not None
    assert store.stats.reads == reads


async def test_get_vehicle_ttl_picks_up_admin_changes(db_path: str) -> None:
    async with open_store(db_path, cache_ttl=0.2) as store:
        assert await store.get_vehicle("NEWCAR") is None
        conn = db.connect(db_path)
        try:
            db.add_vehicle(conn, "newcar", "alice", "first")
            # negative results are not cached: visible at once
            vehicle = await store.get_vehicle("NEWCAR")
            assert vehicle is not None and vehicle.carpass == "first"
            db.set_carpass(conn, "NEWCAR", "second")
            cached = await store.get_vehicle("NEWCAR")
            assert cached is not None and cached.carpass == "first"  # still cached
            await trio.sleep(0.25)
            fresh = await store.get_vehicle("NEWCAR")
            assert fresh is not None and fresh.carpass == "second"
            db.delete_vehicle(conn, "NEWCAR")
            await trio.sleep(0.25)
            assert await store.get_vehicle("NEWCAR") is None
        finally:
            conn.close()


async def test_check_password(store: Store) -> None:
    assert await store.check_password("alice", "hunter2") is True
    assert await store.check_password("alice", "wrong") is False
    assert await store.check_password("nobody", "hunter2") is False


async def test_check_password_disabled_owner(db_path: str) -> None:
    query(db_path, "UPDATE owners SET status=0 WHERE name='alice'")
    async with open_store(db_path) as store:
        assert await store.check_password("alice", "hunter2") is False


async def test_check_token(db_path: str) -> None:
    conn = db.connect(db_path)
    token = db.add_token(conn, "alice", application="app", permit="auth,read")
    db.add_owner(conn, "bob", "pw")
    conn.close()
    async with open_store(db_path) as store:
        assert await store.check_token("alice", token) == "auth,read"
        assert await store.check_token("bob", token) is None
        assert await store.check_token("alice", "0" * 64) is None
        assert await store.check_token("alice", db.token_hash(token)) is None
        await store.flush()
        lastused = query(db_path, "SELECT lastused FROM tokens")[0][0]
        assert lastused is not None and abs(lastused - time.time()) < 60


async def test_get_provision(db_path: str) -> None:
    conn = db.connect(db_path)
    db.add_provision(conn, "APKEY", "stoken", "sdigest", "the config", owner="alice")
    conn.close()
    async with open_store(db_path) as store:
        record = await store.get_provision("APKEY")
        assert record is not None
        assert (record.apkey, record.stoken, record.sdigest, record.provisioning) == (
            "APKEY",
            "stoken",
            "sdigest",
            "the config",
        )
        assert await store.get_provision("NOPE") is None


# --------------------------------------------------------------------------- latest


async def test_put_latest_then_latest_is_coherent(store: Store, db_path: str) -> None:
    assert await store.latest(VID) == {}
    assert store.last_update(VID) is None
    await store.put_latest(VID, "S", "80,K,220,...", when=1000.0)
    # visible immediately, before any commit
    latest = await store.latest(VID)
    assert latest["S"].data == "80,K,220,..."
    assert latest["S"].msgtime == 1000.0
    assert latest["S"].paranoid is False
    assert store.last_update(VID) == 1000.0
    await store.put_latest(VID, "S", "81,K", when=1001.0)
    assert (await store.latest(VID))["S"].data == "81,K"
    # the returned dict is a copy
    latest = await store.latest(VID)
    latest.clear()
    assert "S" in await store.latest(VID)
    await store.flush()
    assert query(db_path, "SELECT code, data, msgtime FROM latest") == [("S", "81,K", 1001.0)]
    assert query(db_path, "SELECT lastupdate FROM vehicles WHERE vehicleid=?", VID) == [(1001.0,)]


async def test_latest_loads_from_db_once(db_path: str) -> None:
    query(db_path, "INSERT INTO latest VALUES (?, 'D', 5.0, 0, '', 'doors')", VID)
    query(db_path, "INSERT INTO latest VALUES (?, 'S', 6.0, 1, 'tok', 'soc')", VID)
    query(db_path, "UPDATE vehicles SET lastupdate=7.0 WHERE vehicleid=?", VID)
    async with open_store(db_path) as store:
        latest = await store.latest(VID)
        assert set(latest) == {"D", "S"}
        assert latest["S"].paranoid is True and latest["S"].ptoken == "tok"
        assert store.last_update(VID) == 7.0
        reads = store.stats.reads
        await store.latest(VID)
        assert store.stats.reads == reads


async def test_put_before_load_is_merged(db_path: str) -> None:
    query(db_path, "INSERT INTO latest VALUES (?, 'D', 5.0, 0, '', 'old doors')", VID)
    query(db_path, "INSERT INTO latest VALUES (?, 'S', 5.0, 0, '', 'old soc')", VID)
    async with open_store(db_path) as store:
        await store.put_latest(VID, "S", "new soc", when=10.0)
        latest = await store.latest(VID)
        assert latest["S"].data == "new soc"
        assert latest["D"].data == "old doors"
        assert store.last_update(VID) == 10.0


async def test_concurrent_latest_loads(store: Store) -> None:
    await store.put_latest("OTHER", "S", "x")
    results: list[int] = []

    async def load() -> None:
        results.append(len(await store.latest(VID)))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(load)
    assert results == [0] * 10


async def test_non_utf8_data_round_trips(db_path: str) -> None:
    weird = b"caf\xe9 \xff\x00end".decode("utf-8", "surrogateescape")
    async with open_store(db_path) as store:
        await store.put_latest(VID, "X", weird)
        await store.add_historical(VID, "*-T", 1, weird, timestamp=100, expires=2**40)
        await store.put_latest(VID, "U", "unicode ✓")
    async with open_store(db_path) as store:
        latest = await store.latest(VID)
        assert latest["X"].data == weird
        assert latest["U"].data == "unicode ✓"
        records = await store.historical_records(VID, "*-T")
        assert records[0].data == weird
        summary = await store.historical_summary(VID)
        assert summary[0].total_size == len(weird.encode("utf-8", "surrogateescape"))


# --------------------------------------------------------------------------- group commit


async def test_group_commit_batches(store: Store, db_path: str) -> None:
    commits = store.stats.commits
    for i in range(500):
        await store.put_latest(f"V{i % 10}", f"C{i}", f"data {i}")
    await store.flush()
    assert store.stats.commits - commits < 10
    assert query(db_path, "SELECT COUNT(*) FROM latest") == [(500,)]


async def test_group_commit_batches_concurrent_writers(store: Store, db_path: str) -> None:
    commits = store.stats.commits

    async def car(n: int) -> None:
        for i in range(50):
            await store.put_latest(f"CAR{n}", "S", f"{i}")
            store.add_usage(f"CAR{n}", car_rx=10)
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(car, n)
    await store.flush()
    assert store.stats.commits - commits < 100  # 1000 writes
    rows = query(db_path, "SELECT vehicleid, data FROM latest ORDER BY vehicleid")
    assert len(rows) == 20 and all(data == "49" for _, data in rows)


async def test_max_batch_splits(db_path: str) -> None:
    async with open_store(db_path, max_batch=50) as store:
        for i in range(500):
            await store.put_latest(f"V{i % 10}", f"C{i}", "x")
        await store.flush()
        assert store.stats.commits >= 10
    assert query(db_path, "SELECT COUNT(*) FROM latest") == [(500,)]


async def test_close_flushes_pending_writes(db_path: str) -> None:
    async with open_store(db_path, flush_interval=10.0) as store:
        await store.put_latest(VID, "S", "pending")
        await store.add_historical(VID, "T", 1, "h", timestamp=1, expires=2**40)
        store.add_usage(VID, car_rx=5)
    assert query(db_path, "SELECT data FROM latest") == [("pending",)]
    assert query(db_path, "SELECT data FROM historical") == [("h",)]
    assert query(db_path, "SELECT car_rx FROM usage") == [(5,)]


async def test_close_on_cancel_flushes(db_path: str) -> None:
    # Cancelled once the write is queued (not on a timer: opening a database may be slow).
    with trio.CancelScope() as scope:
        async with open_store(db_path, flush_interval=10.0) as store:
            await store.put_latest(VID, "S", "cancelled")
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert query(db_path, "SELECT data FROM latest") == [("cancelled",)]


async def test_closed_store_refuses_writes(db_path: str) -> None:
    async with open_store(db_path) as store:
        pass
    with pytest.raises(StoreClosed):
        await store.put_latest(VID, "S", "late")


# --------------------------------------------------------------------------- durability


async def test_durable_historical_visible_from_other_connection(db_path: str) -> None:
    # A long flush interval: only durability can make the row appear at once.
    async with open_store(db_path, flush_interval=10.0) as store:
        await store.put_latest(VID, "S", "queued first")
        with trio.fail_after(2):
            await store.add_historical(
                VID, "*-Log", 7, "a,b,c", timestamp=1_700_000_000, expires=2**40, durable=True
            )
        rows = query(db_path, "SELECT vehicleid, htype, recordnumber, ts, data FROM historical")
        assert rows == [(VID, "*-Log", 7, 1_700_000_000, "a,b,c")]
        # everything queued before it is committed too
        assert query(db_path, "SELECT data FROM latest") == [("queued first",)]


async def test_nondurable_historical_waits_for_batch(db_path: str) -> None:
    async with open_store(db_path, flush_interval=10.0) as store:
        await store.add_historical(VID, "T", 1, "x", timestamp=1, expires=2**40)
        assert query(db_path, "SELECT COUNT(*) FROM historical") == [(0,)]
        await store.flush()
        assert query(db_path, "SELECT COUNT(*) FROM historical") == [(1,)]


async def test_bad_write_only_loses_itself(store: Store, db_path: str, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="relay.store")
    await store.put_latest(VID, "A", "before")
    with pytest.raises(StoreError):
        # does not fit SQLite's 64-bit INTEGER
        await store.add_historical(VID, "T", 2**70, "x", timestamp=1, expires=2**40, durable=True)
    await store.put_latest(VID, "B", "after")
    await store.add_historical(VID, "T", 1, "ok", timestamp=1, expires=2**40, durable=True)
    await store.flush()
    assert query(db_path, "SELECT code FROM latest ORDER BY code") == [("A",), ("B",)]
    assert query(db_path, "SELECT data FROM historical") == [("ok",)]
    assert store.stats.dropped == 1
    assert any("dropped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("db_target", ["sqlite"], indirect=True)  # SQLite's write lock
async def test_locked_database_is_retried_not_dropped(
    store: Store, db_path: str, caplog: Any
) -> None:
    caplog.set_level(logging.ERROR, logger="relay.store")
    await store._read(lambda conn: conn.execute("PRAGMA busy_timeout=20"))
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # hold the write lock
    try:
        await store.put_latest(VID, "S", "survives")
        done = trio.Event()

        async def durable() -> None:
            await store.add_historical(VID, "T", 1, "x", timestamp=1, expires=2**40, durable=True)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(durable)
            await trio.sleep(0.3)
            assert not done.is_set()  # not acknowledged while it cannot be committed
            assert store.stats.retries > 0
            locker.execute("ROLLBACK")
            with trio.fail_after(10):
                await done.wait()
    finally:
        locker.close()
    assert query(db_path, "SELECT data FROM latest") == [("survives",)]
    assert query(db_path, "SELECT COUNT(*) FROM historical") == [(1,)]
    assert store.stats.dropped == 0
    assert any("retrying" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- paranoid mode


async def test_set_paranoid_token(store: Store, db_path: str) -> None:
    await store.put_latest(VID, "S", "plain")
    await store.put_latest(VID, "D", "old secret", paranoid=True, ptoken="OLD")
    assert await store.set_paranoid_token(VID, "OLD") is True  # was ''
    assert await store.set_paranoid_token(VID, "OLD") is False
    assert set(await store.latest(VID)) == {"S", "D"}
    await store.put_latest(VID, "L", "old loc", paranoid=True, ptoken="OLD")

    assert await store.set_paranoid_token(VID, "NEW") is True
    latest = await store.latest(VID)
    assert set(latest) == {"S"}
    vehicle = await store.get_vehicle(VID)
    assert vehicle is not None and vehicle.ptoken == "NEW"
    await store.put_latest(VID, "D", "new secret", paranoid=True, ptoken="NEW")
    await store.flush()
    assert query(db_path, "SELECT code, ptoken FROM latest ORDER BY code") == [
        ("D", "NEW"),
        ("S", ""),
    ]
    assert query(db_path, "SELECT ptoken FROM vehicles WHERE vehicleid=?", VID) == [("NEW",)]
    assert await store.set_paranoid_token(VID, "NEW") is False


async def test_paranoid_token_persists(db_path: str) -> None:
    async with open_store(db_path) as store:
        await store.put_latest(VID, "D", "secret", paranoid=True, ptoken="T1")
        assert await store.set_paranoid_token(VID, "T1") is True
    async with open_store(db_path) as store:
        assert await store.set_paranoid_token(VID, "T1") is False
        assert "D" in await store.latest(VID)
        assert await store.set_paranoid_token(VID, "T2") is True
        assert await store.latest(VID) == {}


# --------------------------------------------------------------------------- historical


async def test_historical_upsert_summary_and_records(store: Store) -> None:
    far = int(time.time()) + 86400
    await store.add_historical(VID, "*-Trip", 1, "aaa", timestamp=100, expires=far)
    await store.add_historical(VID, "*-Trip", 1, "bbbb", timestamp=200, expires=far)
    await store.add_historical(VID, "*-Trip", 2, "cc", timestamp=100, expires=far)
    await store.add_historical(VID, "*-Trip", 2, "CC", timestamp=100, expires=far)  # replaces
    await store.add_historical(VID, "*-Bat", 0, "x", timestamp=150, expires=far)
    await store.add_historical(VID, "*-Bat", 0, "gone", timestamp=160, expires=1)  # expired
    await store.add_historical("OTHER", "*-Trip", 1, "z", timestamp=100, expires=far)

    # reads see queued writes
    summary = await store.historical_summary(VID)
    assert summary == [
        HistoricalSummary("*-Bat", 1, 1, 1, 150, 150),
        HistoricalSummary("*-Trip", 2, 3, 9, 100, 200),
    ]
    assert await store.historical_summary(VID, since=100) == [
        HistoricalSummary("*-Bat", 1, 1, 1, 150, 150),
        HistoricalSummary("*-Trip", 1, 1, 4, 200, 200),
    ]
    records = await store.historical_records(VID, "*-Trip")
    assert records == [
        HistoricalRecord("*-Trip", 100, 1, "aaa"),
        HistoricalRecord("*-Trip", 100, 2, "CC"),
        HistoricalRecord("*-Trip", 200, 1, "bbbb"),
    ]
    assert await store.historical_records(VID, "*-Trip", since=100) == [
        HistoricalRecord("*-Trip", 200, 1, "bbbb"),
    ]
    assert await store.historical_records(VID, "*-None") == []
    assert await store.historical_summary("NOBODY") == []


async def test_add_historical_moves_lastupdate(store: Store, db_path: str) -> None:
    before = time.time()
    await store.add_historical(VID, "T", 1, "x", timestamp=1, expires=2**40, durable=True)
    last = store.last_update(VID)
    assert last is not None and last >= before
    stored = query(db_path, "SELECT lastupdate FROM vehicles WHERE vehicleid=?", VID)[0][0]
    assert stored is not None and stored >= before


async def test_purge_in_batches(db_path: str) -> None:
    now = 1_000_000.0
    async with open_store(db_path, purge_batch=10) as store:
        for i in range(25):
            await store.add_historical(VID, "T", i, "old", timestamp=i, expires=int(now) - 1)
        for i in range(5):
            await store.add_historical(VID, "T", 100 + i, "new", timestamp=i, expires=int(now) + 1)
        await store.flush()
        batches = store.stats.purge_batches
        assert await store.purge_expired(now) == 25
        assert store.stats.purge_batches - batches == 3  # 10 + 10 + 5
        assert query(db_path, "SELECT COUNT(*), MIN(data), MAX(data) FROM historical") == [
            (5, "new", "new")
        ]
        assert await store.purge_expired(now) == 0


async def test_periodic_purge(db_path: str) -> None:
    async with open_store(db_path, purge_interval=0.05) as store:
        await store.add_historical(VID, "T", 1, "old", timestamp=1, expires=1)
        await store.add_historical(VID, "T", 2, "new", timestamp=1, expires=2**40)
        with trio.fail_after(5):
            while store.stats.purged < 1:
                await trio.sleep(0.02)
    assert query(db_path, "SELECT data FROM historical") == [("new",)]


# --------------------------------------------------------------------------- usage


async def test_usage_accumulates_and_flushes(store: Store, db_path: str) -> None:
    now = time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(now - 86400))
    store.add_usage(VID, car_rx=100, car_tx=10)
    store.add_usage(VID, car_rx=1, app_rx=5, app_tx=7)
    store.add_usage(VID, car_tx=3, when=now - 86400)
    store.add_usage("OTHER", car_rx=999)
    # unflushed counts are reported
    assert await store.usage(VID) == [
        UsageDay(today, 101, 10, 5, 7),
        UsageDay(yesterday, 0, 3, 0, 0),
    ]
    assert query(db_path, "SELECT COUNT(*) FROM usage") == [(0,)]  # not written yet
    await store.flush()
    rows = query(
        db_path,
        "SELECT day, car_rx, car_tx, app_rx, app_tx FROM usage WHERE vehicleid=? ORDER BY day",
        VID,
    )
    assert rows == [(yesterday, 0, 3, 0, 0), (today, 101, 10, 5, 7)]
    # further counts add to the stored ones
    store.add_usage(VID, car_rx=9)
    assert (await store.usage(VID))[0] == UsageDay(today, 110, 10, 5, 7)
    await store.flush()
    assert query(db_path, "SELECT car_rx FROM usage WHERE vehicleid=? AND day=?", VID, today) == [
        (110,)
    ]
    assert await store.usage(VID, days=1) == [UsageDay(today, 110, 10, 5, 7)]


async def test_usage_flushed_periodically(db_path: str) -> None:
    async with open_store(db_path, usage_interval=0.05) as store:
        store.add_usage(VID, app_tx=42)
        with trio.fail_after(5):
            while not query(db_path, "SELECT app_tx FROM usage"):
                await trio.sleep(0.02)
    assert query(db_path, "SELECT app_tx FROM usage") == [(42,)]


async def test_usage_old_days_excluded(store: Store) -> None:
    store.add_usage(VID, car_rx=1, when=time.time() - 100 * 86400)
    store.add_usage(VID, car_rx=2)
    assert [u.car_rx for u in await store.usage(VID, days=90)] == [2]


# --------------------------------------------------------------------------- push


async def test_push_subscriptions(store: Store, db_path: str) -> None:
    sub = PushSubscription(VID, "app-1", "alice", "apns", "production", "key1")
    await store.add_push_subscription(sub)
    assert await store.push_subscriptions(VID) == [sub]
    updated = PushSubscription(VID, "app-1", "alice", "apns", "production", "key2")
    await store.add_push_subscription(updated)
    second = PushSubscription(VID, "app-0", "alice", "gcm", "x", "y")
    await store.add_push_subscription(second)
    assert await store.push_subscriptions(VID) == [second, updated]
    assert await store.push_subscriptions("OTHER") == []
    await store.flush()
    assert query(db_path, "SELECT COUNT(*) FROM push_subscriptions") == [(2,)]


# --------------------------------------------------------------------------- opening


async def test_open_store_on_text_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_text("hello\n" * 100)
    with pytest.raises(db.DatabaseError):
        async with open_store(str(path)):
            pass


async def test_error_in_block_propagates_unwrapped_and_flushes(db_path: str) -> None:
    with pytest.raises(ValueError, match="boom"):
        async with open_store(db_path, flush_interval=10.0) as store:
            await store.put_latest(VID, "S", "before the error")
            raise ValueError("boom")
    assert query(db_path, "SELECT data FROM latest") == [("before the error",)]


_KILL_CHILD = """
import sys, trio
from relay.store import open_store

async def main(path):
    async with open_store(path, flush_interval=60.0) as store:
        for i in range(20):
            await store.add_historical(
                "DEMO", "*-Log", i, f"record {i}", timestamp=1000 + i, expires=2**40,
                durable=True,
            )
            print(f"acked {i}", flush=True)
        await store.put_latest("DEMO", "S", "not durable, may be lost")
        print("done", flush=True)
        await trio.sleep_forever()

trio.run(main, sys.argv[1])
"""


def test_acked_historical_survives_kill_9(db_path: str) -> None:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, db_path],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        assert child.stdout is not None
        acked = 0
        for line in child.stdout:
            if line.startswith("acked"):
                acked += 1
            if line.strip() == "done":
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert acked == 20
    rows = query(db_path, "SELECT recordnumber, data FROM historical ORDER BY recordnumber")
    assert rows == [(i, f"record {i}") for i in range(20)]
