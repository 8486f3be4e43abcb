"""Issue 9 defect 12: refused logins do the same work whether the vehicle (or account)
exists or not, so ids cannot be enumerated by timing. Structural: the work is counted,
never timed."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import ServerSession
from relay.store import passwords
from relay.store import vehicles as store_vehicles
from tests.conftest import OWNER, RelayUnderTest, StartRelay
from tools.v2client import LoginRefused


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Carpasses the server computed a scheme-0 digest with (as they happen)."""
    seen: list[str] = []
    original = ServerSession.scheme0_digest_ok

    def counting(self: ServerSession, carpass: str) -> bool:
        seen.append(carpass)
        return original(self, carpass)

    monkeypatch.setattr(ServerSession, "scheme0_digest_ok", counting)
    return seen


@pytest.fixture
def vehicle_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Vehicle ids the store read from the database (not its cache)."""
    seen: list[str] = []
    original = store_vehicles.read_vehicle

    def counting(conn: Any, vehicleid: str) -> Any:
        seen.append(vehicleid)
        return original(conn, vehicleid)

    monkeypatch.setattr(store_vehicles, "read_vehicle", counting)
    return seen


async def test_unknown_vehicle_costs_what_a_wrong_digest_costs(
    relay: RelayUnderTest, digests: list[str], vehicle_reads: list[str]
) -> None:
    """Issue 9 defect 12: per refused scheme-0 login, one database read and one digest
    check, for a known vehicle (wrong digest) and an unknown one alike, also when the
    known one is in the store's cache."""
    work = {}
    for vehicleid in ("DEMO", "NOSUCH"):
        digests.clear()
        vehicle_reads.clear()
        for _ in range(3):
            with pytest.raises(LoginRefused):
                await relay.app(vehicleid, carpass="wrong")
        work[vehicleid] = (len(digests), len(vehicle_reads))
    assert work["DEMO"] == work["NOSUCH"] == (3, 3)


async def test_unknown_account_costs_what_a_wrong_password_costs(
    start_relay: StartRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 defect 12 (scheme 1): an unknown account gets the same argon2 check as a
    wrong password, instead of a refusal without one."""
    relay = await start_relay(allow_plain_login=True)
    verified: list[str] = []
    original = passwords.verify_password

    def counting(password_hash: str, password: str) -> bool:
        verified.append(password)
        return original(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", counting)
    counts = {}
    for username in (OWNER, "nobody"):
        verified.clear()
        with pytest.raises(LoginRefused):
            await relay.app("DEMO", username=username, password="wrong")
        counts[username] = len(verified)
    assert counts == {OWNER: 1, "nobody": 1}
