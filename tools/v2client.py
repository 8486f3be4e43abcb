"""A small trio client for the v2 protocol: the car simulator, app client and tests use it."""

from __future__ import annotations

import logging
import math
import ssl
from types import TracebackType
from typing import Any

import trio

from protocol import (
    ClientSession,
    ClientType,
    Message,
    ProvisionAnswer,
    RefusedMessage,
    ServerWelcome,
)
from relay.websocket import connect_websocket

log = logging.getLogger("ovms.v2client")


class LoginRefused(Exception):
    """The server closed the connection instead of accepting the login."""


def describe_oserror(exc: OSError) -> str:
    """The root cause of a failed connect in a few words ("Connection refused"):
    trio wraps the per-address errors in one generic OSError."""
    cause: BaseException | None = exc
    while cause is not None:
        while isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__
    return str(exc)


class V2Client:
    def __init__(self, stream: trio.abc.Stream, session: ClientSession) -> None:
        self.stream = stream
        self.session = session
        self.welcome: ServerWelcome | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        vehicleid: str,
        *,
        client_type: ClientType = ClientType.APP,
        carpass: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        websocket: bool = False,
    ) -> V2Client:
        """Connect and log in; raises LoginRefused if the server closes instead.

        ``ssl_context``: connect with TLS (the 6870 port); ``websocket``: speak the
        lines inside a WebSocket on ``/apiv2`` (ws:// or, with ``ssl_context``, wss://).
        """
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        session = ClientSession(client_type, vehicleid, carpass=carpass,
                                username=username, password=password)
        client = cls(stream, session)
        try:
            with trio.fail_after(timeout):
                if ssl_context is not None:
                    tls = trio.SSLStream(stream, ssl_context, server_hostname=host,
                                         https_compatible=True)
                    stream = tls
                    await tls.do_handshake()
                if websocket:
                    stream = await connect_websocket(stream, host)
            client.stream = stream
            await stream.send_all(session.welcome())
            with trio.fail_after(timeout):
                event = await client._next_event()
            if not isinstance(event, ServerWelcome):
                raise LoginRefused(f"unexpected answer {event!r}")
            client.welcome = event
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return client

    async def _next_event(self) -> ServerWelcome | ProvisionAnswer | Message:
        while True:
            event = self.session.next_event()
            if isinstance(event, RefusedMessage):
                log.warning("message %r from the server dropped: %s", event.code, event.reason)
                continue
            if isinstance(event, (ServerWelcome, ProvisionAnswer, Message)):
                return event
            data = await self.stream.receive_some(65536)
            if not data:
                raise LoginRefused("connection closed by the server")
            self.session.receive_data(data)

    async def send(self, code: str, data: str = "") -> None:
        await self.stream.send_all(self.session.send(Message(code, data)))

    async def receive(self, timeout: float = 10.0) -> Message:
        """The next message; raises trio.TooSlowError after ``timeout`` s, LoginRefused on close."""
        with trio.fail_after(timeout):
            event = await self._next_event()
        if not isinstance(event, Message):
            raise LoginRefused(f"unexpected event {event!r}")
        return event

    async def receive_until(self, code: str, timeout: float = 10.0) -> list[Message]:
        """Messages up to and including the first with ``code``."""
        out: list[Message] = []
        with trio.fail_after(timeout):
            while True:
                msg = await self.receive(math.inf)
                out.append(msg)
                if msg.code == code:
                    return out

    async def drain(self, quiet: float = 0.2) -> list[Message]:
        """Everything that arrives until the line is quiet for ``quiet`` seconds."""
        out: list[Message] = []
        while True:
            try:
                out.append(await self.receive(quiet))
            except trio.TooSlowError:
                return out

    async def closed_by_server(self, timeout: float = 10.0) -> bool:
        """Wait until the server closes the connection (True) or ``timeout`` passes (False)."""
        with trio.move_on_after(timeout):
            try:
                while True:
                    if not await self.stream.receive_some(65536):
                        return True
            except trio.BrokenResourceError:
                return True
        return False

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> V2Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def client_ssl_context(
    tls: bool, cafile: str | None = None, insecure: bool = False
) -> ssl.SSLContext | None:
    """The TLS settings the command-line tools offer: ``--tls``, ``--cafile``, ``--insecure``.

    ``cafile`` trusts a private CA or a self-signed certificate (``ovms-admin
    selfsigned``); ``insecure`` skips verification altogether, for trials only.
    """
    if not (tls or cafile or insecure):
        return None
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def add_login_arguments(parser: Any, *, vehicle_help: str, carpass_help: str,
                        tls_port: bool = False) -> None:
    """Where to connect and how to log in: the flags ovms-car and ovms-app share.

    With ``tls_port``, ``--port`` defaults to None: 6867, or 6870 with TLS.
    """
    parser.add_argument("--host", default="127.0.0.1")
    if tls_port:
        parser.add_argument("--port", type=int, help="v2 port (default 6867; 6870 with TLS)")
    else:
        parser.add_argument("--port", type=int, default=6867,
                            help="v2 port (default %(default)s)")
    parser.add_argument("--vehicle", required=True, metavar="ID", help=vehicle_help)
    parser.add_argument("--carpass", help=carpass_help)
    parser.add_argument("--username", help="account name (scheme 1; needs TLS or a server "
                                            "run with --allow-plain-login)")
    parser.add_argument("--password", help="account password or API token (scheme 1)")
    add_tls_arguments(parser)


def add_tls_arguments(parser: Any) -> None:
    """The TLS flags shared by ovms-car and ovms-app."""
    parser.add_argument("--tls", action="store_true",
                        help="connect with TLS (the server's v2 TLS port, 6870)")
    parser.add_argument("--cafile", metavar="FILE",
                        help="trust this CA or self-signed certificate (implies --tls)")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the server's certificate (implies --tls)")


def describe_tls_failure(exc: BaseException) -> str:
    """One line for a failed TLS handshake (trio wraps the ssl error it met)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({cause.verify_message}); try --cafile FILE"
    if isinstance(cause, ssl.SSLError):
        return cause.reason or str(cause)
    return str(cause or exc) or "connection closed during the handshake"
