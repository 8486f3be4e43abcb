"""One v2 protocol connection: welcome, login, then a reader task and an on-demand writer.

Path of a car's ``S``: ``V2Connection._reader`` -> ``ServerSession`` decodes ->
``Router.from_car`` -> store + ``Hub.to_clients`` -> for each app,
that app's ``Outbox`` -> ``V2Connection._write``.
"""

from __future__ import annotations

import logging
import os
import socket

import trio

from protocol import (
    NEED_DATA,
    ClientType,
    LocalProtocolError,
    Message,
    ProvisionRequest,
    RefusedMessage,
    RemoteProtocolError,
    Scheme0Login,
    Scheme1Login,
    ServerSession,
)
from relay.hubapi import Peer
from relay.outbox import Outbox
from relay.services import Services
from relay.store import StoreError
from relay.usage import flush_usage
from relay.v2login import Granted, check_scheme0, check_scheme1

log = logging.getLogger("relay.v2")

RECEIVE_SIZE = 65536


def stream_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The TCP socket under ``stream``.

    A connection's stream is a SocketStream (plain v2), or wrappers around one that
    name their inner stream ``transport_stream``: trio.SSLStream (TLS port), and
    relay.websocket's line adapter (WebSocket frames <-> lines).
    V2Connection only needs "a stream of CRLF lines", so it runs unchanged over all of them;
    this walk is the one place that needs to see through the wrappers.
    """
    for _ in range(8):  # a bound, not a real depth: at most socket <- TLS <- WebSocket today
        sock: trio.socket.SocketType | None = getattr(stream, "socket", None)
        if sock is not None:
            return sock
        inner = getattr(stream, "transport_stream", None)
        if inner is None:
            return None
        stream = inner
    return None


def idle_wait_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket to wait on for readability before each receive, or None.

    An idle connection parked inside receive_some keeps receive_some's frames and
    context manager alive (~1.6 KB, for each of thousands of idle cars); waiting
    for readability first parks it in trio's wait alone, and ``read_ready`` then
    reads what came (one system call, no further trip through trio's scheduler).
    Only for plain TCP: TLS and WebSocket streams read through layers of their own.
    """
    return stream.socket if type(stream) is trio.SocketStream else None


def read_ready(sock: trio.socket.SocketType) -> bytes | None:
    """What a socket that polled readable holds: b"" at its end (or broken: reset by
    the peer, or closed by us meanwhile), None if there is nothing to read after all."""
    try:
        return os.read(sock.fileno(), RECEIVE_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def set_keepalive(stream: trio.abc.Stream) -> None:
    """TCP keepalive, so half-open connections (a car that lost power) get noticed."""
    sock = stream_socket(stream)
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 120), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 4)):
        opt = getattr(socket, name, None)
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


