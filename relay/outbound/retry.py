"""Retry timing: the back-off rule, and a heap of (due, item) released into a channel.

Push delivery and API v4 callbacks both retry; the waiting items live here rather
than in one sleeping task each, so a thousand pending retries cost a thousand heap
entries, not a thousand tasks. Due times are on trio's clock, so the whole schedule
runs on ``trio.testing.MockClock`` in tests.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


def backoff(attempts: int, base: float, cap: float, *, jitter: float = 0.1,
            uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before the next try after ``attempts`` failed ones (1 after the first).

    ``base`` doubling with each failure, at most ``cap``, then spread by ``jitter``
    either way so a burst of failures does not come back as a burst of retries.
    """
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * uniform(1.0 - jitter, 1.0 + jitter)


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
