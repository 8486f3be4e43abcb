"""The HTTP/1.1 listener: trio streams, h11 for the protocol, keep-alive.

One task per connection reads a request, lets ``HttpApi.handle`` answer it and
writes the answer, then waits for the next request on the same connection.
Bounds: a request head of 16 KiB, a body of 64 KiB; a connection idle between
requests for ``api_keepalive_timeout`` is closed, and a request must arrive
complete within ``api_request_timeout`` of its first byte (slow-loris).
"""

from __future__ import annotations

import contextlib
import email.utils
import http
import logging
import ssl
import time
from collections.abc import AsyncGenerator

import h11
import trio

from relay.boundary import close_stream, connection_failed, serve_self_closing
from relay.http.api import HttpApi, api_for
from relay.http.messages import Request, Response, text_response
from relay.http.proxy import client_address
from relay.listen import open_tcp_listeners
from relay.services import Services

log = logging.getLogger("relay.http.server")

RECEIVE_SIZE = 65536
# Real API requests have a short head (a cookie at most) and a tiny form body.
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024

_REASONS = {s.value: s.phrase.encode("ascii") for s in http.HTTPStatus}
_STATIC_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"cache-control", b"max-age=0"),
)


class _DateHeader:
    """The Date header, formatted once per second rather than once per answer."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode("ascii")
        return self._value


_date = _DateHeader()


class _Closed(Exception):
    """The connection ended (peer closed, protocol error answered, timeout)."""


class HttpConnection:
    def __init__(self, stream: trio.abc.Stream, api: HttpApi, *, tls: bool,
                 host: str | None = None) -> None:
        self.stream = stream
        self.api = api
        self.tls = tls
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.conn_id = api.services.hub.new_id("h")
        self.host = host if host is not None else _peer_host(stream)

    async def run(self) -> None:
        config = self.api.config
        first = True
        try:
            while True:
                idle = config.api_request_timeout if first else config.api_keepalive_timeout
                request = await self._read_request(idle, config.api_request_timeout)
                first = False
                response = await self.api.handle(request)
                await self._send(response, head_only=request.method == "HEAD")
                if self.conn.our_state is h11.MUST_CLOSE:
                    return
                self.conn.start_next_cycle()
        except _Closed:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except h11.LocalProtocolError as exc:
            # E.g. the client still sending a body we did not read: just close.
            log.debug("http conn=%s: closing: %s", self.conn_id, exc)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _receive(self) -> None:
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError):
            raise _Closed from None
        self.conn.receive_data(bytes(data))  # a no-op for bytes, which trio returns

    async def _read_request(self, idle: float, request_timeout: float) -> Request:
        """The next complete request; raises _Closed when there is none to answer."""
        with trio.CancelScope(deadline=trio.current_time() + idle) as scope:
            try:
                return await self._read_request_inner(scope, request_timeout)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                log.debug("http conn=%s: bad request: %s", self.conn_id, exc)
                await self._refuse(status, "Bad request" if status == 400 else
                                   http.HTTPStatus(status).phrase)
                raise _Closed from None
        # The deadline passed: idle keep-alive connection, or a request too slow to arrive.
        raise _Closed

    async def _read_request_inner(self, scope: trio.CancelScope, request_timeout: float
                                  ) -> Request:
        started = False
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if head is not None and self.conn.they_are_waiting_for_100_continue:
                    await self.stream.send_all(self.conn.send(
                        h11.InformationalResponse(status_code=100, headers=[])))
                await self._receive()
                if not started:
                    started = True
                    scope.deadline = trio.current_time() + request_timeout
                continue
            if isinstance(event, h11.Request):
                # h11 bounds a head still arriving; one that arrived whole is checked here.
                if len(event.target) + sum(len(n) + len(v) for n, v in event.headers) > MAX_HEAD:
                    await self._refuse(431, "Request header fields too large")
                    raise _Closed
                head = event
                started = True
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    await self._refuse(413, "Request body too large")
                    raise _Closed
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return self._request(head, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise _Closed
            else:  # PAUSED: only after a response, which never happens here
                raise _Closed

    def _request(self, head: h11.Request, body: bytes) -> Request:
        headers: dict[bytes, bytes] = {}
        for name, value in head.headers:
            headers[name] = headers[name] + b", " + value if name in headers else value
        target = head.target.decode("utf-8", "replace")
        if not target.startswith("/"):
            # Absolute form (a proxy-style request): keep the path and query only.
            target = "/" + target.split("://", 1)[-1].partition("/")[2]
        path, _, query = target.partition("?")
        return Request(
            method=head.method.decode("ascii", "replace"),
            path=path,
            query=query,
            headers=headers,
            body=body,
            client_host=client_address(self.host, headers, self.api.trusted_proxies),
            conn_id=self.conn_id,
            tls=self.tls,
        )

    async def _refuse(self, status: int, text: str) -> None:
        """Answer a request we will not read to the end, then the connection closes."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = text_response(status, text)
        try:
            await self._send(response, head_only=False, close=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass

    async def _send(self, response: Response, *, head_only: bool, close: bool = False) -> None:
        try:
            head = _head(response, close)
        except h11.LocalProtocolError as exc:
            # A handler put something h11 will not send (a CR, a trailing space) into a
            # header: a 500 rather than a silent close. h11 checks the event when it is
            # made, before the connection's state changes, so the 500 can still go out.
            log.warning("http conn=%s: unsendable %d answer (%s), answering 500",
                        self.conn_id, response.status, exc)
            response = text_response(500, "Internal server error")
            head = _head(response, close)
        conn = self.conn
        data = conn.send(head)
        body = response.body
        if response.stream is not None:
            await self.stream.send_all(data)
            if head_only:
                await response.stream.aclose()
            else:
                await self._send_stream(response.stream)
            data = b""
        elif body and not head_only and response.status not in (204, 304):
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)


    async def _send_stream(self, body: AsyncGenerator[bytes, None]) -> None:
        """A streamed body (server-sent events), until it ends or the client leaves.

        An event stream may be quiet for long, so the client's leaving is watched for
        (end of its stream) rather than found at the next write.
        """
        gone = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal gone
                try:
                    while data := await self.stream.receive_some(RECEIVE_SIZE):
                        self.conn.receive_data(bytes(data))  # a next request, kept for h11
                except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError):
                    pass
                gone = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            # Caught here, not around the nursery: it would wrap them in an ExceptionGroup
            # that no handler of a single connection's errors catches.
            try:
                async with contextlib.aclosing(body) as chunks:
                    async for chunk in chunks:
                        await self.stream.send_all(self.conn.send(h11.Data(data=chunk)))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                gone = True
            except Exception:
                log.exception("http conn=%s: streamed answer failed", self.conn_id)
                gone = True
            nursery.cancel_scope.cancel()
        if gone:
            raise _Closed


