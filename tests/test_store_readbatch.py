"""Issue 11: vehicle reads asked for at about the same time share one database call."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from relay.store.errors import StoreClosed, StoreTimeout
from relay.store.readbatch import MAX_BATCH, BatchedLookup


class Reads:
    """A fake ``read``: records each call's keys; ``fail`` makes the next call raise."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False
        self.release = trio.Event()

    async def __call__(self, keys: list[str]) -> list[str | None]:
        self.calls.append(keys)
        await self.release.wait()
        if self.fail:
            self.fail = False
            raise StoreTimeout("the database did not answer")
        return [None if k.startswith("NO") else f"row of {k}" for k in keys]


async def test_lookups_waiting_together_are_one_read_each_in_one_call() -> None:
    reads = Reads()
    lookup: BatchedLookup[str, str] = BatchedLookup(reads)
    answers: dict[str, str | None] = {}

    async def get(key: str) -> None:
        answers[key] = await lookup.get(key)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lookup.run)  # lookups asked for before it runs wait for it
        for key in ("A", "NOSUCH", "A"):
            nursery.start_soon(get, key)
        await trio.testing.wait_all_tasks_blocked()
        for key in ("B", "C"):  # asked while the first batch is read: the next batch
            nursery.start_soon(get, key)
        await trio.testing.wait_all_tasks_blocked()
        reads.release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    # Every lookup is its own read (known and unknown ids alike), in two calls.
    assert [sorted(keys) for keys in reads.calls] == [["A", "A", "NOSUCH"], ["B", "C"]]
    assert answers == {"A": "row of A", "NOSUCH": None, "B": "row of B", "C": "row of C"}
    assert lookup.batches == 2


async def test_a_failed_read_fails_its_batch_only() -> None:
    reads = Reads()
    reads.release.set()
    reads.fail = True
    lookup: BatchedLookup[str, str] = BatchedLookup(reads)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lookup.run)
        with pytest.raises(StoreTimeout):
            await lookup.get("A")
        assert await lookup.get("A") == "row of A"
        nursery.cancel_scope.cancel()


async def test_lookups_fail_once_the_store_closes() -> None:
    reads = Reads()
    lookup: BatchedLookup[str, str] = BatchedLookup(reads)
    failures: list[BaseException] = []

    async def get(key: str) -> None:
        try:
            await lookup.get(key)
        except StoreClosed as exc:
            failures.append(exc)

    async with trio.open_nursery() as outer:
        outer.start_soon(get, "A")  # in the batch being read when the store closes
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lookup.run)
            await trio.testing.wait_all_tasks_blocked()
            outer.start_soon(get, "B")  # pending, not yet read
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert len(failures) == 2
    with pytest.raises(StoreClosed):
        await lookup.get("C")


async def test_a_flood_of_lookups_is_read_in_bounded_calls() -> None:
    reads = Reads()
    reads.release.set()
    lookup: BatchedLookup[str, str] = BatchedLookup(reads)
    keys = [f"V{i}" for i in range(MAX_BATCH * 2 + 1)]
    answers: dict[str, str | None] = {}

    async def get(key: str) -> None:
        answers[key] = await lookup.get(key)

    async with trio.open_nursery() as nursery:
        for key in keys:
            nursery.start_soon(get, key)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(lookup.run)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [len(call) for call in reads.calls] == [MAX_BATCH, MAX_BATCH, 1]
    assert answers == {key: f"row of {key}" for key in keys}
