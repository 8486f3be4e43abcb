"""The relay's store (see ``relay.store.core``), as a package of small pieces:

- ``writequeue``: the generic group-commit write queue (one writer, batches);
- ``backend``: the interface a database engine implements; ``sqlite``: SQLite's;
  ``postgres``: PostgreSQL's; ``engines``: which one a ``--db`` value names;
- ``schema``: every table and the migrations;
- repositories, one per table family: ``accounts`` (owners, tokens), ``vehicles``,
  ``provisioning``, ``latest``, ``historical``, ``usage``, ``push``, ``v4rows``,
  ``sessions`` (the cluster's REST cookie sessions);
- ``cache``: vehicles, owners and latest messages in memory; ``passwords``;
- ``storebase``: the plumbing the store's faces share (queue, read pool, caches' state,
  background tasks, extension API); the faces: ``accountstore`` (vehicles, owners,
  tokens), ``cardatastore`` (latest, historical, usage), ``pushstore``;
- ``core``: the :class:`Store` callers use (the faces together), and :func:`open_store`.
"""

from relay.store.core import Store, open_store
from relay.store.errors import DatabaseError, StoreClosed, StoreError, StoreTimeout
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
from relay.store.writequeue import StoreStats

__all__ = [
    "DatabaseError",
    "HistoricalRecord",
    "HistoricalSummary",
    "OwnerRecord",
    "PendingPush",
    "ProvisionRecord",
    "PushSubscription",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreSettings",
    "StoreStats",
    "StoreTimeout",
    "StoredMessage",
    "TokenRecord",
    "UsageDay",
    "VehicleRecord",
    "open_store",
]
