"""Work waiting for its retry time: a heap of (due, item), released into a channel.

Push delivery and API v4 callbacks both retry with back-off; the waiting items
live here rather than in one sleeping task each, so a thousand pending retries
cost a thousand heap entries, not a thousand tasks.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class RetryQueue(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()  # ties keep insertion order, items need no ordering
        self._wakeup = trio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, item: T, due: float) -> None:
        """Release ``item`` at trio time ``due``."""
        heapq.heappush(self._heap, (due, next(self._seq), item))
        self._wakeup.set()

    async def release_into(self, send: trio.MemorySendChannel[T]) -> None:
        """Forever: wait for the earliest due item and send it (waiting for room)."""
        while True:
            if not self._heap:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            due = self._heap[0][0]
            if due > trio.current_time():
                with trio.move_on_at(due):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            _, _, item = heapq.heappop(self._heap)
            await send.send(item)
