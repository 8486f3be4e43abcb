"""Peers on memory channels for tests of the hub and what sits on it (no sockets)."""

from __future__ import annotations

import trio

from protocol import ClientType, Message
from relay.hub import Hub, Peer


def memory_peer(hub: Hub, client_type: ClientType, *, conn_id: str | None = None,
                vehicleid: str = "V", size: int = 16, register: bool = True
                ) -> tuple[Peer, trio.MemoryReceiveChannel[Message]]:
    """A logged-in peer whose outbox is a bounded memory channel (registered unless not)."""
    send, receive = trio.open_memory_channel[Message](size)
    peer = Peer(conn_id=conn_id or hub.new_id("t-"), owner="o", vehicleid=vehicleid,
                client_type=client_type, outbox=send, cancel_scope=trio.CancelScope())
    if register:
        hub.register(peer)
    return peer, receive


def texts(receive: trio.MemoryReceiveChannel[Message]) -> list[str]:
    """Everything queued on ``receive`` so far, as wire texts."""
    out = []
    while True:
        try:
            out.append(receive.receive_nowait().text())
        except trio.WouldBlock:
            return out