class V2Connection:
    __slots__ = (
        "address", "conn_id", "peer", "s", "session", "stream", "tls", "welcome_deadline",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        services: Services,
        *,
        tls: bool = False,
        initial: bytes = b"",
        welcome_deadline: float | None = None,
        address: str | None = None,
    ) -> None:
        self.stream = stream
        # When the first line must be complete (trio time): the listener's sniffing
        # and this connection share one welcome timeout, so a client trickling bytes
        # cannot stretch it.
        self.welcome_deadline = (
            welcome_deadline if welcome_deadline is not None
            else trio.current_time() + services.config.welcome_timeout
        )
        self.s = services
        self.tls = tls
        self.session = ServerSession()
        # Bytes already read from the stream (the listener sniffs for WebSocket upgrades).
        self.session.receive_data(initial)
        self.conn_id = services.hub.new_id("v2-")
        # The listener passes the address it already has: one string less per connection.
        self.address = address if address is not None else peer_address(stream)
        self.peer: Peer | None = None

    def _ctx(self) -> str:
        if self.peer is not None:
            return self.peer.context()
        return f"conn={self.conn_id} addr={self.address}"

    async def run(self) -> None:
        if self.s.config.tcp_keepalive:
            set_keepalive(self.stream)
        try:
            peer = await self._welcome()
            if peer is not None:
                # Served inline, not in a coroutine of its own: one frame less for
                # each of the thousands of idle connections.
                try:
                    with peer.cancel_scope:
                        await self._start(peer)
                        stream = self.stream
                        sock = idle_wait_socket(stream)
                        # Lines that came with the welcome first.
                        while await self._handle_events(peer):
                            data: bytes | bytearray | None
                            if sock is not None:
                                # Under load the next chunk is often there already.
                                data = read_ready(sock)
                                if data is not None:
                                    # Others first, as receive_some does after a read.
                                    await trio.lowlevel.checkpoint()
                                else:
                                    await trio.lowlevel.wait_readable(sock)
                                    data = read_ready(sock)
                                    if data is None:
                                        continue  # woken, yet nothing to read after all
                            else:
                                try:
                                    data = await stream.receive_some(RECEIVE_SIZE)
                                except trio.BrokenResourceError:
                                    data = b""
                            if not data:
                                peer.close_reason = peer.close_reason or "closed by peer"
                                break
                            peer.last_rx = trio.current_time()
                            peer.rx_bytes += len(data)
                            self.session.receive_data(data)
                            del data  # up to RECEIVE_SIZE, held while idle otherwise
                finally:
                    self._end(peer)
        except RemoteProtocolError as exc:
            log.info("%s: closing: %s", self._ctx(), exc.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("%s: connection lost", self._ctx())
        except StoreError as exc:
            # A login (or its replay) the database cannot answer in time: fail it,
            # rather than keep the client waiting on a stuck disk.
            log.warning("%s: closing, database unavailable: %s", self._ctx(), exc)
        except Exception:
            # A bug met by one connection must not take the listener (and every
            # other connection) down with it.
            log.exception("%s: internal error, closing", self._ctx())
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    # --- before login ---------------------------------------------------------------------

    async def _receive(self) -> bytes | bytearray:
        data = await self.stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise trio.BrokenResourceError("peer closed the connection")
        return data

    async def _welcome(self) -> Peer | None:
        with trio.move_on_at(self.welcome_deadline):
            while True:
                event = self.session.next_event()
                if event is NEED_DATA:
                    self.session.receive_data(await self._receive())
                    continue
                if isinstance(event, ProvisionRequest):
                    record = await self.s.store.get_provision(event.apkey)
                    fields = None if record is None else (
                        record.stoken, record.sdigest, record.provisioning)
                    await self.stream.send_all(self.session.answer_provision(fields))
                    log.info("%s: AP-C %s", self._ctx(), "answered" if fields else "unknown key")
                    continue
                if isinstance(event, (Scheme0Login, Scheme1Login)):
                    return await self._login(event)
                raise RemoteProtocolError("unexpected message before login")
        log.info("%s: no welcome within %.0f s, closing",
                 self._ctx(), self.s.config.welcome_timeout)
        return None

    async def _login(self, login: Scheme0Login | Scheme1Login) -> Peer | None:
        ctype = login.client_type.label
        host = self.address.rpartition(":")[0]
        if isinstance(login, Scheme0Login):
            result = await check_scheme0(self.s.store, login, self.session.scheme0_digest_ok,
                                         self.s.login_guard, host)
            push = self.s.router.push
            if push is not None and login.client_type is ClientType.CAR:
                if isinstance(result, Granted):
                    push.auth_succeeded(result.vehicleid, host)
                elif result.wrong_secret:
                    push.auth_failed(login.vehicleid, host)
        elif not (self.tls or self.s.config.allow_plain_login):
            self.s.metrics.login(ctype, "refused")
            log.info("%s: refused %s scheme 1 login for %s: password login needs TLS "
                     "(or --allow-plain-login)", self._ctx(), ctype, login.vehicleid)
            self.session.reject()
            return None
        else:
            result = await check_scheme1(self.s.store, login, self.s.login_guard, host)
        self.s.metrics.login(ctype, "ok" if isinstance(result, Granted) else
                             "blocked" if result.blocked else "refused")
        self.s.connlog.login(login.vehicleid, ctype, self.address,
                             accepted=isinstance(result, Granted), reason=result.reason
                             if not isinstance(result, Granted) else "")
        if not isinstance(result, Granted):
            # A login the guard refused unchecked: it logged the block once.
            log_refusal = log.debug if result.blocked else log.info
            log_refusal("%s: refused %s login for vehicle %s: %s",
                        self._ctx(), ctype, login.vehicleid, result.reason)
            self.session.reject()
            return None
        if isinstance(login, Scheme0Login):
            line = self.session.accept_scheme0(result.carpass)
        else:
            line = self.session.accept_scheme1(login.username, result.vehicleid, result.vehicleids)
        await self.stream.send_all(line)
        # The peer, not the login's result: only what the connection keeps is kept.
        return self._new_peer(result, login.client_type)

    # --- after login ------------------------------------------------------------------------

    def _new_peer(self, granted: Granted, client_type: ClientType) -> Peer:
        config = self.s.config
        limit = config.outbox_size
        if client_type is not ClientType.CAR:
            # Room for the login replay (Z, at most max_stored_codes stored messages,
            # T) on top: however much a car stores, the replay cannot fill the queue.
            limit += config.max_stored_codes + 2
        return Peer(
            conn_id=self.conn_id, owner=granted.owner, vehicleid=granted.vehicleid,
            client_type=client_type,
            outbox=Outbox(limit, self._write, self.s.nursery, on_error=self._writer_failed),
            cancel_scope=trio.CancelScope(), address=self.address,
        )

    async def _start(self, peer: Peer) -> None:
        self.peer = peer
        if log.isEnabledFor(logging.INFO):  # the context is a string built per login
            log.info("%s: logged in from %s", peer.context(), self.address)
        if peer.is_car:
            self.s.hub.register(peer)
        else:
            await self.s.router.client_login(peer)

    def _end(self, peer: Peer) -> None:
        peer.outbox.close()
        flush_usage([peer], self.s.store)
        self.s.hub.unregister(peer)
        # connection -> peer -> outbox -> bound _write -> connection is a cycle;
        # breaking it lets reference counting free the connection at once
        # instead of leaving it to a (rare, see relay.gctune) full GC pass.
        self.peer = None
        if log.isEnabledFor(logging.INFO):
            log.info("%s: disconnected (%s)", peer.context(),
                     peer.close_reason or "closed by peer")

    async def _handle_events(self, peer: Peer) -> bool:
        """Hand every complete message received so far on; False if the connection must end."""
        session = self.session
        while True:
            try:
                event = session.next_event()
            except RemoteProtocolError as exc:
                log.info("%s: closing: %s", peer.context(), exc.reason)
                peer.close_reason = exc.reason
                return False
            if event is NEED_DATA:
                return True
            if isinstance(event, RefusedMessage):
                # Dropped, not fatal: the line itself was intact, so the ciphers
                # are still in step; a car's h in it is simply not acked.
                log.warning("%s: message %r dropped: %s",
                            peer.context(), event.code, event.reason)
                continue
            assert isinstance(event, Message)
            self.s.metrics.message_in(event.code)
            if peer.is_car:
                await self.s.router.from_car(peer, event, self.s.nursery)
            else:
                await self.s.router.from_client(peer, event)

    def _encode_each(self, peer: Peer, batch: list[Message]) -> bytes:
        """The batch without the messages the session refuses to put on the wire.

        Such a message (a CR or LF inside it) comes from data stored before sessions
        refused them on input, or from text another front end (REST) passed on
        unchecked; dropping that message beats dropping the client.
        """
        out = bytearray()
        for msg in batch:
            try:
                out += self.session.send(msg)
            except LocalProtocolError as exc:
                log.warning("%s: message %r not sent: %s", peer.context(), msg.code[:1], exc.reason)
        return bytes(out)

    def _writer_failed(self) -> None:
        if self.peer is not None:
            self.peer.close("internal error while sending")

    async def _write(self, batch: list[Message]) -> None:
        """Send queued messages (called by the peer's Outbox, one call at a time)."""
        peer = self.peer
        assert peer is not None
        try:
            data = self.session.send_many(batch)
        except LocalProtocolError:
            data = self._encode_each(peer, batch)
        message_out = self.s.metrics.message_out
        for msg in batch:
            message_out(msg.code)
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            peer.close("connection lost while sending")
            return
        peer.last_tx = trio.current_time()
        peer.tx_bytes += len(data)


def peer_address(stream: trio.abc.Stream) -> str:
    """``host:port`` of the peer under any of our stream wrappers, for log lines."""
    sock = stream_socket(stream)
    try:
        host, port = sock.getpeername()[:2] if sock is not None else ("?", 0)
    except OSError:
        return "?"
    return f"{host}:{port}"


__all__ = ["ClientType", "V2Connection", "peer_address", "stream_socket"]
