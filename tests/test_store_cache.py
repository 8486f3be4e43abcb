"""Issue 11 (store with a backend seam): the store's caches on their own, on MockClock."""

from __future__ import annotations

import trio
import trio.testing

from relay.store.cache import LatestCache, TtlCache
from relay.store.records import StoredMessage


async def test_ttl_cache_expires_and_replace_keeps_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache: TtlCache[str, int] = TtlCache(30.0)
    cache.put("a", 1)
    await trio.sleep(20)
    cache.replace("a", 2)
    assert cache.get("a") == 2
    await trio.sleep(11)
    assert cache.get("a") is None and cache.peek("a") == 2
    cache.replace("missing", 5)
    assert cache.peek("missing") is None


def _msg(code: str, data: str, when: float) -> StoredMessage:
    return StoredMessage(code, data, when, False, "")


async def test_latest_cache_loads_once_and_keeps_puts_made_while_loading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loads: list[str] = []
    release = trio.Event()

    async def load(vehicleid: str) -> tuple[dict[str, StoredMessage], float | None]:
        loads.append(vehicleid)
        await release.wait()
        return {"S": _msg("S", "old", 1.0), "D": _msg("D", "d", 2.0)}, None

    cache = LatestCache(load, max_codes=10, max_bytes=100)
    results: list[dict[str, StoredMessage]] = []

    async def reader() -> None:
        results.append(await cache.messages("V"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(reader)
        await trio.sleep(1)
        release.set()
    assert loads == ["V"] and results[0] is results[1]
    assert cache.lastupdate["V"] is None
    assert sorted(results[0]) == ["D", "S"]


async def test_latest_cache_trims_to_the_limits_and_refuses_beyond(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def load(vehicleid: str) -> tuple[dict[str, StoredMessage], float | None]:
        return {c: _msg(c, "x" * 10, float(i)) for i, c in enumerate("ABCFS")}, 5.0

    cache = LatestCache(load, max_codes=3, max_bytes=100)
    messages = await cache.messages("V")
    assert sorted(messages) == ["C", "F", "S"]  # F and S first, then the newest
    assert not cache.admit("V", messages, "Z", "y")  # a fourth code
    assert cache.admit("V", messages, "S", "y" * 80)  # replacing one: within the bytes
    assert not cache.admit("V", messages, "S", "y" * 81)
