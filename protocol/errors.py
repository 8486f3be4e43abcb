"""Who broke the protocol: the peer (RemoteProtocolError) or our own code (LocalProtocolError)."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class; ``reason`` is a short human-readable text suitable for a log line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the connection must close."""


class LocalProtocolError(ProtocolError):
    """Our code used the session API in a way the state machine does not allow."""
