"""WebSocket ``GET /apiv2`` on the v2 ports, told apart from v2 clients by their first bytes.

Browser apps cannot open raw TCP, so the v2 ports also accept a WebSocket upgrade
on ``/apiv2`` and then speak the same line protocol, one line per text (or binary)
frame. Both kinds of client arrive on one socket, so each connection is sniffed:
``GET `` first means an HTTP upgrade request, anything else is a v2 welcome line.

V2Connection itself knows none of this: it is handed a trio Stream of CRLF lines.
A plain v2 connection gets the sniffed bytes handed to its session; ``WebSocketLineStream``
turns frames into lines and lines into frames (wsproto does the WebSocket and
HTTP/1.1 parsing, sans-IO). See docs/websocket.md.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError as WSLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WSRemoteProtocolError

from relay.boundary import close_stream, connection_failed
from relay.v2conn import RECEIVE_SIZE, V2Connection, peer_address

if TYPE_CHECKING:
    from relay.services import Services

log = logging.getLogger("relay.ws")

PATH = "/apiv2"
SNIFF = b"GET "
CRLF = b"\r\n"
# Lines are UTF-8 text on the wire (scheme 1) or base64 (scheme 0); a text frame
# must be valid UTF-8, so bytes that are not (only possible in a car's own data)
# are replaced rather than the frame switched to binary: browser apps read text.
ENCODING = "utf-8"
# Closing handshake: how long we wait to get our close frame out before dropping TCP.
CLOSE_TIMEOUT = 1.0
# What we answer a request wsproto cannot even decode: its own state is unusable then.
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
# RFC 6455 subprotocol names are HTTP tokens; nothing else is echoed back.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


class WebSocketRejected(Exception):
    """Client side: the server answered the upgrade request with an HTTP status."""


# --------------------------------------------------------------------------- sniffing


async def sniff(stream: trio.abc.Stream) -> bytes:
    """The connection's first bytes: just enough to tell ``GET `` from a v2 welcome.

    Returns b"" if the peer closed first. A v2 welcome never starts with ``GET ``
    (it starts with ``MP-`` or ``AP-``), so four bytes decide it.
    """
    data = b""
    while len(data) < len(SNIFF) and SNIFF.startswith(data):
        chunk = await stream.receive_some(RECEIVE_SIZE)
        if not chunk:
            return b""
        data += chunk
    return data


# --------------------------------------------------------------------------- the adapter


class WebSocketLineStream(trio.abc.Stream):
    """An open WebSocket seen as a stream of CRLF-terminated lines (either side).

    receive_some: each received text or binary message becomes its payload plus
    CRLF (fragments are passed on as they arrive, so the v2 session's line-length
    bound also bounds what a peer can make us hold). Pings are answered, a close
    frame is answered and reads as end of stream.
    send_all: each CRLF-terminated line becomes one text frame.

    The v2 connection reads in one task and writes in another; replies the reader
    sends (pong, close) share the transport with the writer, hence the send lock.
    """

    def __init__(self, transport_stream: trio.abc.Stream, ws: WSConnection) -> None:
        self.transport_stream = transport_stream
        self._ws = ws
        self._send_lock = trio.Lock()
        self._incoming = bytearray()
        self._outgoing_tail = b""  # an unterminated line waiting for the rest of it
        self._eof = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while not self._incoming and not self._eof:
            await self._handle_events()
            if self._incoming or self._eof:
                break
            data = await self.transport_stream.receive_some(RECEIVE_SIZE)
            try:
                # None tells wsproto the TCP stream ended (without a close frame).
                self._ws.receive_data(bytes(data) if data else None)
            except WSLocalProtocolError:
                # Data after the close handshake: for the connection, just the end.
                raise trio.BrokenResourceError("data after WebSocket close") from None
            if not data:
                await self._handle_events()
                self._eof = True
        if not self._incoming:
            await trio.lowlevel.checkpoint()
            return b""
        size = len(self._incoming) if max_bytes is None else max_bytes
        out = bytes(self._incoming[:size])
        del self._incoming[:size]
        return out

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                data = event.data
                self._incoming += data.encode(ENCODING, "surrogateescape") if isinstance(
                    data, str) else data
                if event.message_finished:
                    # A frame that already ends in CRLF just yields a blank line,
                    # which the v2 session skips.
                    self._incoming += CRLF
            elif isinstance(event, Ping):
                await self._send_event(event.response())
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    await self._send_event(event.response())  # the peer's close: confirm it
                elif self._ws.state is ConnectionState.OPEN:
                    # wsproto reports a frame it could not parse (bad UTF-8, bad opcode) as
                    # this event; tell the peer why with the code it chose (1002/1007/...).
                    await self._send_event(CloseConnection(code=event.code, reason=event.reason))
                self._eof = True
                return
            # Pong, and anything else: nothing to do.

    async def _send_event(self, event: Event) -> None:
        try:
            data = self._ws.send(event)
        except WSLocalProtocolError:
            return  # the connection is already closing; nothing more may be sent
        async with self._send_lock:
            await self.transport_stream.send_all(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._ws.state is not ConnectionState.OPEN:
            raise trio.ClosedResourceError("WebSocket is closing")
        *lines, self._outgoing_tail = (self._outgoing_tail + bytes(data)).split(b"\n")
        frames = bytearray()
        for line in lines:
            text = line.removesuffix(b"\r").decode(ENCODING, "replace")
            frames += self._ws.send(TextMessage(data=text))
        if not frames:
            await trio.lowlevel.checkpoint()
            return
        async with self._send_lock:
            await self.transport_stream.send_all(frames)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Send a close frame if we still may (bounded, even under cancellation), drop TCP."""
        try:
            if self._ws.state is ConnectionState.OPEN:
                # Shielded: V2Connection closes with aclose_forcefully (already
                # cancelled), yet a browser should see a clean close, not error 1006.
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    await self._send_event(CloseConnection(code=1000))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await self.transport_stream.aclose()


