"""Who is calling: password or API-token checks (cached); what they may do is relay.permits.

Argon2 costs ~50 ms per verification, far too much per request for clients that
send ``username`` + ``password`` on every call. A successful check is remembered
for a short time, keyed by the user name and an HMAC of the password under a
random per-process key: the cache never holds a password, nor anything that
would let one be checked offline after the process ends. Failures are never
cached (a corrected password works at once); tokens are looked up by their
SHA-256 digest, cheap but still a database round trip, so they are cached too
and forgotten as soon as a token is deleted through the API.

Every login remembers the credential it rests on (a token's digest, or a fingerprint
of the stored password hash). ``revoked`` checks those of cached logins and of
sessions against the database, so a token deleted or a password changed with
``ovms-admin`` while the server runs ends them too (relay.http.api runs it every few
seconds). Every check first asks the login guard (relay.loginguard), shared with v2.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from functools import partial

import attrs
import trio

from relay import permits
from relay.db import token_hash
from relay.http.messages import HttpError
from relay.loginguard import GuardRefusal, LoginGuard, owner_account
from relay.store import Store

log = logging.getLogger("relay.http.authenticator")

# Longer "passwords" are refused unchecked: nobody types them, and argon2 would hash them.
MAX_SECRET = 1024
# Remembered logins; past this the cache is cleared rather than grown (a flood of
# distinct valid logins is not a real workload).
MAX_CACHED = 10_000


@attrs.frozen
class Credential:
    """What a login rests on: it ends when this is revoked."""

    kind: str  # "token" (value: its SHA-256 digest) or "password"
    # For a password: a digest of the stored hash, which every password change replaces.
    value: str


@attrs.frozen
class Login:
    owner: str
    permissions: str  # "*" or a comma-separated permit list
    via: str  # "password", "token" or "session"
    credential: Credential | None = None


class LoginBlocked(HttpError):
    """The login guard refuses logins from this address or for this account for now."""

    def __init__(self) -> None:
        super().__init__(429, "Too many failed logins")


def password_credential(password_hash: str) -> Credential:
    return Credential("password", hashlib.sha256(password_hash.encode()).hexdigest())


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    def __init__(
        self, store: Store, ttl: float, guard: LoginGuard,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._guard = guard
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], tuple[Login, float]] = {}

    def _cache_key(self, username: str, secret: str) -> tuple[str, bytes]:
        mac = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return username, mac.digest()

    async def check(self, username: str, secret: str, host: str) -> Login | None:
        """The login for ``username`` + password or API token from client ``host``, or
        None if refused; raises LoginBlocked while the login guard refuses it."""
        if not username or not secret:
            return None
        account = owner_account(username)
        admit = partial(self._admit, host, account)
        admit()
        if len(secret) > MAX_SECRET:
            self._guard.failed(host, account)
            return None
        key = self._cache_key(username, secret)
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None:
            if hit[1] > now:
                return hit[0]
            del self._cache[key]
        login = await self._verify(username, secret, admit)
        if login is None:
            self._guard.failed(host, account)
        else:
            self._guard.succeeded(host, account)
        if login is not None and self._ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (login, self._clock() + self._ttl)
        return login

    def _admit(self, host: str, account: str | None) -> None:
        try:
            self._guard.admit(host, account)
        except GuardRefusal:
            raise LoginBlocked() from None

    async def _verify(
        self, username: str, secret: str, admit: Callable[[], None]
    ) -> Login | None:
        owner = await self._store.get_owner(username)
        # Any secret that could be a token is looked up (a SHA-256 and an indexed read),
        # whether the account exists or not: tokens imported from the Perl server need
        # not be hex, and unknown names must cost what known ones do.
        if permits.token_candidate(secret):
            permit = await self._store.check_token(username, secret)
            if permit is not None and owner is not None and owner.status == 1:
                return Login(owner.name, permit, "token", Credential("token", token_hash(secret)))
        # Unknown users go through the same slow check, so they do not show in timing.
        if not await self._store.check_password(username, secret, admit=admit):
            return None
        if owner is None or owner.status != 1:
            return None
        return Login(owner.name, owner.permissions or "*", "password",
                     password_credential(owner.password_hash))

    async def check_bearer(self, token: str, host: str) -> Login | None:
        """The login for ``Authorization: Bearer <API token>`` (no user name) from client
        ``host``, or None; raises LoginBlocked while the login guard refuses it."""
        # Tokens are 256-bit random: no need to ask again before the (cheap) lookup.
        self._admit(host, None)
        login = await self._bearer(token)
        if login is None:
            self._guard.failed(host, None)
        return login

    async def _bearer(self, token: str) -> Login | None:
        if not permits.token_candidate(token):
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
        login = Login(owner.name, found[1], "token", Credential("token", token_hash(token)))
        if self._ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (login, self._clock() + self._ttl)
        return login

    def forget(self, owner: str) -> None:
        """Drop cached logins of ``owner`` (a token of theirs was revoked)."""
        for key in [k for k, (login, _) in self._cache.items() if login.owner == owner]:
            del self._cache[key]

    async def revoked(
        self, held: Iterable[tuple[str, Credential]]
    ) -> set[tuple[str, Credential]]:
        """Of the (owner, credential) pairs ``held`` (by sessions) and those of cached
        logins, the ones no longer valid: token deleted, password changed, owner
        disabled or deleted. They leave the cache, and such owners the store's cache."""
        pairs = set(held)
        pairs.update((login.owner, login.credential) for login, _ in self._cache.values()
                     if login.credential is not None)
        if not pairs:
            return set()
        owners, tokens = await self._store.credentials(
            {owner for owner, _ in pairs},
            {c.value for _, c in pairs if c.kind == "token"})
        revoked: set[tuple[str, Credential]] = set()
        for owner, credential in pairs:
            state = owners.get(owner)
            if state is None or state[1] != 1:
                revoked.add((owner, credential))
            elif credential.kind == "token":
                if tokens.get(credential.value) != owner:
                    revoked.add((owner, credential))
            elif password_credential(state[0]) != credential:
                revoked.add((owner, credential))
        if revoked:
            for key in [k for k, (login, _) in self._cache.items()
                        if (login.owner, login.credential) in revoked]:
                del self._cache[key]
            for owner in {owner for owner, _ in revoked}:
                self._store.forget_cached(owner=owner)
            log.info("%d login(s) revoked since checked (token deleted, password changed "
                     "or account disabled)", len(revoked))
        return revoked
