"""The store's tuning settings, written out once (``relay.config`` takes its defaults here)."""

from __future__ import annotations

import attrs


@attrs.frozen
class StoreSettings:
    # Group commit: a batch waits this long for company, and holds at most max_batch items.
    flush_interval: float = 0.005
    max_batch: int = 2000
    queue_size: int = 10_000
    # Expired historical records are deleted every purge_interval, purge_batch rows a round.
    purge_interval: float = 3600.0
    purge_batch: int = 5000
    # Vehicles and owners are re-read after this long (admin changes show up).
    cache_ttl: float = 30.0
    # Traffic counters are written this often.
    usage_interval: float = 5.0
    # At close, queued writes are retried this long before they are given up.
    close_timeout: float = 30.0
    # Argon2 checks at once (64 MiB each).
    hash_concurrency: int = 2
    # How long a request's read (or a write it waits for) may take before it fails.
    read_timeout: float = 10.0
    read_threads: int = 4
    # Per vehicle latest messages: a real car stores ~15 codes, a few KB in all.
    max_stored_codes: int = 256
    max_stored_bytes: int = 64 * 1024
    # A cluster node's claim on a pending retry lasts this long unless renewed (every
    # third of it); a dead node's are taken over once it ended (relay.store.claims).
    claim_lease: float = 60.0


DEFAULTS = StoreSettings()
