"""Issue 11 (store with a backend seam): the generic group-commit write queue on its own,
over a real SQLite and a real PostgreSQL connection, with time on trio's MockClock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from relay.store.backend import Connection
from relay.store.engines import backend_for
from relay.store.errors import StoreClosed, StoreError, StoreTimeout
from relay.store.sqlite import SQLiteConnection
from relay.store.writequeue import Call, Many, WriteQueue

INSERT = "INSERT INTO t(k, v) VALUES (?, ?)"


class Recording:
    """A backend's connection that counts the statements the queue sends (single and
    executemany)."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def in_transaction(self) -> bool:
        return self.inner.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.calls.append(("execute", sql, 1))
        return self.inner.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        rows = list(rows)
        self.calls.append(("executemany", sql, len(rows)))
        return self.inner.executemany(sql, rows)

    def transient_error(self) -> Exception:
        """What the backend reports for a failure worth retrying."""
        if isinstance(self.inner, SQLiteConnection):
            return sqlite3.OperationalError("database is locked")
        import psycopg

        return psycopg.OperationalError("server closed the connection unexpectedly")


@pytest.fixture
def conn(db_target: str) -> Iterable[Recording]:
    inner = backend_for(db_target).connect()
    inner.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    inner.execute("CREATE TABLE c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    recording = Recording(inner)
    yield recording
    inner.close()


def rows(conn: Recording, table: str = "t") -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.inner.execute(f"SELECT * FROM {table} ORDER BY k")]


def make(conn: Recording, **kwargs: Any) -> WriteQueue:
    # An autojumping mock clock jumps while a batch runs in its thread (trio is idle
    # then), so only tests about deadlines and back-off use one.
    settings: dict[str, Any] = dict(flush_interval=0.005, max_batch=2000, queue_size=100,
                                    read_timeout=1e6, close_timeout=30.0)
    settings.update(kwargs)
    return WriteQueue(conn, **settings)  # type: ignore[arg-type]


@asynccontextmanager
async def running(conn: Recording, **kwargs: Any) -> AsyncIterator[WriteQueue]:
    """A queue with its writer task; closed (everything committed) at the end, also when
    the test fails, since the writer only ends when the queue is closed."""
    queue = make(conn, **kwargs)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        try:
            yield queue
        finally:
            with trio.CancelScope(shield=True):
                await queue.close()


async def test_group_commit_and_executemany(
    conn: Recording
) -> None:
    """Writes queued within the flush interval commit in one transaction; consecutive
    equal statements go through one executemany."""
    async with running(conn, flush_interval=1.0) as queue:
        for i in range(50):
            await queue.write("t", INSERT, (f"k{i:02}", i))
        await queue.flush()
        assert queue.stats.commits == 1 and queue.stats.writes == 50
        assert ("executemany", INSERT, 50) in conn.calls
        assert len(rows(conn)) == 50


async def test_max_batch_splits_batches(
    conn: Recording
) -> None:
    async with running(conn, flush_interval=1.0, max_batch=10) as queue:
        for i in range(30):
            await queue.write("t", INSERT, (f"k{i:02}", i))
        await queue.flush()
        assert queue.stats.commits >= 3
        assert len(rows(conn)) == 30


async def test_coalesced_bookkeeping_each_batch_and_full_on_flush(
    conn: Recording
) -> None:
    """The owner's coalesce callback is asked once per batch; ``full`` only when a flush
    (or kick) asked for everything."""
    asked: list[bool] = []
    counts = {"a": 0}

    def coalesce(full: bool) -> list[Many]:
        asked.append(full)
        if not full or not counts["a"]:
            return []
        extra: list[Many] = [("INSERT INTO c(k, n) VALUES (?, ?) ON CONFLICT(k) DO UPDATE "
                              "SET n=c.n+excluded.n", [("a", counts["a"])])]
        counts["a"] = 0
        return extra

    async with running(conn, coalesce=coalesce) as queue:
        counts["a"] = 3
        await queue.write_waited("t", INSERT, ("x", 1))
        assert asked == [False] and rows(conn, "c") == []
        counts["a"] += 2
        await queue.flush()
        assert asked[-1] is True and rows(conn, "c") == [("a", 5)]
        counts["a"] = 4
        assert queue.kick()
        await queue.write_waited("t", INSERT, ("y", 2))  # after the kick's batch
        assert rows(conn, "c") == [("a", 9)]