def _head(response: Response, close: bool) -> h11.Response:
    """The h11 response head; raises h11.LocalProtocolError for an invalid header."""
    own = {name for name, _ in response.headers}
    headers = [
        (b"content-type", response.content_type),
        *(() if response.stream is not None
          else ((b"content-length", str(len(response.body)).encode("ascii")),)),
        *(h for h in _STATIC_HEADERS if h[0] not in own),
        (b"date", _date.value()),
        *response.headers,
    ]
    if close:
        headers.append((b"connection", b"close"))
    return h11.Response(status_code=response.status, headers=headers,
                        reason=_REASONS.get(response.status, b""))


def _peer_host(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:
        sock = getattr(getattr(stream, "transport_stream", None), "socket", None)
    try:
        host: str = sock.getpeername()[0] if sock is not None else "?"
    except OSError:
        return "?"
    return host


async def _handshake(stream: trio.SSLStream[trio.SocketStream], timeout: float) -> bool:
    """The TLS handshake, bounded: scanners and plain-HTTP clients end here, quietly."""
    with trio.move_on_after(timeout):
        try:
            await stream.do_handshake()
            return True
        except trio.BrokenResourceError as exc:
            log.debug("https addr=%s: TLS handshake failed: %s", _peer_host(stream),
                      exc.__cause__ or exc)
            return False
    log.debug("https addr=%s: no TLS handshake within %.0f s", _peer_host(stream), timeout)
    return False


async def serve_http(
    services: Services,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The REST API listener (nursery start protocol: started with the listeners).

    With ``ssl_context``, every accepted connection is wrapped in TLS (HTTPS).
    """
    api = api_for(services)
    tls = ssl_context is not None
    listener = "https" if tls else "http"

    async def handler(stream: trio.SocketStream) -> None:
        host = _peer_host(stream)  # while the socket is open, for the boundary's line
        try:
            wrapped: trio.abc.Stream = stream
            if ssl_context is not None:
                wrapped = trio.SSLStream(stream, ssl_context, server_side=True,
                                         https_compatible=True)
                if not await _handshake(wrapped, api.config.tls_handshake_timeout):
                    return
            await HttpConnection(wrapped, api, tls=tls, host=host).run()
        except Exception as exc:
            # Nothing a client sends may end the process: this connection only.
            connection_failed(listener, host, exc)
        finally:
            await close_stream(stream)

    listeners = await open_tcp_listeners(port, host=host, reuse_port=services.config.reuse_port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(api.maintain)
        task_status.started(listeners)
        # The handler closes its stream itself: no wrapper task per connection.
        await serve_self_closing(handler, listeners, "http connection")
