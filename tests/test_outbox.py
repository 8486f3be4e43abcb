"""Issue 11 item 8: the outbox and its on-demand writer, on memory streams and MockClock."""

from __future__ import annotations

import trio
import trio.testing

from protocol import Message
from relay.outbox import WRITE_BATCH, Outbox


async def test_writer_batches_and_ends_when_the_queue_is_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Issue 11: one writer drains the queue in batches, then no task is left."""
    batches: list[list[str]] = []

    async def flush(batch: list[Message]) -> None:
        batches.append([m.text() for m in batch])
        await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        outbox = Outbox(1000, flush, nursery)
        for i in range(WRITE_BATCH + 3):
            outbox.send_nowait(Message("S", str(i)))
        assert len(outbox) == WRITE_BATCH + 3
    # The nursery closed on its own: the writer ended when the queue emptied.
    assert [len(b) for b in batches] == [WRITE_BATCH, 3]
    assert batches[1][-1] == f"S{WRITE_BATCH + 2}"
    assert len(outbox) == 0


async def test_full_queue_and_closed_queue_refuse() -> None:
    """Issue 11: the part of MemorySendChannel the hub relies on."""

    async def flush(batch: list[Message]) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        outbox = Outbox(2, flush, nursery)
        outbox.send_nowait(Message("A"))
        outbox.send_nowait(Message("A"))
        assert outbox.limit == 2
        try:
            outbox.send_nowait(Message("A"))
        except trio.WouldBlock:
            pass
        else:
            raise AssertionError("a full outbox took a message")
        outbox.close()
        try:
            outbox.send_nowait(Message("A"))
        except trio.ClosedResourceError:
            pass
        else:
            raise AssertionError("a closed outbox took a message")


async def test_close_ends_a_writer_blocked_on_a_peer_that_stopped_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Issue 11 item 8: the writer runs in the server-wide nursery, yet it must not
    outlive its connection. A lockstep stream pair whose far end never reads keeps
    the writer in send_all; closing the outbox must end it, so the nursery (the
    server's, in production) is not left holding a dead connection's task."""
    ours, _theirs = trio.testing.lockstep_stream_pair()

    async def flush(batch: list[Message]) -> None:
        await ours.send_all(b"".join(m.text().encode() + b"\r\n" for m in batch))

    with trio.fail_after(60):  # MockClock seconds: a writer left running trips it
        async with trio.open_nursery() as nursery:
            outbox = Outbox(8, flush, nursery)
            outbox.send_nowait(Message("S", "1"))
            await trio.sleep(1)  # the writer is now stuck: nobody reads ``theirs``
            assert len(outbox) == 0  # taken by the writer, not yet written
            outbox.close()


async def test_close_before_the_writer_starts_sends_nothing() -> None:
    """Issue 11 item 8: a connection closed right after queueing writes nothing more."""
    written: list[Message] = []

    async def flush(batch: list[Message]) -> None:
        written.extend(batch)

    async with trio.open_nursery() as nursery:
        outbox = Outbox(8, flush, nursery)
        outbox.send_nowait(Message("S", "1"))
        outbox.close()
    assert written == []


async def test_a_failing_writer_drops_the_queue_and_reports_not_the_server() -> None:
    """Issue 11: a bug in one connection's flush must not reach the server nursery."""
    failed: list[bool] = []

    async def flush(batch: list[Message]) -> None:
        raise RuntimeError("bug")

    async with trio.open_nursery() as nursery:
        outbox = Outbox(8, flush, nursery, on_error=lambda: failed.append(True))
        outbox.send_nowait(Message("S", "1"))
        outbox.send_nowait(Message("S", "2"))
    assert failed == [True]
    try:
        outbox.send_nowait(Message("S", "3"))
    except trio.ClosedResourceError:
        pass
    else:
        raise AssertionError("a failed outbox took a message")


async def test_a_new_writer_starts_after_the_queue_emptied(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Issue 11: an idle connection holds no writer; the next message starts one."""
    written: list[str] = []

    async def flush(batch: list[Message]) -> None:
        written.extend(m.text() for m in batch)
        await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        outbox = Outbox(8, flush, nursery)
        outbox.send_nowait(Message("S", "1"))
        await trio.sleep(1)
        assert written == ["S1"]
        assert not nursery.child_tasks  # the writer ended with the queue
        outbox.send_nowait(Message("S", "2"))
    assert written == ["S1", "S2"]
