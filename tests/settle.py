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
