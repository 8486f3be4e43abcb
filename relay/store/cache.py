"""The store's in-memory caches: vehicles and owners (by TTL) and latest messages.

Latest messages are served from memory once a vehicle's are loaded. What a
vehicle may keep is bounded (distinct codes and total data size), so a car
cannot grow it without limit, nor make the login replay of its apps overflow
their outbound queue. Times here are trio's clock (expiry, log rate limits).

In a cluster (``LatestCache.share``) other processes write latest messages too:
only the node holding a vehicle's car knows them as they are, so only the
vehicles whose car is on this node are cached (from the car's arrival to its
departure); every other vehicle's are read from the database each time.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

from relay.store.records import StoredMessage

log = logging.getLogger("relay.store")

K = TypeVar("K")
V = TypeVar("V")

# A vehicle's refused stores are logged at most this often (seconds).
REFUSAL_LOG_INTERVAL = 600.0


class TtlCache(Generic[K, V]):
    """Values that expire ``ttl`` seconds after they were put."""

    __slots__ = ("_items", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is not None and hit[1] > trio.current_time():
            return hit[0]
        return None

    def peek(self, key: K) -> V | None:
        """The value even if expired (to update it in place)."""
        hit = self._items.get(key)
        return hit[0] if hit is not None else None

    def put(self, key: K, value: V) -> None:
        self._items[key] = (value, trio.current_time() + self.ttl)

    def replace(self, key: K, value: V) -> None:
        """Change a cached value, keeping its expiry (no-op if not cached)."""
        hit = self._items.get(key)
        if hit is not None:
            self._items[key] = (value, hit[1])

    def pop(self, key: K) -> None:
        self._items.pop(key, None)


def data_size(messages: dict[str, StoredMessage]) -> int:
    return sum(len(m.data) for m in messages.values())


def _keep_order(message: StoredMessage) -> tuple[int, float]:
    """``F`` and ``S`` first (what apps need most), then the newest."""
    return ({"F": 0, "S": 1}.get(message.code, 2), -message.msgtime)


Loader = Callable[[str], Awaitable[tuple[dict[str, StoredMessage], float | None]]]


class LatestCache:
    """Each vehicle's latest messages by code, loaded once, within the limits."""

    def __init__(self, load: Loader, *, max_codes: int, max_bytes: int) -> None:
        self._load = load
        self.max_codes = max(1, max_codes)
        self.max_bytes = max(1, max_bytes)
        self._latest: dict[str, dict[str, StoredMessage]] = {}
        self._loaded: set[str] = set()
        self._loading: dict[str, trio.Event] = {}
        # Last update per vehicle (wall clock; what apps see as ``T``).
        self.lastupdate: dict[str, float | None] = {}
        self._refusals: dict[str, tuple[float, int]] = {}  # vehicle -> (last logged, unlogged)
        # Shared (a cluster): the vehicles whose car is on this node, each with the
        # number of its stay here; None: one process, which caches every vehicle.
        self._here: dict[str, int] | None = None
        self._stays = itertools.count()

    def share(self) -> None:
        """Other processes write too: cache only the vehicles whose car is here."""
        if self._here is None:
            self._here = {}
            self._latest.clear()
            self._loaded.clear()

    @property
    def shared(self) -> bool:
        """Other processes write too (a cluster)."""
        return self._here is not None

    def holds(self, vehicleid: str) -> bool:
        """Is what this cache has of the vehicle the truth (one process, or its car here)?"""
        return self._here is None or vehicleid in self._here

    def car_arrived(self, vehicleid: str) -> bool:
        """The vehicle's car is now on this node; True if it was not already."""
        if self._here is None or vehicleid in self._here:
            return False
        self._here[vehicleid] = next(self._stays)
        self._forget(vehicleid)  # written elsewhere since: read it again
        self.lastupdate.pop(vehicleid, None)
        return True

    def car_left(self, vehicleid: str) -> bool:
        """The vehicle's car is no longer on this node; True if it was."""
        if self._here is None or self._here.pop(vehicleid, None) is None:
            return False
        self._forget(vehicleid)
        return True

    def _forget(self, vehicleid: str) -> None:
        self._latest.pop(vehicleid, None)
        self._loaded.discard(vehicleid)

    async def messages(self, vehicleid: str) -> dict[str, StoredMessage]:
        """The vehicle's messages (the cache's own dict: copy before handing out)."""
        while vehicleid not in self._loaded:
            if not self.holds(vehicleid):
                return await self._read(vehicleid)
            loading = self._loading.get(vehicleid)
            if loading is not None:
                await loading.wait()
                continue
            stay = self._stay(vehicleid)
            event = self._loading[vehicleid] = trio.Event()
            try:
                stored, lastupdate = await self._load(vehicleid)
                if self._stay(vehicleid) != stay:
                    continue  # the car left (and came back?) meanwhile: read again
                # Anything put while loading is newer than what was read.
                stored.update(self._latest.get(vehicleid, {}))
                self._latest[vehicleid] = self._trim(vehicleid, stored)
                if self.lastupdate.get(vehicleid) is None:
                    self.lastupdate[vehicleid] = lastupdate
                self._loaded.add(vehicleid)
            finally:
                del self._loading[vehicleid]
                event.set()
        return self._latest[vehicleid]

    def _stay(self, vehicleid: str) -> int | None:
        return None if self._here is None else self._here.get(vehicleid)

    async def _read(self, vehicleid: str) -> dict[str, StoredMessage]:
        """A vehicle whose car is elsewhere: what the database holds, not cached."""
        stored, lastupdate = await self._load(vehicleid)
        if lastupdate is not None:
            self.lastupdate[vehicleid] = lastupdate  # the car's node writes it
        return self._trim(vehicleid, stored, quiet=True)

    def admit(self, vehicleid: str, messages: dict[str, StoredMessage], code: str,
              data: str) -> bool:
        """May ``data`` be stored as the vehicle's ``code``? Refusals are logged (rate-limited)."""
        old = messages.get(code)
        if old is None and len(messages) >= self.max_codes:
            self._refuse(vehicleid, code, f"the vehicle already has {len(messages)} message "
                                          f"codes stored (max_stored_codes)")
            return False
        size = data_size(messages) - (len(old.data) if old is not None else 0) + len(data)
        if size > self.max_bytes:
            self._refuse(vehicleid, code, f"stored data would be {size} bytes, over "
                                          f"max_stored_bytes={self.max_bytes}")
            return False
        return True

    def _trim(self, vehicleid: str, stored: dict[str, StoredMessage], *,
              quiet: bool = False) -> dict[str, StoredMessage]:
        """Keep a vehicle's loaded messages within the limits (F, S, then the newest).

        Only a database written before the limits existed holds more; the rest stay
        in the file but are neither served nor replayed.
        """
        if len(stored) <= self.max_codes and data_size(stored) <= self.max_bytes:
            return stored
        kept: dict[str, StoredMessage] = {}
        size = 0
        for message in sorted(stored.values(), key=_keep_order):
            if len(kept) >= self.max_codes:
                break
            if size + len(message.data) > self.max_bytes:
                continue
            kept[message.code] = message
            size += len(message.data)
        if quiet:  # read on every request: the car's node has said it once
            return kept
        log.warning(
            "vehicle=%s: %d stored message codes (%d bytes) exceed the limits "
            "(max_stored_codes=%d, max_stored_bytes=%d); serving %d of them",
            vehicleid, len(stored), data_size(stored), self.max_codes, self.max_bytes,
            len(kept),
        )
        return kept

    def _refuse(self, vehicleid: str, code: str, reason: str) -> None:
        """Log a refused store, at most once per interval per vehicle."""
        now = trio.current_time()
        last, unlogged = self._refusals.get(vehicleid, (-REFUSAL_LOG_INTERVAL, 0))
        if now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[vehicleid] = (last, unlogged + 1)
            return
        self._refusals[vehicleid] = (now, 0)
        log.warning(
            "vehicle=%s: message code %r not stored: %s%s", vehicleid, code[:1], reason,
            f" ({unlogged} more refused since the last such line)" if unlogged else "",
        )
