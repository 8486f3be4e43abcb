"""Read connections for reads that must not wait for the writer (logins, lookups)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import trio

from relay.store.backend import Backend, Connection


class ReadPool:
    """At most ``size`` threads read at once (the limiter), so at most ``size``
    connections exist; a thread takes an idle one or opens one. A read abandoned
    at its deadline keeps its thread and connection until the database returns,
    and the limiter stays taken until then, so a stuck read never shares a connection.
    """

    def __init__(self, backend: Backend, size: int) -> None:
        self._backend = backend
        self.limiter = trio.CapacityLimiter(max(1, size))
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, fn: Callable[[Connection], Any]) -> Any:
        """In a worker thread: ``fn`` on an idle (or new) read connection."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._backend.connect_reader()
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.put(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
