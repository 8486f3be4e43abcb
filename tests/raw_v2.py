"""A scheme 0 client made from ``protocol.crypto`` alone, for bytes V2Client will not send.

The official Perl tools send their digest without ``=`` padding, and an attacker
puts CR/LF inside an encrypted message; ``ClientSession`` does neither (it refuses
to encode a line break), so tests that need those bytes use this instead.
"""

from __future__ import annotations

import base64
import math

import attrs
import trio

from protocol import LineBuffer, crypto


class Closed(Exception):
    """The server closed the connection (a refused login, or later)."""


def welcome_digest(carpass: str, token: str, *, padded: bool) -> str:
    digest = crypto.hmac_md5(carpass.encode(), token.encode())
    return base64.b64encode(digest).decode() if padded else crypto.unpadded_b64(digest)


@attrs.define
class RawScheme0:
    stream: trio.abc.Stream
    tx: crypto.RC4Stream
    rx: crypto.RC4Stream
    lines: LineBuffer = attrs.field(factory=LineBuffer)

    @classmethod
    async def login(
        cls, port: int, vehicleid: str, carpass: str, client_type: str = "C", *,
        padded: bool = True, digest: str | None = None, timeout: float = 10.0,
    ) -> RawScheme0:
        """Log in; ``digest`` replaces the computed one (to send a malformed one)."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        token = crypto.make_token()
        if digest is None:
            digest = welcome_digest(carpass, token, padded=padded)
        await stream.send_all(f"MP-{client_type} 0 {token} {digest} {vehicleid}\r\n".encode())
        lines = LineBuffer()
        with trio.fail_after(timeout):
            answer = await _next_line(stream, lines)
        head, scheme, server_token, server_digest = answer.decode().split(" ")
        assert (head, scheme) == ("MP-S", "0")
        expected = crypto.hmac_md5(carpass.encode(), server_token.encode())
        assert crypto.digest_matches(expected, server_digest)
        key = crypto.session_key(carpass.encode(), server_token, token)
        return cls(stream, crypto.RC4Stream(key), crypto.RC4Stream(key), lines)

    async def send_text(self, text: str) -> None:
        """``text`` (code + data) as one encrypted line, whatever it holds."""
        payload = self.tx.apply(b"MP-0 " + text.encode("utf-8", "surrogateescape"))
        await self.stream.send_all(base64.b64encode(payload) + b"\r\n")

    async def receive_text(self, timeout: float = 10.0) -> str:
        with trio.fail_after(timeout):
            line = await _next_line(self.stream, self.lines)
        plain = self.rx.apply(base64.b64decode(line))
        assert plain.startswith(b"MP-0 "), plain
        return plain[5:].decode("utf-8", "surrogateescape")

    async def drain(self, quiet: float = 0.2) -> list[str]:
        out: list[str] = []
        while True:
            try:
                out.append(await self.receive_text(quiet))
            except trio.TooSlowError:
                return out

    async def receive_until(self, prefix: str, timeout: float = 10.0) -> list[str]:
        out: list[str] = []
        with trio.fail_after(timeout):
            while True:
                out.append(await self.receive_text(math.inf))
                if out[-1].startswith(prefix):
                    return out

    async def aclose(self) -> None:
        await self.stream.aclose()


async def _next_line(stream: trio.abc.Stream, lines: LineBuffer) -> bytes:
    while (line := lines.next_line()) is None:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            raise Closed("connection closed by the server")
        lines.feed(data)
    return line


async def closed_without_answer(stream: trio.abc.Stream, timeout: float = 10.0) -> bool:
    """True once the server closes ``stream`` having sent nothing."""
    received = b""
    with trio.move_on_after(timeout):
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                return received == b""
            received += data
    return False
