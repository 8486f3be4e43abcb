"""Issue 11: the REST authenticator's cache on trio's MockClock, with a counting store."""

from __future__ import annotations

import trio
import trio.testing

from relay.http.authenticator import Authenticator
from relay.loginguard import LoginGuard
from relay.store import OwnerRecord

TOKEN = "ab" * 32


class CountingStore:
    """The three store calls the authenticator makes, counted."""

    def __init__(self) -> None:
        self.password_checks = 0
        self.token_checks = 0
        self.owner = OwnerRecord("alice", "hash", 1, "*")

    async def get_owner(self, name: str) -> OwnerRecord | None:
        return self.owner if name == "alice" else None

    async def check_token(self, name: str, token: str) -> str | None:
        self.token_checks += 1
        return "v2" if token == TOKEN else None

    async def check_password(self, name: str, password: str, admit: object = None) -> bool:
        self.password_checks += 1
        return name == "alice" and password == "right"


def authenticator(store: CountingStore, ttl: float) -> Authenticator:
    return Authenticator(store, ttl, LoginGuard())  # type: ignore[arg-type]


async def test_a_login_is_cached_for_the_ttl_on_trio_clock(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Issue 11 item 5: a checked password is not checked again for ``ttl`` seconds
    of trio's clock, then is (the cache TTL runs on MockClock, not in real time)."""
    store = CountingStore()
    auth = authenticator(store, ttl=2.0)
    login = await auth.check("alice", "right", "192.0.2.1")
    assert login is not None and login.owner == "alice"
    mock_clock.jump(1.999)
    assert await auth.check("alice", "right", "192.0.2.1") == login
    assert store.password_checks == 1
    mock_clock.jump(0.002)
    assert await auth.check("alice", "right", "192.0.2.1") == login
    assert store.password_checks == 2


async def test_failures_and_other_secrets_are_never_cached(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Issue 11: a wrong password is checked every time; the cache is per secret."""
    store = CountingStore()
    auth = authenticator(store, ttl=60.0)
    assert await auth.check("alice", "wrong", "192.0.2.1") is None
    assert await auth.check("alice", "wrong", "192.0.2.1") is None
    assert await auth.check("alice", "right", "192.0.2.1") is not None
    assert store.password_checks == 3
    # A password changed (or a token revoked) elsewhere shows after at most the TTL.
    store.owner = OwnerRecord("alice", "hash", 0, "*")
    assert await auth.check("alice", "right", "192.0.2.1") is not None
    mock_clock.jump(60)
    assert await auth.check("alice", "right", "192.0.2.1") is None


async def test_api_tokens_are_cached_too(mock_clock: trio.testing.MockClock) -> None:
    """Issue 11: an API token given with the user name follows the same TTL rule."""
    store = CountingStore()
    auth = authenticator(store, ttl=1.0)
    login = await auth.check("alice", TOKEN, "192.0.2.1")
    assert login is not None and login.permissions == "v2"
    assert await auth.check("alice", TOKEN, "192.0.2.1") == login
    assert store.token_checks == 1
    mock_clock.jump(1.0)
    assert await auth.check("alice", TOKEN, "192.0.2.1") == login
    assert store.token_checks == 2


async def test_ttl_zero_caches_nothing(mock_clock: trio.testing.MockClock) -> None:
    """Issue 11: api_auth_cache_ttl = 0 turns the cache off."""
    store = CountingStore()
    auth = authenticator(store, ttl=0)
    for _ in range(3):
        assert await auth.check("alice", "right", "192.0.2.1") is not None
    assert store.password_checks == 3
