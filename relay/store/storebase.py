"""The store's plumbing, shared by its faces (``relay.store.core.Store``).

Writes go through the group-commit :class:`~relay.store.writequeue.WriteQueue` (one writer
connection, batched transactions). Reads come in two kinds. Login and lookup reads (vehicles,
owners, tokens, provisioning, a vehicle's stored messages) run on separate read connections
(:class:`~relay.store.readpool.ReadPool`), so they never wait for the writer: a full disk
stalls writes, not logins; vehicle reads (every login's) share a thread hop per batch
(:mod:`relay.store.readbatch`). Reads that must see writes queued before them (historical
records, usage, push subscriptions, token lists, extension queries) are queued to the writer.
Both kinds, and writes a request waits for, give up after ``read_timeout`` with
:class:`StoreTimeout`, so a request fails with an error instead of hanging.

Bookkeeping where only the last value or the sum counts (vehicles' last update, tokens' last
use, traffic counters) is kept in memory and coalesced into each batch (counters: every
``usage_interval``). Here too: the caches' state, the background tasks (purges, usage
flushes, claims) and the extension API optional components run their SQL through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from relay.store import accounts, claims, historical, latest, passwords, usage, vehicles
from relay.store.backend import Backend, Connection, one_line
from relay.store.cache import LatestCache, TtlCache
from relay.store.errors import StoreClosed, StoreError
from relay.store.readbatch import BatchedLookup
from relay.store.readpool import ReadPool
from relay.store.records import OwnerRecord, StoredMessage, VehicleRecord
from relay.store.settings import StoreSettings
from relay.store.writequeue import Many, StoreStats, Write, WriteQueue

log = logging.getLogger("relay.store")


class StoreBase:
    """The write queue, the read pool, the caches and the background tasks."""

    def __init__(self, backend: Backend, conn: Connection, settings: StoreSettings,
                 read_pool: ReadPool | None) -> None:
        self.backend = backend
        self.settings = settings
        # None: every read is queued to the writer (readers cannot see its data).
        self._pool = read_pool
        self._read_timeout = settings.read_timeout
        self._purge_batch = max(1, settings.purge_batch)
        self.stats = StoreStats()
        self._queue = WriteQueue(
            conn, flush_interval=settings.flush_interval, max_batch=settings.max_batch,
            queue_size=settings.queue_size, read_timeout=settings.read_timeout,
            close_timeout=settings.close_timeout, coalesce=self._coalesce, stats=self.stats)
        self._bg_scope = trio.CancelScope()

        self._vehicles: TtlCache[str, VehicleRecord] = TtlCache(settings.cache_ttl)
        self._owners: TtlCache[str, OwnerRecord] = TtlCache(settings.cache_ttl)
        self._ptokens: dict[str, str] = {}
        self._latest = LatestCache(self._load_latest, max_codes=settings.max_stored_codes,
                                   max_bytes=settings.max_stored_bytes)
        # Coalesced bookkeeping, written with the next batch (usage: with a full one).
        self._lastupdate_unwritten: dict[str, float] = {}
        self._token_lastused: dict[str, float] = {}
        self._usage: dict[tuple[str, str], list[int]] = {}
        self._day_cache: tuple[int, str] = (-1, "")
        self._hashing = passwords.Hashing(settings.hash_concurrency)
        # Further bounded purges (name -> round), run after the historical one.
        self._purges: dict[str, Callable[..., int]] = {}
        # Work rows exactly one node retries (pending pushes and callbacks).
        self.claims = claims.Claims(partial(self._call, wait=True), settings.claim_lease)
        self._vehicle_rows: BatchedLookup[str, dict[str, Any]] = BatchedLookup(
            lambda ids: self._read_now(partial(vehicles.read_vehicles, vehicleids=ids)))

    # ----------------------------------------------------------------- plumbing

    def _coalesce(self, full: bool) -> list[Many]:
        extra: list[Many] = []
        if self._lastupdate_unwritten:
            extra.append((vehicles.SET_LASTUPDATE,
                          [(t, v) for v, t in self._lastupdate_unwritten.items()]))
            self._lastupdate_unwritten = {}
        if self._token_lastused:
            extra.append((accounts.SET_TOKEN_LASTUSED,
                          [(t, h) for h, t in self._token_lastused.items()]))
            self._token_lastused = {}
        if full and self._usage:
            extra.append((usage.ADD_USAGE, [(v, d, *c) for (v, d), c in self._usage.items()]))
            self._usage = {}
        return extra

    @property
    def writes_failing(self) -> bool:
        """True while write batches fail and are being retried (e.g. the disk is full)."""
        return self._queue.writes_failing

    @property
    def queue_depth(self) -> int:
        """Reads and writes waiting for the writer task (server status)."""
        return self._queue.depth

    def forget_cached(self, *, vehicleid: str | None = None, owner: str | None = None) -> None:
        """Drop cached records a change in the database made stale (a password, status,
        carpass or owner changed by ovms-admin or the console)."""
        if vehicleid is not None:
            self._vehicles.pop(vehicleid)
        if owner is not None:
            self._owners.pop(owner)

    async def _submit(self, item: Write) -> None:
        await self._queue.submit(item)

    async def _read(self, fn: Callable[[Connection], Any],
                    post: Callable[[Any], Any] | None = None) -> Any:
        """A read queued to the writer: it sees every write queued before it."""
        return await self._queue.read(fn, post)

    async def _read_now(self, fn: Callable[[Connection], Any]) -> Any:
        """A read on a read connection: it never waits for the writer."""
        pool = self._pool
        if pool is None:
            return await self._read(fn)
        try:
            with trio.fail_after(self._read_timeout):
                result = await trio.to_thread.run_sync(
                    pool.run, fn, limiter=pool.limiter, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise self._queue.timed_out() from None
        except Exception as exc:
            # The database went away (a PostgreSQL restart): the caller fails this one
            # request, as on a timeout; the connection reopens for the next.
            if self.backend.is_transient(exc):
                raise StoreError(f"database unavailable: {one_line(exc)}") from None
            raise
        self.stats.reads += 1
        return result

    async def _call(self, table: str, fn: Callable[[Connection], Any], *,
                    wait: bool = False) -> Any:
        return await self._queue.call(table, fn, wait=wait)

    async def flush(self) -> None:
        """Wait until everything queued so far (and the usage counters) is committed."""
        await self._queue.flush()

    # ----------------------------------------------------------------- background tasks

    async def _background(self) -> None:
        with self._bg_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._purge_loop)
                nursery.start_soon(self._usage_loop)
                nursery.start_soon(self.claims.run)
                nursery.start_soon(self._vehicle_rows.run)

    async def _purge_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.purge_interval)
            try:
                await self.purge_expired()
            except StoreClosed:
                return
            except Exception as exc:
                log.error("purge of expired historical records failed: %s", one_line(exc))

    async def _usage_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.usage_interval)
            if self._usage or self._token_lastused:
                self._queue.kick()  # busy or closed: the next round (or close) will do

    async def _close(self) -> None:
        """Flush everything and stop the writer. Call shielded."""
        await self._queue.close()
        if self._usage:
            log.error("%d usage counters NOT stored at close", len(self._usage))

    # ----------------------------------------------------------------- cache loading and purges

    async def _load_latest(self, vehicleid: str) -> tuple[dict[str, StoredMessage], float | None]:
        if self._latest.shared and self._latest.holds(vehicleid):
            # Messages this node queued before the car arrived here (a v3 module's state
            # is stored, then its car registered) are not in the database yet: read
            # after they commit, or the cache would keep the older copy. Bounded: a
            # stuck disk must not hold the car up.
            with trio.move_on_after(self._read_timeout):
                await self.flush()
        stored, lastupdate, ptoken = await self._read_now(
            partial(latest.load_latest, vehicleid=vehicleid))
        if not self._latest.holds(vehicleid) and ptoken is not None:
            # The car is on another node, which changes the paranoid token: the
            # database's is the one its stored messages were kept under.
            hit = self._vehicles.peek(vehicleid)
            if hit is not None and hit.ptoken != ptoken:
                self._vehicles.replace(vehicleid, attrs.evolve(hit, ptoken=ptoken))
        return stored, lastupdate

    async def _purge(self, name: str, fn: Callable[..., int]) -> int:
        count = 0
        while True:
            deleted: int = await self._call(name, fn)
            self.stats.purge_batches += 1
            count += deleted
            if deleted < self._purge_batch:
                return count
            await trio.sleep(0)

    async def purge_expired(self, now: float | None = None) -> int:
        """Delete historical records with ``expires < now`` in batches; returns the count."""
        cutoff = time.time() if now is None else now
        total = await self._purge("historical", partial(
            historical.purge_round, cutoff=cutoff, limit=self._purge_batch))
        self.stats.purged += total
        if total:
            log.info("purged %d expired historical records", total)
        for name, purge in self._purges.items():
            count = await self._purge(name, partial(purge, now=cutoff, limit=self._purge_batch))
            if count:
                log.info("purged %d expired %s rows", count, name)
            total += count
        return total

    # ----------------------------------------------------------------- extensions
    # Optional components (relay.v4, outbound delivery) keep their SQL in their own
    # repository module and run it through the one writer, so they share its group
    # commit and FIFO ordering. ``fn`` gets a ``relay.store.backend.Connection``.

    def add_purge(self, name: str, fn: Callable[..., int]) -> None:
        """Run ``fn(conn, now=..., limit=...) -> rows deleted`` in every purge, in rounds."""
        self._purges[name] = fn

    async def query(self, fn: Callable[[Connection], Any]) -> Any:
        """Run a read in the writer's thread after everything queued so far."""
        return await self._read(fn)

    async def write(self, table: str, sql: str, params: tuple[Any, ...]) -> None:
        """Queue one statement; group-committed, not waited for (like ``put_latest``)."""
        await self._submit(Write(table, sql, params))

    async def write_call(self, table: str, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn`` inside the next batch's transaction; returns once committed."""
        return await self._call(table, fn)


__all__ = ["StoreBase"]
