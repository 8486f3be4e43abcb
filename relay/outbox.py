"""A connection's bounded outbound queue, drained by a writer task that exists only while needed.

Why not a memory channel with a writer task parked on it: that pair costs about
5 KB per connection (channel state, the parked task's frames), and most of the
19,000 connections a relay holds are idle cars that receive a message every few
minutes. Here the writer task is started when the first message is queued and
ends when the queue is empty. The interface is the part of
``trio.MemorySendChannel`` the hub uses: ``send_nowait`` raising
``trio.WouldBlock`` when full, and ``close``.

Where the writer runs: connections have no nursery of their own (one costs
~1.8 KB, and idle cars are most connections). The writer is a *server-owned
connection task*: it runs in the server-wide nursery (``Services.nursery``) but
inside its own cancel scope, which ``close`` cancels. So a writer never outlives
its connection, even one blocked sending to a peer that stopped reading: the
connection closes its outbox when it ends (``V2Connection._serve``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from protocol import Message

log = logging.getLogger("relay.outbox")

# Messages the writer hands to one flush: fewer syscalls under load, and still
# only a few KB per write.
WRITE_BATCH = 64


class Outbox:
    __slots__ = (
        "_closed", "_flush", "_items", "_limit", "_nursery", "_on_error", "_scope", "_writing",
    )

    def __init__(
        self,
        limit: int,
        flush: Callable[[list[Message]], Awaitable[None]],
        nursery: trio.Nursery,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._on_error = on_error
        # None while empty (most of the time): an empty list is 56 bytes per connection.
        self._items: list[Message] | None = None
        self._limit = limit
        self._flush = flush
        self._nursery = nursery
        self._writing = False
        self._closed = False
        # The running writer's cancel scope; None while no writer runs (most of the time).
        self._scope: trio.CancelScope | None = None

    def send_nowait(self, msg: Message) -> None:
        if self._closed:
            raise trio.ClosedResourceError("connection is closing")
        items = self._items
        if items is None:
            items = self._items = []
        elif len(items) >= self._limit:
            raise trio.WouldBlock
        items.append(msg)
        if not self._writing:
            self._writing = True
            self._nursery.start_soon(self._drain)

    def close(self) -> None:
        """Drop what is queued and end the writer, wherever it is waiting."""
        self._closed = True
        self._items = None
        if self._scope is not None:
            self._scope.cancel()

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    @property
    def limit(self) -> int:
        return self._limit

    async def _drain(self) -> None:
        # Runs in the server-wide nursery: an unexpected error must end this
        # connection's writing, never the server.
        try:
            with trio.CancelScope() as self._scope:
                while self._items and not self._closed:
                    batch = self._items[:WRITE_BATCH]
                    del self._items[:WRITE_BATCH]
                    await self._flush(batch)
                self._items = None  # empty, or closed
        except Exception:
            log.exception("outbound writer failed; dropping the queue")
            self.close()
            if self._on_error is not None:
                self._on_error()
        finally:
            self._scope = None
            self._writing = False
