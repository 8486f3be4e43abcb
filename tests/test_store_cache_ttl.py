"""Issue 11 (one clock): the store's vehicle and owner cache TTLs, on MockClock.

The MockClock is moved by hand (no autojump): reads run in threads in real time,
and the cache's TTL is decided by jumps alone.
"""

from __future__ import annotations

import trio
import trio.testing

from relay.store import open_store
from tests.conftest import OWNER
from tests.pg_server import run_sql


async def test_vehicle_and_owner_caches_expire_after_the_ttl(
    mock_clock: trio.testing.MockClock, relay_db: str,
) -> None:
    """Issue 11 item 5: a change made behind the store's back shows once the cache
    TTL has passed on trio's clock, not before; a ``fresh`` read always sees it."""
    path = relay_db
    async with open_store(path, cache_ttl=30.0) as store:
        vehicle = await store.get_vehicle("DEMO")
        owner = await store.get_owner(OWNER)
        assert vehicle is not None and owner is not None and owner.status == 1
        run_sql(path, "UPDATE vehicles SET carpass = 'NEWPASS' WHERE vehicleid = 'DEMO'")
        run_sql(path, "UPDATE owners SET status = 0 WHERE name = ?", OWNER)
        mock_clock.jump(29.9)
        assert await store.get_vehicle("DEMO") == vehicle
        assert (await store.get_owner(OWNER)) == owner
        fresh = await store.get_vehicle("DEMO", fresh=True)
        assert fresh is not None and fresh.carpass == "NEWPASS"
        mock_clock.jump(0.2)
        changed = await store.get_owner(OWNER)
        assert changed is not None and changed.status == 0
