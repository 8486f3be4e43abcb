"""The relay's asynchronous (trio) store: the repositories behind one write queue.

:class:`Store` is what callers use; it is assembled from faces, each a module with one
job, over the shared plumbing:

- ``storebase``: the write queue, the read pool, the caches' state, coalesced
  bookkeeping, background tasks (purges, usage flushes, claims) and the extension API;
- ``accountstore``: vehicles, owners, passwords, API tokens, provisioning;
- ``cardatastore``: latest messages, the paranoid token, historical records, usage;
- ``pushstore``: push subscriptions and pending deliveries.

Hot-path reads (vehicles, owners, latest messages) are served from memory
(``relay.store.cache``). Writers only wait when the queue is full, except durable writes
(``add_historical(durable=True)``), which return once committed.

The SQL lives in the repositories (``accounts``, ``vehicles``, ``provisioning``,
``latest``, ``historical``, ``usage``, ``push``, ``v4rows``), written against
``relay.store.backend``; the database engine is a :class:`Backend` (SQLite, or PostgreSQL for a
``postgresql://`` URL: ``relay.store.engines``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from relay.store.backend import Backend
from relay.store.cardatastore import CarDataStore
from relay.store.engines import backend_for
from relay.store.pushstore import PushStore
from relay.store.readpool import ReadPool
from relay.store.settings import StoreSettings

log = logging.getLogger("relay.store")


class Store(CarDataStore, PushStore):
    """See the module docstring. Create with :func:`open_store`."""


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
