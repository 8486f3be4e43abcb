"""Issue 11: the WebSocket line stream on its own, over trio's in-memory streams.

Both sides of the adapter (``accept_websocket`` on the server, ``connect_websocket``
in the tools) meet over ``trio.testing.memory_stream_pair``: no sockets, no sleeps.
"""

from __future__ import annotations

import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from relay.websocket import (
    WebSocketLineStream,
    WebSocketRejected,
    accept_websocket,
    connect_websocket,
    sniff,
)


async def pair() -> tuple[WebSocketLineStream, WebSocketLineStream]:
    """A connected (client, server) pair of line streams."""
    left, right = trio.testing.memory_stream_pair()
    server: list[WebSocketLineStream | None] = []

    async def accept() -> None:
        server.append(await accept_websocket(right, await sniff(right), address="mem"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        client = await connect_websocket(left, "relay.test")
    assert server[0] is not None
    return client, server[0]


async def read_until(stream: trio.abc.Stream, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = await stream.receive_some(1000)
        assert chunk, f"end of stream after {data!r}"
        data += chunk
    return data


async def test_lines_become_frames_and_frames_lines() -> None:
    """Issue 11: each CRLF line is one text frame; a line split across writes is
    held back until complete; each frame received reads as a line."""
    client, server = await pair()
    await client.send_all(b"MP-A 0 x\r\nS1,")
    await client.send_all(b"2\r\n")
    assert await read_until(server, b"S1,2\r\n") == b"MP-A 0 x\r\nS1,2\r\n"
    await server.send_all(b"Z1\r\nT0\r\n")
    assert await read_until(client, b"T0\r\n") == b"Z1\r\nT0\r\n"


async def test_receive_some_honours_max_bytes() -> None:
    """Issue 11: a frame larger than the reader asks for is handed over in parts."""
    client, server = await pair()
    await client.send_all(b"0123456789\r\n")
    assert await server.receive_some(4) == b"0123"
    assert await read_until(server, b"\r\n") == b"456789\r\n"


async def test_ping_is_answered_and_close_reads_as_end_of_stream() -> None:
    """Issue 11: the server answers a ping with a pong, answers a close frame with
    its own, and the v2 connection then sees end of stream."""
    left, right = trio.testing.memory_stream_pair()
    ws = WSConnection(ConnectionType.CLIENT)
    await left.send_all(ws.send(Request(host="relay.test", target="/apiv2")))
    server = await accept_websocket(right, await sniff(right), address="mem")
    assert server is not None
    ws.receive_data(await left.receive_some(4096))
    assert any(isinstance(e, AcceptConnection) for e in ws.events())

    async def server_reads() -> bytes:
        return await server.receive_some(100)

    await left.send_all(ws.send(Ping(payload=b"hi")) + ws.send(TextMessage(data="A")))
    assert await server_reads() == b"A\r\n"
    ws.receive_data(await left.receive_some(4096))
    assert [type(e) for e in ws.events()] == [Pong]
    await left.send_all(ws.send(CloseConnection(code=1000)))
    assert await server_reads() == b""
    ws.receive_data(await left.receive_some(4096))
    (closed,) = ws.events()
    assert isinstance(closed, CloseConnection) and closed.code == 1000
    try:
        await server.send_all(b"Z0\r\n")
    except trio.ClosedResourceError:
        pass
    else:
        raise AssertionError("sent on a closed WebSocket")


async def test_tcp_end_without_close_frame_is_end_of_stream() -> None:
    """Issue 11: a peer that drops TCP without a close frame reads as end of stream."""
    client, server = await pair()
    await client.transport_stream.aclose()
    assert await server.receive_some(100) == b""


async def test_aclose_is_bounded_when_the_peer_stopped_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Issue 11: closing sends a close frame, but never waits more than CLOSE_TIMEOUT
    for a peer that does not read (a lockstep pair never buffers)."""
    ours, _theirs = trio.testing.lockstep_stream_pair()
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(
        WSConnection(ConnectionType.CLIENT).send(Request(host="h", target="/apiv2")))
    next(e for e in ws.events() if isinstance(e, Request))
    ws.send(AcceptConnection())
    stream = WebSocketLineStream(ours, ws)
    start = trio.current_time()
    with trio.fail_after(30):
        await stream.aclose()
    assert 0 < trio.current_time() - start <= 1.5


async def test_refused_upgrade_raises_on_the_client() -> None:
    """Issue 11: a wrong path gets 404, which the client side reports."""
    left, right = trio.testing.memory_stream_pair()

    async def accept() -> None:
        assert await accept_websocket(right, await sniff(right), address="mem") is None
        await right.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        try:
            await connect_websocket(left, "relay.test", path="/elsewhere")
        except WebSocketRejected as exc:
            assert "404" in str(exc)
        else:
            raise AssertionError("upgrade to an unknown path accepted")
