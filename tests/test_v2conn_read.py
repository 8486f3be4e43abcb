"""Issue 11: an idle plain-TCP connection waits for readability, then reads at once."""

from __future__ import annotations

import socket

import trio
import trio.testing

from relay.v2conn import RECEIVE_SIZE, idle_wait_socket, read_ready


async def test_read_ready_reads_what_came_or_says_nothing_or_the_end() -> None:
    a, b = socket.socketpair()
    ours = trio.socket.from_stdlib_socket(a)
    try:
        assert read_ready(ours) is None  # polled readable, yet nothing there
        b.sendall(b"MP-0 A\r\n")
        await trio.lowlevel.wait_readable(ours)
        assert read_ready(ours) == b"MP-0 A\r\n"
        b.sendall(b"x" * (RECEIVE_SIZE + 10))
        await trio.lowlevel.wait_readable(ours)
        first = read_ready(ours)
        assert first is not None and 0 < len(first) <= RECEIVE_SIZE
        b.close()
        rest = b""
        while True:
            await trio.lowlevel.wait_readable(ours)
            chunk = read_ready(ours)
            assert chunk is not None
            if not chunk:
                break  # the peer's end
            rest += chunk
        assert len(first) + len(rest) == RECEIVE_SIZE + 10
    finally:
        ours.close()
    assert read_ready(ours) == b""  # closed meanwhile: over, not an exception


async def test_only_plain_tcp_streams_wait_outside_receive_some() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    try:
        assert idle_wait_socket(server) is server.socket
        assert idle_wait_socket(trio.testing.memory_stream_pair()[0]) is None
    finally:
        for resource in (client, server, listeners[0]):
            await resource.aclose()