async def test_reads_see_writes_queued_before_them(
    conn: Recording
) -> None:
    async with running(conn, flush_interval=5.0) as queue:
        await queue.write("t", INSERT, ("a", 1))
        got = await queue.read(lambda c: c.execute("SELECT v FROM t WHERE k='a'").fetchone()[0],
                               post=lambda v: v * 10)
        assert got == 10


async def test_transient_failure_is_retried_with_backoff_not_dropped(
    conn: Recording, autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A locked database (a transient error) fails the batch three times: it is retried
    with back-off, logged once when it starts and once when it ends, and committed."""
    failures = [3]

    def flaky(c: Connection) -> str:
        if failures[0]:
            failures[0] -= 1
            raise conn.transient_error()
        c.execute(INSERT, ("late", 1))
        return "done"

    async with running(conn) as queue:
        await queue.write("t", INSERT, ("early", 0))
        started = trio.current_time()
        assert await queue.call("t", flaky, wait=True) == "done"
        # Back-off 0.05 + 0.1 + 0.2 s of trio time, not a busy loop.
        assert trio.current_time() - started >= 0.35
        assert queue.stats.retries == 3 and queue.stats.dropped == 0
        assert not queue.writes_failing
        assert rows(conn) == [("early", 0), ("late", 1)]
        messages = [r.getMessage() for r in caplog.records if r.name == "relay.store"]
        assert sum("database writes failing" in m for m in messages) == 1
        assert sum("work again" in m for m in messages) == 1


async def test_a_bad_write_only_loses_itself(
    conn: Recording
) -> None:
    async with running(conn, flush_interval=1.0) as queue:
        await queue.write("t", INSERT, ("a", 1))
        await queue.write("t", INSERT, ("a", 2))  # duplicate key: not transient
        await queue.write("t", INSERT, ("b", 3))
        with pytest.raises(StoreError, match="write failed"):
            await queue.write_waited("t", "INSERT INTO t(k, v) VALUES (?, NULL)", ("c",))
        assert rows(conn) == [("a", 1), ("b", 3)]
        assert queue.stats.dropped == 2


async def test_a_read_the_writer_cannot_answer_times_out(
    conn: Recording, autojump_clock: trio.testing.MockClock
) -> None:
    """A stuck batch (a thread that does not return) makes waiting reads fail at the
    deadline with StoreTimeout instead of hanging; the read still runs later."""
    release = threading.Event()
    async with running(conn, read_timeout=2.0) as queue:
        await queue.submit(Call("t", lambda c: release.wait(10)))
        await trio.sleep(0.1)
        with pytest.raises(StoreTimeout, match="within 2 s"):
            await queue.read(lambda c: 1)
        release.set()
        await queue.flush()


async def test_close_commits_what_is_queued_then_refuses(
    conn: Recording
) -> None:
    async with running(conn, flush_interval=60.0) as queue:
        for i in range(5):
            await queue.write("t", INSERT, (f"k{i}", i))
        await queue.close()
        assert len(rows(conn)) == 5
        with pytest.raises(StoreClosed):
            await queue.write("t", INSERT, ("z", 0))


async def test_writes_sorted_by_table_keep_their_order_within_a_table(
    conn: Recording
) -> None:
    async with running(conn, flush_interval=1.0) as queue:
        await queue.write("t", INSERT, ("a", 1))
        await queue.write("c", "INSERT INTO c(k, n) VALUES (?, ?)", ("x", 1))
        await queue.write("t", "UPDATE t SET v=? WHERE k=?", (2, "a"))
        await queue.write("t", "UPDATE t SET v=? WHERE k=?", (3, "a"))
        await queue.flush()
        assert rows(conn) == [("a", 3)] and rows(conn, "c") == [("x", 1)]
