"""A bounded queue, worker tasks and retries for one kind of outbound request.

The owner supplies ``attempt(item)``: it makes one try and settles the item, or
hands it back with ``retry_in`` (the owner decides the delay and what to persist).
``Delivery`` only moves items: from ``offer``/``put`` or a due retry to the next
free worker. Push delivery and API v4 callbacks each run one.

An item waits in exactly one place: the queue, a worker, or the retry heap;
``idle`` is true when all three are empty.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

from relay.outbound.retry import RetryQueue
from relay.store.errors import StoreClosed, StoreError

T = TypeVar("T")

log = logging.getLogger("relay.outbound")


class Delivery(Generic[T]):
    """Run with ``await nursery.start(delivery.run)``.

    ``stop_on``: exceptions from ``attempt`` that end a worker quietly (the store
    closing at shutdown); any other exception is logged with its traceback and the
    worker goes on with the next item.
    """

    def __init__(self, name: str, attempt: Callable[[T], Awaitable[None]], *,
                 workers: int, queue_size: int,
                 stop_on: tuple[type[Exception], ...] = (),
                 describe: Callable[[T], str] = lambda item: "") -> None:
        self.name = name
        self.workers = max(1, workers)
        self.queue_size = max(1, queue_size)
        self._attempt = attempt
        self._stop_on = stop_on
        self._describe = describe
        self._send, self._recv = trio.open_memory_channel[T](self.queue_size)
        self._retries: RetryQueue[T] = RetryQueue()
        self._busy = 0
        self._idle_lot = trio.lowlevel.ParkingLot()

    def offer(self, item: T) -> bool:
        """Queue ``item`` if there is room; never blocks. False: queue full (or closed)."""
        try:
            self._send.send_nowait(item)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting for room (back-pressure on the caller)."""
        await self._send.send(item)

    def retry_in(self, item: T, delay: float) -> None:
        """Queue ``item`` again after ``delay`` seconds (trio clock)."""
        self._retries.schedule(item, trio.current_time() + max(0.0, delay))

    async def still_ours(self, item: T, hold: Callable[[], Awaitable[bool]], *,
                         postpone: float) -> bool:
        """Before a retry of a stored item: in a cluster, another node may have taken
        its row over (relay.store.claims). ``hold()`` claims it for this node.

        False: another node has it (dropped here), or the database cannot tell, and
        the item is tried again after ``postpone`` s rather than maybe sent twice.
        """
        try:
            if await hold():
                return True
        except StoreClosed:
            raise
        except StoreError as exc:
            log.warning("%s: %s: retry postponed, the database is unavailable: %s",
                        self.name, self._describe(item), exc)
            self.retry_in(item, postpone)
            return False
        log.info("%s: %s: retried by another node now, dropped here", self.name,
                 self._describe(item))
        return False

    @property
    def retrying(self) -> int:
        """Items waiting for their retry time."""
        return len(self._retries)

    def idle(self) -> bool:
        """Nothing queued, being attempted or waiting for a retry."""
        return self._busy == 0 and not self._retries and \
            self._recv.statistics().current_buffer_used == 0

    async def wait_idle(self) -> None:
        """Return once ``idle`` (woken by the workers, no polling)."""
        while not self.idle():
            await self._idle_lot.park()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(self._worker)
            nursery.start_soon(self._retries.release_into, self._send)
            task_status.started()

    async def _worker(self) -> None:
        async for item in self._recv:
            self._busy += 1
            try:
                await self._attempt(item)
            except self._stop_on:
                return
            except Exception:  # one bad item must not stop delivery
                log.exception("%s: %s: delivery attempt crashed", self.name,
                              self._describe(item))
            finally:
                self._busy -= 1
                if self.idle():
                    self._idle_lot.unpark_all()
