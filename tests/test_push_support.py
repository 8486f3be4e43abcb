"""Stand-ins for the push services, used by the test_push_* modules.

Each is a real server on a loopback port run in the test's nursery: an HTTP/1.1
server (trio + h11) for webhook, ntfy, Expo and FCM, an HTTP/2 prior-knowledge
server (trio + h2) for APNs, and a minimal SMTP server. They record what they
receive and answer from a per-path script.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import h2.config
import h2.connection
import h2.events
import h11
import trio


@attrs.frozen
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    hang: bool = False  # never answer (the client times out or goes away)

    @classmethod
    def json(cls, status: int, value: Any, *headers: tuple[str, str]) -> Reply:
        return cls(status, json.dumps(value).encode(),
                   (("content-type", "application/json"), *headers))


@attrs.frozen
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Reply | Callable[[Recorded], Reply]


@attrs.define
class FakeService:
    """Records requests; answers each path from its script, then with ``default``."""

    default: Responder = attrs.field(factory=Reply)
    requests: list[Recorded] = attrs.field(factory=list)
    scripts: dict[str, list[Responder]] = attrs.field(factory=dict)
    port: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Responder) -> None:
        self.scripts.setdefault(path, []).extend(replies)

    def _record(self, request: Recorded) -> Reply:
        self.requests.append(request)
        self._changed.set()
        self._changed = trio.Event()
        queue = self.scripts.get(request.path)
        responder = queue.pop(0) if queue else self.default
        return responder(request) if callable(responder) else responder

    def on(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, path: str | None = None,
                       timeout: float = 15.0) -> list[Recorded]:
        """The first ``count`` requests (to ``path``), waiting for them to arrive."""
        with trio.fail_after(timeout):
            while True:
                seen = self.requests if path is None else self.on(path)
                if len(seen) >= count:
                    return seen[:count]
                await self._changed.wait()

    async def start(self, nursery: trio.Nursery, serve: Callable[[trio.SocketStream],
                    Awaitable[None]] | None = None) -> FakeService:
        listeners = await nursery.start(
            partial(trio.serve_tcp, serve or self._serve_http1, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def _serve_http1(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = None, b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        conn.receive_data(data)
                        if not data and conn.their_state is not h11.DONE:
                            return
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                reply = self._record(Recorded(
                    request.method.decode(), request.target.decode(),
                    {k.decode().lower(): v.decode() for k, v in request.headers}, body))
                if reply.hang:
                    await trio.sleep_forever()
                headers = [*reply.headers, ("content-length", str(len(reply.body)))]
                await stream.send_all(conn.send(h11.Response(status_code=reply.status,
                                                             headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=reply.body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def serve_h2c(self, stream: trio.SocketStream) -> None:
        """HTTP/2 with prior knowledge (no TLS, no upgrade), as APNs' stand-in."""
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        heads: dict[int, dict[str, str]] = {}
        bodies: dict[int, bytes] = {}
        try:
            await stream.send_all(conn.data_to_send())
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        heads[event.stream_id] = {str(k): str(v) for k, v in event.headers}
                        bodies[event.stream_id] = b""
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        head = heads.pop(event.stream_id)
                        reply = self._record(Recorded(
                            head[":method"], head[":path"], head, bodies.pop(event.stream_id)))
                        conn.send_headers(event.stream_id, [
                            (":status", str(reply.status)), *reply.headers,
                            ("content-length", str(len(reply.body)))])
                        conn.send_data(event.stream_id, reply.body, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                await stream.send_all(conn.data_to_send())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)


@attrs.define
class FakeSmtp:
    """Just enough SMTP for smtplib: records (envelope recipients, message text)."""

    mails: list[tuple[list[str], str]] = attrs.field(factory=list)
    port: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def start(self, nursery: trio.Nursery) -> FakeSmtp:
        listeners = await nursery.start(partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[list[str], str]]:
        with trio.fail_after(timeout):
            while len(self.mails) < count:
                await self._changed.wait()
        return self.mails[:count]

    async def _serve(self, stream: trio.SocketStream) -> None:
        buffer = b""

        async def line() -> bytes:
            nonlocal buffer
            while b"\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    raise trio.BrokenResourceError
                buffer += data
            text, _, buffer = buffer.partition(b"\r\n")
            return text

        recipients: list[str] = []
        try:
            await stream.send_all(b"220 fake ESMTP\r\n")
            while True:
                command = (await line()).decode()
                verb = command[:4].upper()
                if verb in ("EHLO", "HELO"):
                    await stream.send_all(b"250 fake\r\n")
                elif verb == "RCPT":
                    recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                    await stream.send_all(b"250 ok\r\n")
                elif verb == "DATA":
                    await stream.send_all(b"354 go ahead\r\n")
                    lines = []
                    while (text := await line()) != b".":
                        lines.append(text[1:] if text.startswith(b".") else text)
                    self.mails.append((recipients, b"\r\n".join(lines).decode()))
                    recipients = []
                    self._changed.set()
                    self._changed = trio.Event()
                    await stream.send_all(b"250 queued\r\n")
                elif verb == "QUIT":
                    await stream.send_all(b"221 bye\r\n")
                    return
                else:  # MAIL, RSET, NOOP
                    await stream.send_all(b"250 ok\r\n")
        except trio.BrokenResourceError:
            return
        finally:
            await trio.aclose_forcefully(stream)
