"""Splitting a byte stream into CRLF-terminated lines, with a bound."""

from __future__ import annotations

from protocol.errors import RemoteProtocolError

# The longest legitimate lines are a car's historical records ("H"/"h"): a
# battery-cell dump of ~200 cells with voltages and temperatures runs to
# 3-4 KB of text, 5-6 KB once base64'd on the wire. 32 KiB leaves more than
# 5x headroom for that while keeping what a hostile peer can make us buffer
# small: 19,000 connections x 32 KiB worst case is ~600 MB, not unbounded.
MAX_LINE_LENGTH = 32 * 1024


class LineBuffer:
    """Accumulates received bytes and hands out complete lines without their terminator."""

    __slots__ = ("_buf", "_max", "_scan_from")

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH) -> None:
        self._buf = bytearray()
        self._max = max_line_length
        self._scan_from = 0

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def next_line(self) -> bytes | None:
        """The next complete line (CRLF or bare LF stripped), or None if more data is needed.

        Raises RemoteProtocolError once the pending, unterminated data exceeds the bound.
        """
        idx = self._buf.find(b"\n", self._scan_from)
        if idx < 0:
            self._scan_from = len(self._buf)
            # The bound is on the line without its terminator: a full-length line
            # may be pending with its CR, waiting for the LF.
            excess = len(self._buf) - self._max
            if excess > 1 or (excess == 1 and self._buf[-1] != 0x0D):
                raise RemoteProtocolError(f"line longer than {self._max} bytes")
            return None
        end = idx - 1 if idx > 0 and self._buf[idx - 1] == 0x0D else idx
        if end > self._max:
            raise RemoteProtocolError(f"line longer than {self._max} bytes")
        line = bytes(self._buf[:end])
        del self._buf[: idx + 1]
        self._scan_from = 0
        return line

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a line."""
        return len(self._buf)
