"""Issue 9 defect 6: a car storing many message codes must not lock its apps out.

A car could store one latest message per distinct code without limit; an app's
login replays them all, so more than ``outbox_size`` of them overflowed the app's
queue and closed every app login of that vehicle, persistently.
"""

from __future__ import annotations

import logging

import pytest
import trio

from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import sync


def code(n: int) -> str:
    """The n-th of many distinct one-character message codes no real car uses."""
    return chr(0x4E00 + n)


async def app_login_replay(relay: RelayUnderTest, vehicleid: str = "DEMO") -> list[str]:
    """Log an app in and return the codes it is sent; fails if the server drops it."""
    app = await relay.app(vehicleid)
    try:
        # The first message waits as long as a loaded machine needs; the rest follow it.
        messages = [await app.receive(10)] + await app.drain(0.5)
        await app.send("A")
        with trio.fail_after(10):
            await app.receive_until("a")  # still connected and served
    finally:
        await app.aclose()
    return [m.code for m in messages]


async def test_car_cannot_store_more_than_max_stored_codes(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 6: beyond max_stored_codes a new code is refused (logged once)."""
    caplog.set_level(logging.WARNING, logger="relay.store")
    relay = await start_relay(max_stored_codes=40, outbox_size=30)
    car = await relay.car()
    for n in range(100):
        await car.send(code(n), f"value {n}")
    await sync(car)
    await car.send("S", "80,K")  # a known code beyond the limit is refused too ...
    await sync(car)
    await car.send(code(0), "updated")  # ... an already stored one is updated
    await sync(car)
    await relay.handle.store.flush()
    rows = relay.sql("SELECT code, data FROM latest WHERE vehicleid='DEMO'")
    assert len(rows) == 40
    assert (code(0), "updated") in rows
    refusals = [r for r in caplog.records if "not stored" in r.getMessage()]
    assert len(refusals) == 1  # rate-limited: one line for 61 refusals
    # The replay (Z, 40 stored messages, T) exceeds outbox_size=30, yet the app stays.
    replay = await app_login_replay(relay)
    assert replay[0] == "Z" and replay[-1] == "T" and len(replay) == 42


async def test_car_cannot_store_more_than_max_stored_bytes(start_relay: StartRelay) -> None:
    """Issue 9 defect 6: the total size of a vehicle's stored messages is bounded too."""
    relay = await start_relay(max_stored_bytes=10_000)
    car = await relay.car()
    for n in range(8):
        await car.send(code(n), str(n) * 1_900)
    await car.send("S", "80,K")  # small: still fits
    await sync(car)
    await relay.handle.store.flush()
    rows = relay.sql("SELECT code, LENGTH(data) FROM latest WHERE vehicleid='DEMO'")
    assert sum(size for _, size in rows) <= 10_000
    assert len(rows) == 5 + 1


async def test_database_with_too_many_codes_does_not_lock_apps_out(
    start_relay: StartRelay,
) -> None:
    """Issue 9 defect 6: a database filled before the limit existed (2,000 codes, over
    outbox_size) still lets apps log in; F and S are served first, the rest bounded."""
    relay = await start_relay()
    await relay.handle.store.flush()
    rows = [(code(n), 1000.0 + n) for n in range(2_000)] + [("S", 1.0), ("F", 1.0)]
    relay.sql("INSERT INTO latest(vehicleid, code, msgtime, paranoid, ptoken, data) "
              "SELECT 'TESTCAR', column1, column2, 0, '', 'junk' FROM (VALUES "
              + ", ".join("(?, ?)" for _ in rows) + ") AS new",
              *(v for row in rows for v in row))
    replay = await app_login_replay(relay, "TESTCAR")
    assert replay[:3] == ["Z", "F", "S"]
    assert len(replay) <= relay.config.max_stored_codes + 3  # Z, stored, f (version), T
