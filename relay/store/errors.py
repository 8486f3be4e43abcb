"""What the store raises."""

from __future__ import annotations


class DatabaseError(Exception):
    """The database file cannot be opened or used (one-line reason)."""


class StoreError(Exception):
    """A store operation failed (one-line reason)."""


class StoreClosed(StoreError):
    """The store is closed or closing and accepts no more work."""


class StoreTimeout(StoreError):
    """The database did not answer within the store's deadline (e.g. writes are stuck)."""
