"""Owner passwords (argon2, or an imported Drupal 7 hash) and API token digests.

Car passwords are stored as given because the protocol's HMAC handshake needs
the shared secret itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import trio
from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

from relay import legacy_hash

_hasher = PasswordHasher()
_TOKEN_RE = re.compile(r"[0-9a-fA-F]{64}")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches the argon2 ``password_hash``; never raises."""
    if legacy_hash.is_legacy(password_hash):  # imported from the Perl server (Drupal 7)
        return legacy_hash.verify(password_hash, password)
    try:
        return _hasher.verify(password_hash, password)
    except (Argon2Error, InvalidHashError, ValueError, TypeError):
        return False


def token_shaped(secret: str) -> bool:
    """Could ``secret`` be an API token (64 hex characters) rather than a password?"""
    return _TOKEN_RE.fullmatch(secret) is not None


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which an API token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Hashing:
    """Argon2 work in worker threads, a bounded number at once: each check takes
    64 MiB, so this bounds peak memory under a flood of bad passwords (the rest
    wait their turn)."""

    def __init__(self, concurrency: int) -> None:
        self.limiter = trio.CapacityLimiter(max(1, concurrency))
        self._dummy_hash: str | None = None

    async def check(self, password_hash: str | None, password: str, *,
                    admit: Callable[[], None] | None = None) -> bool:
        """Verify ``password``; with no ``password_hash`` (unknown or disabled account),
        spend the same time on a dummy hash and return False, so unknown names don't show.

        ``admit()`` is called once the check has its slot, right before hashing; it may
        raise to refuse the check."""
        async with self.limiter:
            if admit is not None:
                admit()
            if password_hash is None:
                if self._dummy_hash is None:
                    self._dummy_hash = await trio.to_thread.run_sync(
                        hash_password, "not a password")
                await trio.to_thread.run_sync(verify_password, self._dummy_hash, password)
                return False
            ok: bool = await trio.to_thread.run_sync(verify_password, password_hash, password)
            return ok

    async def hash(self, password: str) -> str:
        result: str = await trio.to_thread.run_sync(hash_password, password,
                                                    limiter=self.limiter)
        return result
