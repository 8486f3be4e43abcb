"""Issue 11 (one clock): the store's vehicle and owner cache TTLs, on MockClock.

The MockClock is moved by hand (no autojump): reads run in threads in real time,
and the cache's TTL is decided by jumps alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio
import trio.testing

from relay.store import open_store
from tests.conftest import OWNER, copy_db


async def test_vehicle_and_owner_caches_expire_after_the_ttl(
    mock_clock: trio.testing.MockClock, tmp_path: Path, template_db: Path,
) -> None:
    """Issue 11 item 5: a change made behind the store's back shows once the cache
    TTL has passed on trio's clock, not before; a ``fresh`` read always sees it."""
    path = tmp_path / "relay.db"
    copy_db(template_db, path)
    async with open_store(str(path), cache_ttl=30.0) as store:
        vehicle = await store.get_vehicle("DEMO")
        owner = await store.get_owner(OWNER)
        assert vehicle is not None and owner is not None and owner.status == 1
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE vehicles SET carpass = 'NEWPASS' WHERE vehicleid = 'DEMO'")
            conn.execute("UPDATE owners SET status = 0 WHERE name = ?", (OWNER,))
        mock_clock.jump(29.9)
        assert await store.get_vehicle("DEMO") == vehicle
        assert (await store.get_owner(OWNER)) == owner
        fresh = await store.get_vehicle("DEMO", fresh=True)
        assert fresh is not None and fresh.carpass == "NEWPASS"
        mock_clock.jump(0.2)
        changed = await store.get_owner(OWNER)
        assert changed is not None and changed.status == 0
