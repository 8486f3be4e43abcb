"""The relay's asynchronous (trio) store: the repositories behind one write queue.

Writes go through the group-commit :class:`~relay.store.writequeue.WriteQueue` (one writer
connection, batched transactions). Reads come in two kinds. Login and lookup reads (vehicles,
owners, tokens, provisioning, a vehicle's stored messages) run on separate read connections
(:class:`~relay.store.readpool.ReadPool`), so they never wait for the writer: a full disk
stalls writes, not logins; vehicle reads (every login's) share a thread hop per batch
(:mod:`relay.store.readbatch`). Reads that must see writes queued before them (historical
records, usage, push subscriptions, token lists, extension queries) are queued to the writer.
Both kinds, and writes a request waits for, give up after ``read_timeout`` with
:class:`StoreTimeout`, so a request fails with an error instead of hanging.

Hot-path reads (vehicles, owners, latest messages) are served from memory
(``relay.store.cache``). ``put_latest`` updates memory first, so readers see a write before it
is committed. Writers only wait when the queue is full, except durable writes
(``add_historical(durable=True)``), which return once committed. Bookkeeping where only the
last value or the sum counts (vehicles' last update, tokens' last use, traffic counters) is
kept in memory and coalesced into each batch (counters: every ``usage_interval``).

The SQL lives in the repositories (``accounts``, ``vehicles``, ``provisioning``,
``latest``, ``historical``, ``usage``, ``push``, ``v4rows``), written against
``relay.store.backend``; the database engine is a :class:`Backend` (SQLite, or PostgreSQL for a
``postgresql://`` URL: ``relay.store.engines``).

Over 600 lines: this is the one async face of every repository, a few lines per
method that hand a repository's SQL to the write queue or the read pool under the
same rules; the caches (``cache``) and claims (``claims``) are already out.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

from relay import legacy_hash
from relay.store import (
    accounts,
    claims,
    historical,
    latest,
    passwords,
    provisioning,
    push,
    usage,
    vehicles,
)
from relay.store.backend import Backend, Connection, one_line
from relay.store.cache import LatestCache, TtlCache
from relay.store.engines import backend_for
from relay.store.errors import StoreClosed, StoreError
from relay.store.readbatch import BatchedLookup
from relay.store.readpool import ReadPool
from relay.store.records import (
    HistoricalRecord,
    HistoricalSummary,
    OwnerRecord,
    PendingPush,
    ProvisionRecord,
    PushSubscription,
    StoredMessage,
    TokenRecord,
    UsageDay,
    VehicleRecord,
)
from relay.store.settings import StoreSettings
from relay.store.writequeue import Many, StoreStats, Waiter, Write, WriteQueue

log = logging.getLogger("relay.store")


class Store:
    """See the module docstring. Create with :func:`open_store`."""

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

    # ----------------------------------------------------------------- vehicles & owners

    async def get_vehicle(self, vehicleid: str, *, fresh: bool = False) -> VehicleRecord | None:
        """The vehicle (cached up to the cache TTL); ``fresh``: always from the database,
        as for logins, where a cache that only holds known ids would tell them apart."""
        if not fresh:
            hit = self._vehicles.get(vehicleid)
            if hit is not None:
                return hit
        row = await self._vehicle_rows.get(vehicleid)
        if row is None:
            self._vehicles.pop(vehicleid)
            return None
        record = VehicleRecord(row["vehicleid"], row["owner"], row["carpass"], row["vtype"],
                               self._ptokens.get(vehicleid, row["ptoken"]), row["name"])
        self._vehicles.put(vehicleid, record)
        # Unless its car is here (a cluster), the database's is the newest known.
        known = vehicleid in self._latest.lastupdate and self._latest.holds(vehicleid)
        if not known and row["lastupdate"] is not None:
            self._latest.lastupdate[vehicleid] = float(row["lastupdate"])
        return record

    async def get_owner(self, name: str) -> OwnerRecord | None:
        hit = self._owners.get(name)
        if hit is not None:
            return hit
        record: OwnerRecord | None = await self._read_now(
            partial(accounts.read_owner, name=name))
        if record is None:
            self._owners.pop(name)
            return None
        self._owners.put(name, record)
        return record

    async def owner_vehicles(self, owner: str) -> list[str]:
        result: list[str] = await self._read_now(
            partial(vehicles.read_owner_vehicles, owner=owner))
        return result

    async def check_password(
        self, name: str, password: str, *, admit: Callable[[], None] | None = None
    ) -> bool:
        """argon2-verify ``password`` for an active owner (slow; runs in a worker thread).

        ``admit()`` is called once the check has its hash slot, right before hashing; it
        may raise to refuse the check (the login guard: the check may have waited).
        """
        owner = await self.get_owner(name)
        active = owner if owner is not None and owner.status > 0 else None
        ok = await self._hashing.check(None if active is None else active.password_hash,
                                       password, admit=admit)
        # Outside the slot: the upgrade takes one of its own.
        if ok and active is not None and legacy_hash.is_legacy(active.password_hash):
            await self._upgrade_legacy_hash(name, active.password_hash, password)
        return ok

    async def _upgrade_legacy_hash(self, name: str, old_hash: str, password: str) -> None:
        """An imported Drupal hash just verified: store the project's own hash instead."""
        new_hash = await self._hashing.hash(password)
        try:
            await self._call("owners", partial(
                accounts.upgrade_password_hash, name=name, old_hash=old_hash, new_hash=new_hash))
        except StoreError as exc:  # the login stands; the next one tries again
            log.warning("owner %s: imported password hash not replaced: %s", name, exc)
        self._owners.pop(name)

    async def token_owner(self, token: str) -> tuple[str, str] | None:
        """(owner, permit) of an API token presented alone (``Authorization: Bearer``)."""
        digest = passwords.token_hash(token)
        found: tuple[str, str] | None = await self._read_now(
            partial(accounts.read_token_owner, digest=digest))
        if found is not None:
            self._token_lastused[digest] = time.time()  # written with the next batch
        return found

    async def check_token(self, name: str, token: str) -> str | None:
        """The permit of ``token`` if it is one of ``name``'s API tokens, else None."""
        digest = passwords.token_hash(token)
        permit: str | None = await self._read_now(
            partial(accounts.read_token_permit, owner=name, digest=digest))
        if permit is not None:
            self._token_lastused[digest] = time.time()  # written with the next batch
        return permit

    async def list_tokens(self, owner: str) -> list[TokenRecord]:
        result: list[TokenRecord] = await self._read(partial(accounts.read_tokens, owner=owner))
        return result

    async def create_token(
        self, owner: str, application: str, purpose: str, permit: str
    ) -> tuple[str, TokenRecord]:
        """A new random 64-hex-char token for ``owner``, committed before returning.

        Returns the token (shown once, never stored) and its stored record.
        """
        token = secrets.token_hex(32)
        record = TokenRecord(passwords.token_hash(token), owner, application, purpose, permit,
                             time.time())
        await self._call("tokens", partial(accounts.insert_token, record=record))
        return token, record

    async def delete_token(self, owner: str, token: str) -> str | None:
        """Delete one of ``owner``'s tokens, given the token or its digest; its digest if found."""
        candidates = (passwords.token_hash(token), token.lower())
        deleted: str | None = await self._call(
            "tokens", partial(accounts.delete_token, owner=owner, candidates=candidates))
        return deleted

    async def credentials(
        self, owners: Iterable[str], digests: Iterable[str]
    ) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
        """From the database (never the cache): of ``owners``, (password hash, status) by
        name, and of the API tokens ``digests``, their owner by digest; missing ones left out."""
        result: tuple[dict[str, tuple[str, int]], dict[str, str]] = await self._read(
            partial(accounts.read_credentials, owners=tuple(owners), digests=tuple(digests)))
        return result

    async def get_provision(self, apkey: str) -> ProvisionRecord | None:
        result: ProvisionRecord | None = await self._read_now(
            partial(provisioning.read_provision, apkey=apkey))
        return result

    # ----------------------------------------------------------------- latest messages

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

    # In a cluster, other nodes write latest messages too (``relay.store.cache``): the
    # hub tells the store which vehicles' cars are on this node.

    def share_latest(self) -> None:
        """Other processes write latest messages: cache only those of cars on this node."""
        self._latest.share()

    def car_arrived(self, vehicleid: str) -> None:
        if self._latest.car_arrived(vehicleid):
            self._ptokens.pop(vehicleid, None)

    def car_left(self, vehicleid: str) -> None:
        if self._latest.car_left(vehicleid):
            self._ptokens.pop(vehicleid, None)

    async def latest(self, vehicleid: str) -> dict[str, StoredMessage]:
        """The vehicle's stored messages by code (a copy)."""
        return dict(await self._latest.messages(vehicleid))

    def last_update(self, vehicleid: str) -> float | None:
        return self._latest.lastupdate.get(vehicleid)

    def _touch(self, vehicleid: str, when: float) -> None:
        self._latest.lastupdate[vehicleid] = when
        self._lastupdate_unwritten[vehicleid] = when

    async def put_latest(
        self,
        vehicleid: str,
        code: str,
        data: str,
        *,
        paranoid: bool = False,
        ptoken: str = "",
        when: float | None = None,
    ) -> bool:
        """Store the vehicle's latest message of this code; False if refused (limits).

        A refusal is logged (rate-limited); the message may still be relayed live.
        """
        messages = await self._latest.messages(vehicleid)
        if not self._latest.admit(vehicleid, messages, code, data):
            return False
        when = time.time() if when is None else when
        messages[code] = StoredMessage(code, data, when, paranoid, ptoken)
        self._touch(vehicleid, when)
        await self._submit(Write("latest", latest.UPSERT_LATEST,
                                 (vehicleid, code, when, int(paranoid), ptoken, data)))
        return True

    async def set_paranoid_token(self, vehicleid: str, ptoken: str) -> bool:
        """Record the car's paranoid-mode token; True if it changed.

        On a change, stored paranoid messages under any other token are deleted.
        """
        current = self._ptokens.get(vehicleid)
        if current is None:
            record = await self.get_vehicle(vehicleid)
            current = self._ptokens.get(vehicleid, record.ptoken if record else "")
        if current == ptoken:
            return False
        messages = await self._latest.messages(vehicleid)
        if self._ptokens.get(vehicleid, current) == ptoken:
            return False  # a concurrent call got there first
        self._ptokens[vehicleid] = ptoken
        for code in [c for c, m in messages.items() if m.paranoid and m.ptoken != ptoken]:
            del messages[code]
        hit = self._vehicles.peek(vehicleid)
        if hit is not None:
            self._vehicles.replace(vehicleid, attrs.evolve(hit, ptoken=ptoken))
        await self._submit(Write("latest", latest.DELETE_PARANOID, (vehicleid, ptoken)))
        await self._submit(Write("vehicles", vehicles.SET_PTOKEN, (ptoken, vehicleid)))
        return True

    # ----------------------------------------------------------------- historical

    async def add_historical(
        self,
        vehicleid: str,
        htype: str,
        recordnumber: int,
        data: str,
        *,
        timestamp: int,
        expires: int,
        durable: bool = False,
        from_car: bool = True,
    ) -> None:
        """Upsert a historical record; with ``durable=True`` return once committed.

        ``from_car=False`` marks a record the server writes itself (alert logs): it
        does not move the vehicle's last-update time, which apps see as ``T``.
        """
        if from_car:
            self._touch(vehicleid, time.time())
        waiter = Waiter() if durable else None
        await self._submit(Write(
            "historical", historical.UPSERT_HISTORICAL,
            (vehicleid, htype, int(recordnumber), int(timestamp), int(expires), data), waiter))
        if waiter is not None:
            await waiter.wait()

    async def historical_summary(
        self, vehicleid: str, since: int | None = None
    ) -> list[HistoricalSummary]:
        """Per record type (unexpired, ``ts > since``): counts, data bytes, first/last ts."""
        result: list[HistoricalSummary] = await self._read(
            partial(historical.read_summary, vehicleid=vehicleid, since=since, now=time.time()))
        return result

    async def historical_records(
        self, vehicleid: str, htype: str, since: int | None = None
    ) -> list[HistoricalRecord]:
        """Unexpired records of one type with ``ts > since``, by ts then recordnumber."""
        result: list[HistoricalRecord] = await self._read(partial(
            historical.read_records, vehicleid=vehicleid, htype=htype, since=since,
            now=time.time()))
        return result

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

    # ----------------------------------------------------------------- usage

    def _day(self, when: float) -> str:
        number = int(when // 86400)
        if self._day_cache[0] != number:
            self._day_cache = (number, usage.utc_day(when))
        return self._day_cache[1]

    def add_usage(
        self,
        vehicleid: str,
        *,
        car_rx: int = 0,
        car_tx: int = 0,
        app_rx: int = 0,
        app_tx: int = 0,
        when: float | None = None,
    ) -> None:
        """Count traffic for the vehicle's UTC day (in memory; flushed every few seconds)."""
        day = self._day(time.time() if when is None else when)
        counts = self._usage.get((vehicleid, day))
        if counts is None:
            self._usage[(vehicleid, day)] = [car_rx, car_tx, app_rx, app_tx]
        else:
            counts[0] += car_rx
            counts[1] += car_tx
            counts[2] += app_rx
            counts[3] += app_tx

    async def usage(self, vehicleid: str, days: int = 90) -> list[UsageDay]:
        """Daily traffic for the last ``days`` UTC days (today included), newest first."""
        first_day = usage.utc_day(time.time() - (max(days, 1) - 1) * 86400)

        def merge(stored: dict[str, list[int]]) -> list[UsageDay]:
            # Runs right after the read, so unflushed counts are exactly self._usage.
            for (vid, day), counts in self._usage.items():
                if vid == vehicleid and day >= first_day:
                    total = stored.setdefault(day, [0, 0, 0, 0])
                    for i in range(4):
                        total[i] += counts[i]
            return [UsageDay(day, *stored[day]) for day in sorted(stored, reverse=True)]

        result: list[UsageDay] = await self._read(
            partial(usage.read_usage, vehicleid=vehicleid, first_day=first_day), post=merge)
        return result

    # ----------------------------------------------------------------- push subscriptions

    async def add_push_subscription(self, sub: PushSubscription) -> None:
        await self._submit(Write("push_subscriptions", push.UPSERT_PUSH,
                                 push.subscription_params(sub, time.time())))

    async def push_subscriptions(self, vehicleid: str) -> list[PushSubscription]:
        result: list[PushSubscription] = await self._read(
            partial(push.read_push, vehicleid=vehicleid))
        return result

    async def deactivate_push_subscription(
        self, vehicleid: str, appid: str, pushkeyvalue: str
    ) -> None:
        """The push service called this token dead: stop delivering to it (until re-subscribed)."""
        await self._submit(Write("push_subscriptions", push.DEACTIVATE_PUSH,
                                 (vehicleid, appid, pushkeyvalue)))

    # Pending push deliveries: group-committed like everything else (no waiting), so
    # the relay never waits on them; FIFO order makes a later delete follow its insert.

    async def add_push_pending(self, item: PendingPush) -> None:
        await self._submit(Write("push_pending", push.INSERT_PENDING,
                                 push.pending_params(item, self.claims.stamp())))

    async def hold_push_pending(self, item: PendingPush) -> bool:
        """Before a retry: does this node still hold the item's row (``Claims.hold``)?"""
        return await self.claims.hold("push_pending", push.PENDING_KEY, push.pending_key(item))

    async def retry_push_pending(self, item: PendingPush) -> None:
        """Store the item's new ``attempts`` and ``next_try``."""
        await self._submit(Write("push_pending", push.RETRY_PENDING,
                                 (item.attempts, item.next_try, item.nid, item.vehicleid,
                                  item.appid)))

    async def delete_push_pending(self, item: PendingPush) -> None:
        await self._submit(Write("push_pending", push.DELETE_PENDING,
                                 (item.nid, item.vehicleid, item.appid)))

    async def take_push_pending(
        self, taken: Callable[[list[PendingPush]], Awaitable[None]]
    ) -> tuple[list[PendingPush], int]:
        """At start: this node's unexpired pending deliveries (``Claims.claim``) and how
        many expired ones were deleted; ``taken`` is told of those taken over later."""
        async def later(result: tuple[list[PendingPush], int]) -> None:
            if result[0]:
                await taken(result[0])

        result: tuple[list[PendingPush], int] = await self.claims.claim(
            "push_pending", push.take_pending, later)
        return result


@asynccontextmanager
async def open_store(
    path: str, *, backend: Backend | None = None, settings: StoreSettings | None = None,
    **overrides: Any,
) -> AsyncIterator[Store]:
    """Open the database (``path``: a SQLite file or a ``postgresql://`` URL, unless
    ``backend``) and run the store's tasks while the block runs. ``overrides``: any
    :class:`StoreSettings` field.

    Raises ``relay.store.errors.DatabaseError`` if the database cannot be used. On exit
    (also on error or cancellation) everything queued is committed before closing.
    """
    settings = attrs.evolve(settings or StoreSettings(), **overrides)
    backend = backend if backend is not None else backend_for(path)
    conn = await trio.to_thread.run_sync(backend.connect)
    pool = ReadPool(backend, settings.read_threads) if backend.separate_readers else None
    store = Store(backend, conn, settings, pool)
    log.info("store opened: %s", backend.name)
    # The nursery is an implementation detail: an exception from the caller's
    # block is re-raised as itself, not wrapped in an ExceptionGroup.
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store._queue.run)
            nursery.start_soon(store._background)
            try:
                yield store
            except BaseException as exc:
                body_error = exc
            finally:
                store._bg_scope.cancel()
                with trio.CancelScope(shield=True):
                    await store._close()
        if body_error is not None:
            raise body_error
    finally:
        with trio.CancelScope(shield=True):
            if pool is not None:
                await trio.to_thread.run_sync(pool.close)
            await trio.to_thread.run_sync(conn.close)
        log.info("store closed: %s (%d commits, %d writes)", backend.name,
                 store.stats.commits, store.stats.writes)
