"""Waiting for the relay without waiting for time: a ping is answered after everything before it.

The relay handles each connection's lines in order and hands every message it
relays to the receivers' outboxes before reading the sender's next line. So once
a client's ``A`` is answered, everything the relay queued for that client before
reading the ``A`` has arrived, ahead of the ``a``. Pinging the client whose line
(or login) caused some traffic first, then the clients that should see it,
collects exactly what they were sent: no quiet period to wait out, and a stray
extra message still shows. What the relay does on its own time (a departed
client's ``Z`` update, an ``h`` ack after its commit) is awaited with
``receive`` instead.
"""

from __future__ import annotations

import math

import trio
import trio.testing

from protocol import Message
from tests.raw_v2 import RawScheme0
from tools.v2client import V2Client


def texts(msgs: list[Message]) -> list[str]:
    return [m.text() for m in msgs]


async def pinged(client: V2Client | RawScheme0) -> list[str]:
    """Ping ``client``'s connection; the texts that arrived before the answer."""
    if isinstance(client, RawScheme0):
        await client.send_text("A")
        return (await client.receive_until("a"))[:-1]
    await client.send("A")
    return texts(await client.receive_until("a"))[:-1]


async def settle(*clients: V2Client | RawScheme0) -> list[list[str]]:
    """Ping each client in turn, causing one first; what each had been sent."""
    return [await pinged(client) for client in clients]


async def drive_clock(clock: trio.testing.MockClock) -> None:
    """MockClock's autojump, but never while a worker thread runs (the store's SQLite
    work): autojump sees a task waiting for a thread as blocked, and on a loaded machine
    a thread can take longer than any threshold, so the clock raced ahead of the code
    under test. Start it in the test's nursery with ``clock.autojump_threshold`` at
    infinity: it jumps to the next deadline once every task is blocked and no thread
    runs."""
    clock.autojump_threshold = math.inf
    while True:
        await trio.testing.wait_all_tasks_blocked(cushion=0.001)
        if trio.testing.active_thread_count():
            await trio.testing.wait_all_threads_completed()
            continue
        delay = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if delay != math.inf:
            clock.jump(max(0.0, delay))
