"""A minimal HTTP/1.1 GET client on trio streams for ``ovms-bench``.

The load generator's own cost per request must stay far below the server's, so
this is a few string operations per request rather than a general client
(httpx costs ~1 ms of CPU per request, as much as the server under test).
"""

from __future__ import annotations

import attrs
import trio

MAX_HEADER_BYTES = 65536


class HTTPError(Exception):
    """The server's answer was not HTTP we understand, or the connection broke."""


@attrs.define
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


@attrs.define
class HTTPConnection:
    """One connection; ``get`` may be called again while the server keeps it alive."""

    stream: trio.abc.Stream
    host: str
    buffer: bytearray = attrs.field(factory=bytearray)

    @classmethod
    async def open(cls, host: str, port: int) -> HTTPConnection:
        return cls(await trio.open_tcp_stream(host, port), host)

    async def get(self, target: str, headers: dict[str, str] | None = None,
                  close: bool = False) -> Response:
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if close:
            lines.append("Connection: close")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            await self.stream.send_all(request)
            return await self._response()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise HTTPError(f"connection broke: {exc}") from None

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise HTTPError("connection closed before the response was complete")
        self.buffer += data

    async def _response(self) -> Response:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise HTTPError("response headers too long")
            await self._fill()
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HTTPError(f"bad status line {head[0]!r}") from None
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        elif "content-length" in headers:
            body = await self._exactly(int(headers["content-length"]))
        else:  # HTTP/1.0 style: the body runs to the end of the connection
            while True:
                try:
                    await self._fill()
                except HTTPError:
                    break
            body, self.buffer = bytes(self.buffer), bytearray()
        return Response(status, headers, body)

    async def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            await self._fill()
        out = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return out

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self._line()).split(b";")[0], 16)
            if size == 0:
                while await self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(await self._exactly(size))
            await self._line()

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def get_once(host: str, port: int, target: str,
                   headers: dict[str, str] | None = None) -> Response:
    """One request on a new connection, closed afterwards."""
    conn = await HTTPConnection.open(host, port)
    try:
        return await conn.get(target, headers, close=True)
    finally:
        await conn.aclose()
