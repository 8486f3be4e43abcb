"""Issue 9 defect 15: at most ``password_hash_concurrency`` argon2 checks (64 MiB each)
run at once, whatever the number of concurrent password logins (REST and v2).

Peak memory under a login flood is measured by tests/hostile/rss_login_flood.py;
here the bound itself is checked, by counting checks in flight (no timing asserted).
"""

from __future__ import annotations

import threading
import time

import pytest
import trio

from relay.store import passwords
from tests.conftest import OWNER, StartRelay
from tests.http_helpers import assert_text, client
from tools.v2client import LoginRefused


class InFlight:
    """Wraps passwords.verify_password: counts the checks running at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.total = 0

    def verify(self, password_hash: str, password: str) -> bool:
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)  # long enough for the others to pile up (in worker threads)
        with self.lock:
            self.now -= 1
        return False


@pytest.mark.parametrize("limit", [None, 3])
async def test_concurrent_password_checks_are_bounded(
    start_relay: StartRelay, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """Issue 9 defect 15: 12 concurrent bad password logins (REST and v2 scheme 1)
    never run more than 2 argon2 checks at once (the default), or the configured
    number."""
    overrides = {} if limit is None else {"password_hash_concurrency": limit}
    relay = await start_relay(allow_plain_login=True, **overrides)
    in_flight = InFlight()
    monkeypatch.setattr(passwords, "verify_password", in_flight.verify)

    async def rest(i: int) -> None:
        async with client(relay) as api:
            assert_text(await api.get("/api/vehicles",
                                      params={"username": OWNER, "password": f"bad{i}"}),
                        401, "Authentication failed")

    async def v2(i: int) -> None:
        with pytest.raises(LoginRefused):
            await relay.app("DEMO", username=OWNER, password=f"bad{i}")

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(rest, i)
            nursery.start_soon(v2, i)
    assert in_flight.total == 12
    assert in_flight.peak == (limit or 2)
