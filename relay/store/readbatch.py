"""Lookups asked for at about the same time, read together: one thread hop for many.

Every scheme 0 login reads its vehicle from the database (never from the cache,
which would answer for known ids only and tell them from unknown ones by
timing). Each read handed to a read thread on its own costs the server ~0.2 ms
of CPU in thread wake-ups, more than the read itself. Here a lookup joins the
pending batch; one task per batcher (started with the store's background tasks)
reads each batch in a single ``read`` call, so at a thousand logins a second
the hop is shared by the logins waiting at that moment. Every lookup is still
one read of its own in that call: known and unknown ids do the same work.

A batch that fails (the database does not answer within the store's deadline)
fails every lookup in it; the next batch starts afresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

from relay.store.errors import StoreClosed

# Lookups per read call at most: a flood of logins makes several calls, none of
# them long enough to meet the store's read deadline (a read is ~20-50 us).
MAX_BATCH = 256

K = TypeVar("K")
V = TypeVar("V")


class _Lookup(Generic[K, V]):
    __slots__ = ("done", "error", "key", "value")

    def __init__(self, key: K) -> None:
        self.key = key
        self.value: V | None = None
        self.error: BaseException | None = None
        self.done = trio.Event()


class BatchedLookup(Generic[K, V]):
    """``get(key)`` for many callers, answered by ``read(keys) -> values`` per batch."""

    def __init__(self, read: Callable[[list[K]], Awaitable[list[V | None]]]) -> None:
        self._read = read
        self._pending: list[_Lookup[K, V]] = []
        self._wakeup = trio.Event()
        self._closed = False
        self.batches = 0  # read calls made (tests and stats)

    async def get(self, key: K) -> V | None:
        if self._closed:
            raise StoreClosed("the store is closed")
        lookup: _Lookup[K, V] = _Lookup(key)
        self._pending.append(lookup)
        self._wakeup.set()
        await lookup.done.wait()
        if lookup.error is not None:
            raise lookup.error
        return lookup.value

    async def run(self) -> None:
        """Read batches until cancelled (the store's background nursery); lookups
        asked for before it starts wait for it."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                if self._pending:
                    self._wakeup.set()
                if batch:
                    await self._answer(batch)
        finally:
            self._closed = True
            closed = StoreClosed("the store is closed")
            for lookup in self._pending:
                lookup.error = closed
                lookup.done.set()
            self._pending = []

    async def _answer(self, batch: list[_Lookup[K, V]]) -> None:
        try:
            values = await self._read([lookup.key for lookup in batch])
        except Exception as exc:
            for lookup in batch:
                lookup.error = exc
                lookup.done.set()
            return
        except BaseException as exc:  # cancelled: closing; the callers learn it too
            for lookup in batch:
                lookup.error = StoreClosed(f"the store is closed ({type(exc).__name__})")
                lookup.done.set()
            raise
        self.batches += 1
        for lookup, value in zip(batch, values, strict=True):
            lookup.value = value
            lookup.done.set()
