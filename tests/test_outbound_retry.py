"""relay.outbound: the back-off rule, the retry heap and the delivery workers, on
trio's MockClock (autojump): hours of retries run in milliseconds.

Issue 11 finding 6: one outbound delivery package for push and v4 callbacks.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from relay.outbound.delivery import Delivery
from relay.outbound.retry import RetryQueue, backoff


def no_jitter(low: float, high: float) -> float:
    return 1.0


def test_backoff_doubles_up_to_the_cap() -> None:
    """Issue 11 finding 6: base doubling per failure, capped."""
    delays = [backoff(n, 5.0, 60.0, uniform=no_jitter) for n in range(1, 7)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_backoff_jitter_spreads_both_ways() -> None:
    """Issue 11 finding 6: the jitter factor is drawn from [1 - j, 1 + j]."""
    asked: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        asked.append((low, high))
        return high

    assert backoff(3, 1.0, 100.0, jitter=0.25, uniform=record) == pytest.approx(5.0)
    assert asked == [(0.75, 1.25)]
    assert 9.0 <= backoff(1, 10.0, 100.0) <= 11.0  # default jitter: 10 %


async def test_retry_queue_releases_in_due_order_at_due_times(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 finding 6: items come out when due (trio clock), earliest first, ties in
    insertion order; an earlier item scheduled while waiting is not held up."""
    queue: RetryQueue[str] = RetryQueue()
    send, recv = trio.open_memory_channel[str](0)
    start = trio.current_time()
    queue.schedule("c", start + 300)
    queue.schedule("a", start + 100)
    queue.schedule("a2", start + 100)
    released: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.release_into, send)
        for _ in range(3):
            item = await recv.receive()
            released.append((item, trio.current_time() - start))
            if item == "a2":
                queue.schedule("b", trio.current_time() + 50)  # before "c"
        released.append((await recv.receive(), trio.current_time() - start))
        assert len(queue) == 0
        nursery.cancel_scope.cancel()
    assert released == [("a", 100), ("a2", 100), ("b", 150), ("c", 300)]


async def test_delivery_retries_with_backoff_until_it_succeeds(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 finding 6: an attempt that hands its item back with ``retry_in`` is tried
    again after exactly that delay; the delivery is idle once the item is settled."""
    attempts: list[float] = []
    done = trio.Event()
    delivery: Delivery[int]

    async def attempt(item: int) -> None:
        attempts.append(trio.current_time())
        if len(attempts) < 4:
            delivery.retry_in(item, backoff(len(attempts), 10.0, 25.0, uniform=no_jitter))
        else:
            done.set()

    delivery = Delivery("test", attempt, workers=2, queue_size=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(delivery.run)
        assert delivery.idle()
        start = trio.current_time()
        assert delivery.offer(7)
        await done.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert delivery.idle() and delivery.retrying == 0
        nursery.cancel_scope.cancel()
    assert [t - start for t in attempts] == [0, 10, 30, 55]


async def test_delivery_offer_refuses_when_full_and_put_waits(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 finding 6: ``offer`` never blocks (False when the queue is full); ``put``
    waits for room; nothing is lost."""
    release = trio.Event()
    seen: list[int] = []

    async def attempt(item: int) -> None:
        await release.wait()
        seen.append(item)

    delivery: Delivery[int] = Delivery("test", attempt, workers=1, queue_size=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(delivery.run)
        assert delivery.offer(1)
        await trio.testing.wait_all_tasks_blocked()  # 1 is with the worker
        assert delivery.offer(2) and delivery.offer(3)
        assert not delivery.offer(4)  # queue full
        assert not delivery.idle()
        nursery.start_soon(delivery.put, 5)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
        while not delivery.idle():
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert seen == [1, 2, 3, 5]


async def test_delivery_survives_a_crashing_attempt_and_stops_on_request(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11 finding 6: one crashing item is logged with its traceback and the worker
    goes on; a ``stop_on`` exception (the store closing) ends the worker quietly."""

    class Closing(Exception):
        pass

    seen: list[str] = []

    async def attempt(item: str) -> None:
        seen.append(item)
        if item == "bug":
            raise ValueError("boom")
        if item == "stop":
            raise Closing

    delivery: Delivery[str] = Delivery("test", attempt, workers=1, queue_size=4,
                                       stop_on=(Closing,), describe=lambda item: f"item={item}")
    with caplog.at_level(logging.ERROR, logger="relay.outbound"):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            for item in ("bug", "fine", "stop", "never"):
                assert delivery.offer(item)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert seen == ["bug", "fine", "stop"]  # the only worker ended at "stop"
    [record] = caplog.records
    assert "test: item=bug: delivery attempt crashed" in record.getMessage()
    assert record.exc_info is not None
