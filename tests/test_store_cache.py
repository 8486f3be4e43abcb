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


async def test_shared_latest_cache_keeps_only_vehicles_whose_car_is_here(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cluster: another node may have written since, unless the car is on this one."""
    stored = {"D": _msg("D", "one", 1.0)}
    loads: list[str] = []
    gate = trio.Event()
    gate.set()

    async def load(vehicleid: str) -> tuple[dict[str, StoredMessage], float | None]:
        loads.append(vehicleid)
        read = dict(stored)  # what the database held when the read began
        await gate.wait()
        return read, 7.0

    cache = LatestCache(load, max_codes=10, max_bytes=100)
    cache.share()
    assert (await cache.messages("V"))["D"].data == "one"
    stored["D"] = _msg("D", "two", 2.0)  # written by the car's node
    assert (await cache.messages("V"))["D"].data == "two" and len(loads) == 2
    assert cache.lastupdate["V"] == 7.0

    assert cache.car_arrived("V") and not cache.car_arrived("V")  # a second login here
    (await cache.messages("V"))["D"] = _msg("D", "mine", 3.0)  # as put_latest does
    stored["D"] = _msg("D", "three", 3.0)
    assert (await cache.messages("V"))["D"].data == "mine" and len(loads) == 3

    assert cache.car_left("V") and not cache.car_left("V")
    assert (await cache.messages("V"))["D"].data == "three"  # read again

    # The car leaves while its messages are read: what was read is not kept.
    gate = trio.Event()
    cache.car_arrived("V")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.messages, "V")
        await trio.sleep(1)
        cache.car_left("V")
        stored["D"] = _msg("D", "four", 4.0)
        cache.car_arrived("V")
        gate.set()
    assert (await cache.messages("V"))["D"].data == "four"
