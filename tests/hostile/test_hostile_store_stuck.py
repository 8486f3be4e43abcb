"""Issue 9 defect 5: reads must not queue behind a stuck write batch.

The writer is blocked on purpose (a write whose statement waits on an event in
the writer's thread, as a write on a full disk would keep failing); logins and
lookups must still be answered, and calls that cannot be answered fail within
the store's deadline instead of hanging.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from relay import db
from relay.store import Store, StoreError, StoreTimeout, open_store
from relay.store.backend import Connection
from tests.conftest import StartRelay
from tests.hostile.store_outage import logins_and_reads
from tools.v2client import LoginRefused

VID = "DEMO"


async def block_writer(store: Store, release: threading.Event) -> None:
    """Occupy the writer with a batch that runs until ``release`` is set."""

    def stuck(conn: Connection) -> None:
        release.wait(60)

    try:
        await store.write_call("stuck", stuck)
    except StoreTimeout:
        pass  # this test's caller gave up waiting; the write stays queued


@pytest.fixture
def db_path(empty_db: str, tmp_path: Path) -> str:
    path = empty_db
    conn = db.connect(path)
    db.add_owner(conn, "alice", "hunter2")
    db.add_vehicle(conn, VID, "alice", "carpass")
    token = db.add_token(conn, "alice", permit="auth")
    conn.execute("INSERT INTO latest VALUES (?, 'S', 5.0, 0, '', 'soc')", (VID,))
    conn.close()
    (tmp_path / "token").write_text(token)
    return path


async def test_lookups_answer_while_the_writer_is_stuck(db_path: str, tmp_path: Path) -> None:
    """Issue 9 defect 5: vehicle, owner, token and stored-message reads bypass the writer."""
    token = (tmp_path / "token").read_text()
    release = threading.Event()
    async with open_store(db_path) as store, trio.open_nursery() as nursery:
        nursery.start_soon(block_writer, store, release)
        await trio.sleep(0.05)  # the writer picks the blocking batch up
        try:
            await lookups(store, token)
        finally:
            release.set()


async def lookups(store: Store, token: str) -> None:
    # A write queued behind the stuck batch: the reads below must not wait for it.
    await store.put_latest("OTHER", "S", "queued")
    with trio.fail_after(5):  # a guard against hanging, not a timing assertion
        vehicle = await store.get_vehicle(VID)
        assert vehicle is not None and vehicle.owner == "alice"
        owner = await store.get_owner("alice")
        assert owner is not None
        assert await store.owner_vehicles("alice") == [VID]
        assert await store.check_token("alice", token) == "auth"
        assert await store.token_owner(token) == ("alice", "auth")
        assert (await store.latest(VID))["S"].data == "soc"
        assert await store.get_provision("nope") is None


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Jumps only once the test has been idle for a while in real time, so reads
    # running in worker threads finish before the clock moves on.
    return trio.testing.MockClock(autojump_threshold=0.2)


async def test_reads_that_follow_writes_fail_at_the_deadline(
    db_path: str, clock: trio.testing.MockClock
) -> None:
    """Issue 9 defect 5: a read ordered after stuck writes raises StoreTimeout, not hangs."""
    release = threading.Event()
    async with open_store(db_path, read_timeout=10.0) as store:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(block_writer, store, release)
                await trio.sleep(0.05)
                with pytest.raises(StoreTimeout):
                    await store.historical_records(VID, "*-Log")
                with pytest.raises(StoreError, match="within 10 s"):
                    await store.create_token("alice", "app", "", "auth")
                release.set()
        finally:
            release.set()
        # The writer carries on once unblocked: the token given up on is committed too.
        await store.flush()
        assert len(await store.list_tokens("alice")) == 2


async def test_logins_and_rest_answer_while_the_writer_is_stuck(
    start_relay: StartRelay, nursery: trio.Nursery
) -> None:
    """Issue 9 defect 5 over the network: v2 logins and REST reads still answer; a call
    needing the writer fails within store_timeout (REST 503, v2 c<n>,1,...)."""
    relay = await start_relay(store_timeout=0.5)
    store = relay.handle.store
    release = threading.Event()
    nursery.start_soon(block_writer, store, release)
    await trio.sleep(0.05)
    try:
        with trio.fail_after(8):  # a guard against hanging, not a timing assertion
            vehicles, historical = await logins_and_reads(relay)
            assert {v["id"] for v in vehicles.json()} == {"DEMO", "TESTCAR"}
            assert historical.status_code == 503
            assert "database is not answering" in historical.text
            # Over v2 the same read is an error answer; the app keeps its connection.
            app = await relay.app()
            await app.drain()
            await app.send("C", "31")
            (answer,) = await app.receive_until("c")
            assert answer.data == "31,1,Database unavailable, try again later"
            await app.aclose()
    finally:
        release.set()
    await store.flush()


async def test_v2_login_the_database_cannot_answer_is_closed(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 5: a v2 login whose lookups cannot be answered within store_timeout
    is closed and logged, not left hanging."""
    relay = await start_relay(store_timeout=0.5)
    pool = relay.handle.store._pool
    assert pool is not None
    # Every read thread taken, as if each read were stuck in a dead disk.
    holders = [object() for _ in range(int(pool.limiter.total_tokens))]
    for holder in holders:
        pool.limiter.acquire_on_behalf_of_nowait(holder)
    try:
        with trio.fail_after(8):  # a guard against hanging, not a timing assertion
            with pytest.raises(LoginRefused):
                await relay.app("TESTCAR")
    finally:
        for holder in holders:
            pool.limiter.release_on_behalf_of(holder)
    assert any("database unavailable" in r.getMessage() for r in caplog.records)
