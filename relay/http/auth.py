"""Who is calling: password or API-token checks (cached), and permission lists.

Argon2 costs ~50 ms per verification, far too much per request for clients that
send ``username`` + ``password`` on every call. A successful check is remembered
for a short time, keyed by the user name and an HMAC of the password under a
random per-process key: the cache never holds a password, nor anything that
would let one be checked offline after the process ends. Failures are never
cached (a corrected password works at once); tokens are looked up by their
SHA-256 digest, cheap but still a database round trip, so they are cached too
and forgotten as soon as a token is deleted through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable

import attrs

from relay.store import Store

log = logging.getLogger("relay.http.auth")

_TOKEN_RE = re.compile(r"[0-9a-fA-F]{64}")
# Longer "passwords" are refused unchecked: nobody types them, and argon2 would hash them.
MAX_SECRET = 1024
# Remembered logins; past this the cache is cleared rather than grown (a flood of
# distinct valid logins is not a real workload).
MAX_CACHED = 10_000


@attrs.frozen
class Login:
    owner: str
    permissions: str  # "*" or a comma-separated permit list
    via: str  # "password", "token" or "session"


def permission_set(permissions: str) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in permissions.split(",") if p.strip())


def permitted(permissions: str, rights: tuple[str, ...]) -> bool:
    """The public server's IsPermitted: ``*`` allows all, else any right in the list."""
    if not rights:
        return True
    granted = permission_set(permissions)
    return "*" in granted or any(r.lower() in granted for r in rights)


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def grants_nothing(permissions: str) -> bool:
    """A token with permit ``none`` authenticates nobody (as on the public server)."""
    return permission_set(permissions) <= {"none"}


class Authenticator:
    def __init__(
        self, store: Store, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], tuple[Login, float]] = {}

    def _cache_key(self, username: str, secret: str) -> tuple[str, bytes]:
        mac = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return username, mac.digest()

    async def check(self, username: str, secret: str) -> Login | None:
        """The login for ``username`` + password or API token, or None if refused."""
        if not username or not secret or len(secret) > MAX_SECRET:
            return None
        key = self._cache_key(username, secret)
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None:
            if hit[1] > now:
                return hit[0]
            del self._cache[key]
        login = await self._verify(username, secret)
        if login is not None and self._ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (login, self._clock() + self._ttl)
        return login

    async def _verify(self, username: str, secret: str) -> Login | None:
        owner = await self._store.get_owner(username)
        if owner is not None and owner.status == 1 and _TOKEN_RE.fullmatch(secret):
            permit = await self._store.check_token(username, secret)
            if permit is not None:
                return Login(owner.name, permit, "token")
        # Unknown users go through the same slow check, so they do not show in timing.
        if not await self._store.check_password(username, secret):
            return None
        if owner is None or owner.status != 1:
            return None
        return Login(owner.name, owner.permissions or "*", "password")

    async def check_bearer(self, token: str) -> Login | None:
        """The login for ``Authorization: Bearer <API token>`` (no user name), or None."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        # Cached under the empty user name, which no owner can have.
        key = self._cache_key("", token)
        hit = self._cache.get(key)
        if hit is not None:
            if hit[1] > self._clock():
                return hit[0]
            del self._cache[key]
        found = await self._store.token_owner(token)
        if found is None:
            return None
        owner = await self._store.get_owner(found[0])
        if owner is None or owner.status != 1:
            return None
        login = Login(owner.name, found[1], "token")
        if self._ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (login, self._clock() + self._ttl)
        return login

    def forget(self, owner: str) -> None:
        """Drop cached logins of ``owner`` (a token of theirs was revoked)."""
        for key in [k for k, (login, _) in self._cache.items() if login.owner == owner]:
            del self._cache[key]