# --------------------------------------------------------------------------- handshakes


async def accept_websocket(
    stream: trio.abc.Stream, first: bytes, *, address: str
) -> WebSocketLineStream | None:
    """Server side: read the upgrade request that starts with ``first`` and answer it.

    Returns the line stream, or None after a refusal (wrong path: 404; not a valid
    upgrade request: 400) or when the peer goes away. The caller bounds the time.
    """
    ws = WSConnection(ConnectionType.SERVER)
    data = first
    while True:
        try:
            ws.receive_data(data)
            request = next((e for e in ws.events() if isinstance(e, Request)), None)
        except WSRemoteProtocolError as exc:
            log.info("addr=%s client=ws: bad upgrade request (%s), closing", address, exc)
            if isinstance(exc.event_hint, RejectConnection):
                await _send_quietly(stream, ws, exc.event_hint)
            return None
        except ValueError as exc:
            # wsproto decodes some header values (Connection, Host, subprotocols,
            # extensions) as ASCII or IDNA and lets the UnicodeError out.
            log.info("addr=%s client=ws: undecodable upgrade request (%s), 400",
                     address, type(exc).__name__)
            await _send_raw_quietly(stream, BAD_REQUEST)
            return None
        if request is not None:
            break
        data = bytes(await stream.receive_some(RECEIVE_SIZE))
        if not data:
            return None
    if request.target.split("?", 1)[0] != PATH:
        log.info("addr=%s client=ws: upgrade for unknown path, 404", address)
        await _send_quietly(stream, ws, RejectConnection(
            status_code=404, headers=[(b"content-length", b"0")], has_body=False))
        return None
    # Browsers fail the connection if they offered subprotocols and none is chosen;
    # the OVMS line protocol has no registered name, so echo the client's first choice.
    offered = request.subprotocols[0] if request.subprotocols else ""
    subprotocol = offered if _TOKEN.fullmatch(offered) else None
    await stream.send_all(ws.send(AcceptConnection(subprotocol=subprotocol)))
    return WebSocketLineStream(stream, ws)


async def _send_quietly(stream: trio.abc.Stream, ws: WSConnection, event: Event) -> None:
    try:
        data = ws.send(event)
    except WSLocalProtocolError:
        return
    await _send_raw_quietly(stream, data)


async def _send_raw_quietly(stream: trio.abc.Stream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def connect_websocket(
    stream: trio.abc.Stream, host: str, path: str = PATH
) -> WebSocketLineStream:
    """Client side (tools, tests): upgrade ``stream``; raises WebSocketRejected on refusal."""
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=host, target=path)))
    while True:
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return WebSocketLineStream(stream, ws)
            if isinstance(event, RejectConnection):
                raise WebSocketRejected(f"upgrade refused with HTTP {event.status_code}")
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise WebSocketRejected("connection closed during the upgrade")
        ws.receive_data(bytes(data))


# --------------------------------------------------------------------------- entry point


async def serve_v2_connection(stream: trio.abc.Stream, services: Services, *, tls: bool) -> None:
    """Run one accepted connection of a v2 port (plain or, after the handshake, TLS).

    Sniff, do the WebSocket upgrade if asked, then V2Connection over the line stream.
    Sniffing and the upgrade share the welcome timeout: a client that sends nothing
    is dropped as quickly as on a plain v2 connection.
    """
    transport = "wss" if tls else "ws"
    address = peer_address(stream)
    try:
        lines, first, deadline = await _upgrade_or_sniff(stream, services, transport, address)
        if lines is None:
            return
        initial = b"" if lines is not stream else first
        # A WebSocket client gets a fresh welcome timeout once upgraded; a plain one
        # continues the deadline the sniffing started.
        welcome_deadline = deadline if lines is stream else None
        await V2Connection(lines, services, tls=tls, initial=initial,
                           welcome_deadline=welcome_deadline, address=address).run()
    except Exception as exc:
        # Nothing a peer sends may end the process: this connection only.
        connection_failed("v2-tls" if tls else "v2", address, exc)
    finally:
        await close_stream(stream)


async def _upgrade_or_sniff(
    stream: trio.abc.Stream, services: Services, transport: str, address: str
) -> tuple[trio.abc.Stream | None, bytes, float]:
    """The line stream (the raw one for plain v2), the sniffed bytes and the welcome deadline."""
    timeout = services.config.welcome_timeout
    lines: trio.abc.Stream | None = None
    first = b""
    deadline = trio.current_time() + timeout
    try:
        with trio.move_on_at(deadline) as scope:
            first = await sniff(stream)
            if not first:
                log.info("addr=%s: closed before sending anything", address)
            elif first.startswith(SNIFF):
                lines = await accept_websocket(stream, first, address=address)
                if lines is not None:
                    log.info("addr=%s client=%s: WebSocket %s upgrade accepted",
                             address, transport, PATH)
            else:
                # Plain v2: the session gets the sniffed bytes first, on the raw stream
                # itself (a wrapper here would cost every idle car a frame and an object).
                lines = stream
        if scope.cancelled_caught:
            log.info("addr=%s: no welcome within %.0f s, closing", address, timeout)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        log.info("addr=%s: connection lost before the welcome", address)
    return lines, first, deadline
