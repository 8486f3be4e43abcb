"""A group-commit write queue: one writer task, one connection, batched transactions.

Generic: it knows statements, calls and reads, not tables. Every write is
queued to the writer task, which drains the queue in batches: all writes of a
batch run in one worker-thread call, in one transaction, with consecutive
identical statements sent through ``executemany``. Reads queued here run right
after the batch's commit, in the same thread call; the queue is FIFO, so they
see every write queued before them. Operations on different tables commute, so
a batch is stably sorted by table (order within a table is kept).

Coalesced bookkeeping (counters, last-seen times: values where only the latest
or the sum matters) is not queued item by item: the owner passes a
``coalesce(full)`` callback, asked once per batch for ``(sql, rows)`` pairs to
run at the end of the transaction; ``full`` is true when a :meth:`flush`
(or :meth:`kick`) asked for everything.

Failures: a batch that fails with a transient error (locked, I/O, disk full,
...; the backend decides) is rolled back and retried with back-off, never
dropped while the queue is open; the outage is logged once when it starts and
once when it ends. A batch that fails for any other reason is re-run one
operation at a time in savepoints, so only the offending operations are dropped
(logged, and reported to a waiter); everything else commits. At close, queued
work is retried up to ``close_timeout`` and then given up (logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import attrs
import trio

from relay.store.backend import Connection, one_line
from relay.store.errors import StoreClosed, StoreError, StoreTimeout

log = logging.getLogger("relay.store")

# Retries of a failing batch back off up to this: short enough that writes resume
# within a second of space being freed, long enough to cost nothing.
_MAX_BACKOFF = 1.0
_FIRST_BACKOFF = 0.05
_MAX_UNEXPECTED_FAILURES = 3

Many: TypeAlias = tuple[str, Sequence[Sequence[Any]]]
Coalesce: TypeAlias = Callable[[bool], list[Many]]


@attrs.define
class QueueStats:
    """Counters for tests and monitoring."""

    commits: int = 0  # committed write transactions (one per batch with writes)
    batches: int = 0  # batches run (including read-only ones)
    writes: int = 0  # queued write operations committed
    reads: int = 0  # database reads
    retries: int = 0  # failed batch attempts that were retried
    dropped: int = 0  # write operations dropped (logged at ERROR)
    # Told each write batch's seconds from start to commit, retries included
    # (the relay's metrics); must not block.
    on_batch: Callable[[float], None] | None = None


@attrs.define
class StoreStats(QueueStats):
    """The store's counters: the write queue's, and purges (for tests and monitoring)."""

    purge_batches: int = 0
    purged: int = 0


class Waiter:
    __slots__ = ("_error", "_event", "_result")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def set_result(self, result: Any) -> None:
        self._result = result
        self._event.set()

    def set_error(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._result


@attrs.define(eq=False)
class Write:
    """One parameterised statement; consecutive equal ``sql`` are ``executemany``-ed."""

    table: str
    sql: str
    params: Sequence[Any]
    waiter: Waiter | None = None


@attrs.define(eq=False)
class Call:
    """A write needing its own statement(s) and a result (e.g. one purge round)."""

    table: str
    fn: Callable[[Connection], Any]
    waiter: Waiter | None = None


@attrs.define(eq=False)
class Read:
    fn: Callable[[Connection], Any]
    waiter: Waiter
    # Runs in the trio thread right after the batch, before anything else can
    # change the owner's in-memory state; used to merge unflushed memory into results.
    post: Callable[[Any], Any] | None = None


@attrs.define(eq=False)
class Barrier:
    waiter: Waiter | None = None
    full: bool = False  # also take all coalesced bookkeeping


Item: TypeAlias = Write | Call | Read | Barrier
WriteOp: TypeAlias = Write | Call


@attrs.define(eq=False)
class Batch:
    writes: list[WriteOp]
    reads: list[Read]
    barriers: list[Barrier]
    extra: list[Many]

    def has_writes(self) -> bool:
        return bool(self.writes or self.extra)


@attrs.define(eq=False)
class _Failed:
    error: BaseException


@attrs.define(eq=False)
class Outcome:
    committed: bool
    results: list[Any]
    errors: list[BaseException | None]
    reads: list[Any]


# --------------------------------------------------------------------------- worker-thread side


def _apply_extra(conn: Connection, extra: list[Many]) -> None:
    for sql, rows in extra:
        conn.executemany(sql, rows)


def _apply_fast(conn: Connection, batch: Batch) -> list[Any]:
    writes = batch.writes
    results: list[Any] = [None] * len(writes)
    with conn.transaction():
        i, n = 0, len(writes)
        while i < n:
            op = writes[i]
            if isinstance(op, Call):
                results[i] = op.fn(conn)
                i += 1
                continue
            j = i + 1
            while j < n:
                nxt = writes[j]
                if not isinstance(nxt, Write) or nxt.sql != op.sql:
                    break
                j += 1
            if j - i == 1:
                conn.execute(op.sql, op.params)
            else:
                conn.executemany(op.sql, [w.params for w in writes[i:j]])  # type: ignore[union-attr]
            i = j
        _apply_extra(conn, batch.extra)
    return results


def _run_one(conn: Connection, op: WriteOp) -> Any:
    if isinstance(op, Call):
        return op.fn(conn)
    conn.execute(op.sql, op.params)
    return None


def _apply_slow(conn: Connection, batch: Batch) -> tuple[list[Any], list[BaseException | None]]:
    """One savepoint per operation, so a bad operation only loses itself."""
    writes = batch.writes
    results: list[Any] = [None] * len(writes)
    errors: list[BaseException | None] = [None] * len(writes)
    with conn.transaction():
        for i, op in enumerate(writes):
            try:
                with conn.savepoint():
                    results[i] = _run_one(conn, op)
            except Exception as exc:
                if conn.is_transient(exc):
                    raise
                errors[i] = exc
        try:
            with conn.savepoint():
                _apply_extra(conn, batch.extra)
        except Exception as exc:
            if conn.is_transient(exc):
                raise
            log.error("dropped coalesced bookkeeping updates: %s", one_line(exc))
    return results, errors


def execute_batch(conn: Connection, batch: Batch) -> Outcome:
    """Runs in a worker thread: all writes in one transaction, then the reads."""
    committed = False
    results: list[Any] = []
    errors: list[BaseException | None] = [None] * len(batch.writes)
    if conn.in_transaction:
        # Left open by a failed attempt whose rollback failed too: start clean,
        # or every retry would fail with "cannot start a transaction".
        conn.rollback()
    if batch.has_writes():
        try:
            results = _apply_fast(conn, batch)
        except Exception as exc:
            if conn.is_transient(exc):
                raise
            results, errors = _apply_slow(conn, batch)
        committed = True
    reads: list[Any] = []
    for read in batch.reads:
        try:
            reads.append(read.fn(conn))
        except Exception as exc:
            reads.append(_Failed(exc))
    return Outcome(committed, results, errors, reads)


# --------------------------------------------------------------------------- trio side


def _nothing(full: bool) -> list[Many]:
    return []


class WriteQueue:
    """See the module docstring. Run :meth:`run` in a task; :meth:`close` ends it."""

    def __init__(
        self,
        conn: Connection,
        *,
        flush_interval: float,
        max_batch: int,
        queue_size: int,
        read_timeout: float,
        close_timeout: float,
        coalesce: Coalesce = _nothing,
        stats: QueueStats | None = None,
    ) -> None:
        self._conn = conn
        self._flush_interval = flush_interval
        self._max_batch = max(1, max_batch)
        self.read_timeout = read_timeout
        self._close_timeout = close_timeout
        self._coalesce = coalesce
        self.stats = stats if stats is not None else QueueStats()
        self._send, self._recv = trio.open_memory_channel[Item](max(1, queue_size))
        self._accepting = True
        self._closing = False
        self._give_up_at = float("inf")
        self._done = trio.Event()
        # Set while write batches fail (trio time of the first failure).
        self._failing_since: float | None = None

    # ----------------------------------------------------------------- submitting

    @property
    def writes_failing(self) -> bool:
        """True while write batches fail and are being retried (e.g. the disk is full)."""
        return self._failing_since is not None

    @property
    def depth(self) -> int:
        """Reads and writes waiting for the writer task (server status)."""
        return self._send.statistics().current_buffer_used

    def timed_out(self) -> StoreTimeout:
        state = "writes are failing" if self.writes_failing else "database busy"
        return StoreTimeout(f"no answer from the database within {self.read_timeout:g} s "
                            f"({state})")

    async def submit(self, item: Item) -> None:
        """Queue ``item``; waits only while the queue is full."""
        if not self._accepting:
            raise StoreClosed("store is closed")
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            try:
                await self._send.send(item)
            except trio.ClosedResourceError:
                raise StoreClosed("store is closed") from None
        except trio.ClosedResourceError:
            raise StoreClosed("store is closed") from None

    async def write(self, table: str, sql: str, params: Sequence[Any]) -> None:
        """Queue one statement; group-committed, not waited for."""
        await self.submit(Write(table, sql, params))

    async def write_waited(self, table: str, sql: str, params: Sequence[Any]) -> None:
        """Queue one statement and return once it is committed (no deadline)."""
        waiter = Waiter()
        await self.submit(Write(table, sql, params, waiter))
        await waiter.wait()

    async def read(self, fn: Callable[[Connection], Any],
                   post: Callable[[Any], Any] | None = None) -> Any:
        """``fn`` after everything queued so far; :class:`StoreTimeout` at the deadline."""
        waiter = Waiter()
        try:
            with trio.fail_after(self.read_timeout):
                await self.submit(Read(fn, waiter, post))
                return await waiter.wait()
        except trio.TooSlowError:
            raise self.timed_out() from None

    async def call(self, table: str, fn: Callable[[Connection], Any], *,
                   wait: bool = False) -> Any:
        """``fn`` inside a batch's transaction; its result once committed. Gives up
        waiting at the deadline unless ``wait`` (a call given up on stays queued)."""
        waiter = Waiter()
        if wait:
            await self.submit(Call(table, fn, waiter))
            return await waiter.wait()
        try:
            with trio.fail_after(self.read_timeout):
                await self.submit(Call(table, fn, waiter))
                return await waiter.wait()
        except trio.TooSlowError:
            raise self.timed_out() from None

    async def flush(self) -> None:
        """Wait until everything queued so far (and all coalesced bookkeeping) is committed."""
        waiter = Waiter()
        await self.submit(Barrier(waiter, full=True))
        await waiter.wait()

    def kick(self) -> bool:
        """Ask for the coalesced bookkeeping to be written soon, without waiting;
        False if the queue is full or closed (try again later)."""
        try:
            self._send.send_nowait(Barrier(full=True))
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    # ----------------------------------------------------------------- the writer task

    async def run(self) -> None:
        # Shielded: only closing the channel (close) ends this task, so nothing
        # that was queued is lost to a cancellation.
        with trio.CancelScope(shield=True):
            try:
                while True:
                    items = await self._collect()
                    if items is None:
                        break
                    await self._run_batch(items)
            except BaseException:
                log.exception("store writer crashed")
                raise
            finally:
                self._done.set()

    async def close(self) -> None:
        """Commit everything queued (retrying up to ``close_timeout``) and stop. Call shielded."""
        self._accepting = False
        self._closing = True
        self._give_up_at = trio.current_time() + self._close_timeout
        if not self._done.is_set():
            with trio.move_on_after(self._close_timeout):
                await self._send.send(Barrier(full=True))
        await self._send.aclose()
        await self._done.wait()

    async def _collect(self) -> list[Item] | None:
        try:
            first = await self._recv.receive()
        except trio.EndOfChannel:
            return None
        items = [first]
        urgent = first.waiter is not None
        deadline = trio.current_time() + self._flush_interval
        while len(items) < self._max_batch:
            try:
                try:
                    item = self._recv.receive_nowait()
                except trio.WouldBlock:
                    if urgent or self._closing:
                        break
                    with trio.move_on_at(deadline) as scope:
                        item = await self._recv.receive()
                    if scope.cancelled_caught:
                        break
            except trio.EndOfChannel:
                break
            items.append(item)
            urgent = urgent or item.waiter is not None
        return items

    def _plan(self, items: list[Item]) -> Batch:
        writes: list[WriteOp] = []
        reads: list[Read] = []
        barriers: list[Barrier] = []
        full = False
        for item in items:
            if isinstance(item, Write | Call):
                writes.append(item)
            elif isinstance(item, Read):
                reads.append(item)
            else:
                barriers.append(item)
                full = full or item.full
        writes.sort(key=lambda op: op.table)
        return Batch(writes, reads, barriers, self._coalesce(full))

    async def _run_batch(self, items: list[Item]) -> None:
        started = time.perf_counter()
        batch = self._plan(items)
        delay = _FIRST_BACKOFF
        unexpected = 0
        while True:
            try:
                outcome = await trio.to_thread.run_sync(execute_batch, self._conn, batch)
                break
            except Exception as exc:
                transient = self._conn.is_transient(exc)
                unexpected += not transient
                if (self._closing and trio.current_time() >= self._give_up_at) or (
                    unexpected >= _MAX_UNEXPECTED_FAILURES
                ):
                    self._abandon(batch, exc)
                    return
                self.stats.retries += 1
                self._batch_failed(batch, exc, transient)
                await trio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
        if self._failing_since is not None:
            log.warning(
                "database writes work again after %.1f s; the %d queued operations are "
                "committed, none lost",
                trio.current_time() - self._failing_since,
                len(batch.writes) + self._recv.statistics().current_buffer_used,
            )
            self._failing_since = None
        self._finish(batch, outcome)
        if self.stats.on_batch is not None and batch.has_writes():
            self.stats.on_batch(time.perf_counter() - started)

    def _batch_failed(self, batch: Batch, exc: BaseException, transient: bool) -> None:
        """Log an outage once at its start (and each unexpected error, retried at most twice)."""
        if transient and self._failing_since is not None:
            log.debug("write batch failed again: %s", one_line(exc))
            return
        if transient:
            self._failing_since = trio.current_time()
        log.error(
            "database writes failing (%d ops, %s: %s); retrying until they succeed, "
            "nothing is dropped and no h record is acked meanwhile",
            len(batch.writes),
            type(exc).__name__,
            one_line(exc),
        )

    def _finish(self, batch: Batch, outcome: Outcome) -> None:
        self.stats.batches += 1
        if outcome.committed:
            self.stats.commits += 1
        for i, op in enumerate(batch.writes):
            error = outcome.errors[i]
            if error is not None:
                self.stats.dropped += 1
                log.error("dropped a %s write that cannot be stored: %s: %s",
                          op.table, type(error).__name__, one_line(error))
                if op.waiter is not None:
                    op.waiter.set_error(StoreError(f"write failed: {one_line(error)}"))
                continue
            self.stats.writes += 1
            if op.waiter is not None:
                op.waiter.set_result(outcome.results[i] if outcome.results else None)
        for read, result in zip(batch.reads, outcome.reads, strict=True):
            self.stats.reads += 1
            if isinstance(result, _Failed):
                read.waiter.set_error(result.error)
                continue
            if read.post is not None:
                try:
                    result = read.post(result)
                except Exception as exc:
                    read.waiter.set_error(exc)
                    continue
            read.waiter.set_result(result)
        for barrier in batch.barriers:
            if barrier.waiter is not None:
                barrier.waiter.set_result(None)

    def _abandon(self, batch: Batch, exc: BaseException) -> None:
        self.stats.dropped += len(batch.writes)
        log.error(
            "giving up on a write batch: %d operations and %d coalesced updates NOT stored "
            "(%s: %s)",
            len(batch.writes),
            sum(len(rows) for _, rows in batch.extra),
            type(exc).__name__,
            one_line(exc),
        )
        error = StoreError(f"not stored: {one_line(exc)}")
        for op in batch.writes:
            if op.waiter is not None:
                op.waiter.set_error(error)
        for read in batch.reads:
            read.waiter.set_error(error)
        for barrier in batch.barriers:
            if barrier.waiter is not None:
                barrier.waiter.set_error(error)
