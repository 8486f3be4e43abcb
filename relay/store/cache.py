"""The store's in-memory caches: vehicles and owners (by TTL) and latest messages.

Latest messages are served from memory once a vehicle's are loaded. What a
vehicle may keep is bounded (distinct codes and total data size), so a car
cannot grow it without limit, nor make the login replay of its apps overflow
their outbound queue. Times here are trio's clock (expiry, log rate limits).
"""

from __future__ import annotations

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

    async def messages(self, vehicleid: str) -> dict[str, StoredMessage]:
        """The vehicle's messages (the cache's own dict: copy before handing out)."""
        while vehicleid not in self._loaded:
            loading = self._loading.get(vehicleid)
            if loading is not None:
                await loading.wait()
                continue
            event = self._loading[vehicleid] = trio.Event()
            try:
                stored, lastupdate = await self._load(vehicleid)
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

    def _trim(self, vehicleid: str, stored: dict[str, StoredMessage]) -> dict[str, StoredMessage]:
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
