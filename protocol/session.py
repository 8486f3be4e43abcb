"""Per-connection state machines for the OVMS v2 line protocol (sans-IO).

Like h11: feed received bytes with ``receive_data``, pull events with
``next_event`` until it returns ``NEED_DATA``; turn messages into wire bytes
with ``send``. Nothing here touches a socket, so every edge case is a unit test.

Server side::

    AWAIT_WELCOME --Scheme0Login/Scheme1Login--> AWAIT_AUTH --accept_*--> ESTABLISHED
          |  ^                                        |
          |  +--ProvisionRequest (answer_provision)   +--reject--> CLOSED
          +--garbage--> RemoteProtocolError

Once established, a line that breaks the framing (not base64, not ``MP-0 ``, no
code) is a RemoteProtocolError: the cipher streams may be out of step, the
connection must close. A line that decodes cleanly but carries a CR or LF inside
its message is a ``RefusedMessage`` event instead: that one message is dropped
(the caller logs it), the connection goes on. Sending refuses the same messages
with LocalProtocolError, so a message can never turn into two lines on the wire.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable
from typing import Final, TypeVar

import attrs

from protocol import crypto
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.framing import MAX_LINE_LENGTH, LineBuffer
from protocol.messages import ENCODING, ERRORS, Message, line_break_in
from protocol.welcome import (
    ClientType,
    ProvisionRequest,
    Scheme0Login,
    Scheme1Login,
    parse_welcome,
)

_L = TypeVar("_L", Scheme0Login, Scheme1Login)

CRLF: Final = b"\r\n"
ENCRYPTED_PREFIX: Final = b"MP-0 "


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


class State(enum.Enum):
    AWAIT_WELCOME = "await-welcome"
    AWAIT_AUTH = "await-auth"
    ESTABLISHED = "established"
    CLOSED = "closed"


@attrs.frozen
class ServerWelcome:
    """Client side: the server accepted our login (scheme 1 carries the account's vehicles)."""

    scheme: int
    vehicleids: tuple[str, ...] = ()


@attrs.frozen
class ProvisionAnswer:
    """Client side: the server's reply to ``AP-C`` (``found`` False for ``AP-X``)."""

    found: bool
    fields: tuple[str, ...] = ()


@attrs.frozen
class RefusedMessage:
    """A received line that decoded cleanly into a message no peer may send.

    Today: one with a CR or LF inside it (on a plain or WebSocket connection it
    would reach other clients as extra lines). The session stays usable; the
    caller logs ``reason`` and drops the message, so an ``h`` in it is not acked.
    """

    code: str
    reason: str


ServerEvent = Scheme0Login | Scheme1Login | ProvisionRequest | Message | RefusedMessage
ClientEvent = ServerWelcome | ProvisionAnswer | Message | RefusedMessage


class _Framer:
    """Message <-> wire line, plain (scheme 1) or RC4+base64 (scheme 0)."""

    __slots__ = ("_rx", "_tx")

    def __init__(self, rx: crypto.RC4Stream | None, tx: crypto.RC4Stream | None) -> None:
        self._rx = rx
        self._tx = tx

    def decode(self, line: bytes) -> Message | RefusedMessage:
        if self._rx is None:
            text = line
        else:
            try:
                raw = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                raise RemoteProtocolError("line is not valid base64") from None
            text = self._rx.apply(raw)
            if not text.startswith(ENCRYPTED_PREFIX):
                raise RemoteProtocolError("line does not decrypt to 'MP-0 '")
            text = text[len(ENCRYPTED_PREFIX) :]
        if not text:
            raise RemoteProtocolError("message without a code")
        msg = Message.parse(text.decode(ENCODING, ERRORS))
        if line_break_in(msg.text()):
            return RefusedMessage(msg.code, "message holds a CR or LF")
        return msg

    def encode(self, msg: Message) -> bytes:
        problem = msg.problem()
        if problem is not None:
            raise LocalProtocolError(f"cannot send {msg.code[:1]!r}: {problem}")
        body = msg.text().encode(ENCODING, ERRORS)
        if self._tx is None:
            return body + CRLF
        return base64.b64encode(self._tx.apply(ENCRYPTED_PREFIX + body)) + CRLF


def _scheme0_framer(carpass: str, server_token: str, client_token: str) -> _Framer:
    key = crypto.session_key(carpass.encode(ENCODING, ERRORS), server_token, client_token)
    return _Framer(*crypto.RC4Stream.pair(key))


class _LineSession:
    # Slots: a relay keeps one session per connection, tens of thousands at once.
    __slots__ = ("_framer", "_lines", "state")

    def __init__(self, max_line_length: int) -> None:
        self._lines = LineBuffer(max_line_length)
        self._framer: _Framer | None = None
        self.state = State.AWAIT_WELCOME

    def receive_data(self, data: bytes | bytearray) -> None:
        self._lines.feed(data)

    def send(self, msg: Message) -> bytes:
        """The wire bytes of ``msg``; LocalProtocolError if it cannot be one line."""
        if self._framer is None or self.state is not State.ESTABLISHED:
            raise LocalProtocolError(f"cannot send messages in state {self.state.value}")
        return self._framer.encode(msg)

    def send_many(self, msgs: Iterable[Message]) -> bytes:
        """All of ``msgs`` or, if any cannot be sent, LocalProtocolError and nothing.

        All are checked before any is encoded: scheme 0's cipher advances with
        every encoded message, so bytes encoded and then thrown away would put the
        peer's cipher out of step.
        """
        batch = list(msgs)
        for msg in batch:
            problem = msg.problem()
            if problem is not None:
                raise LocalProtocolError(f"cannot send {msg.code[:1]!r}: {problem}")
        return b"".join(self.send(m) for m in batch)

    def _next_line(self) -> bytes | None:
        while True:
            line = self._lines.next_line()
            if line != b"":  # blank lines carry nothing; tolerate them
                return line

    def _established_event(self) -> Message | RefusedMessage | _NeedData:
        assert self._framer is not None
        line = self._next_line()
        if line is None:
            return NEED_DATA
        return self._framer.decode(line)


class ServerSession(_LineSession):
    """The server's view of one client connection."""

    __slots__ = ("_provision_answered", "login")

    def __init__(self, max_line_length: int = MAX_LINE_LENGTH) -> None:
        super().__init__(max_line_length)
        # The login awaiting a decision; None again once accepted or rejected (a
        # relay holds tens of thousands of sessions: their tokens and digests go).
        self.login: Scheme0Login | Scheme1Login | None = None
        self._provision_answered = False

    def next_event(self) -> ServerEvent | _NeedData:
        if self.state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        if self.state is State.AWAIT_AUTH:
            # Lines after the welcome wait until the login is decided (they may be encrypted).
            return NEED_DATA
        try:
            if self.state is State.ESTABLISHED:
                return self._established_event()
            line = self._next_line()
            if line is None:
                return NEED_DATA
            event = parse_welcome(line)
        except RemoteProtocolError:
            self.state = State.CLOSED
            raise
        if isinstance(event, (Scheme0Login, Scheme1Login)):
            self.login = event
            self.state = State.AWAIT_AUTH
        return event

    def answer_provision(self, fields: tuple[str, str, str] | None) -> bytes:
        """The reply to an ``AP-C``: the record's (stoken, sdigest, provisioning) or AP-X.

        Only the first request of a connection can succeed; later ones get AP-X.
        """
        if self._provision_answered or fields is None:
            self._provision_answered = True
            return b"AP-X" + CRLF
        self._provision_answered = True
        if any(not f or " " in f or line_break_in(f) for f in fields):
            raise LocalProtocolError("a provisioning field is empty or holds a space, CR or LF")
        return ("AP-S 0 " + " ".join(fields)).encode(ENCODING, ERRORS) + CRLF

    def scheme0_digest_ok(self, carpass: str) -> bool:
        """Does the pending login's digest (padded or not) match ``carpass``?"""
        login = self._pending_login(Scheme0Login)
        expected = crypto.hmac_md5(carpass.encode(ENCODING, ERRORS), login.token.encode("ascii"))
        return crypto.digest_matches(expected, login.digest)

    def accept_scheme0(self, carpass: str, server_token: str | None = None) -> bytes:
        """Accept a scheme 0 login whose digest was checked; returns the server welcome line."""
        login = self._pending_login(Scheme0Login)
        if not self.scheme0_digest_ok(carpass):
            raise LocalProtocolError("accept_scheme0 called with a digest that does not match")
        if server_token is None:
            server_token = crypto.make_token(avoid=login.token)
        elif server_token == login.token:
            raise LocalProtocolError("server token must differ from the client token")
        digest = crypto.token_digest(carpass.encode(ENCODING, ERRORS), server_token)
        self._framer = _scheme0_framer(carpass, server_token, login.token)
        self.state = State.ESTABLISHED
        self.login = None
        return f"MP-S 0 {server_token} {digest}".encode("ascii") + CRLF

    def accept_scheme1(self, username: str, vehicleid: str, vehicleids: Iterable[str]) -> bytes:
        self._pending_login(Scheme1Login)
        line = " ".join(["MP-S 1", username, vehicleid, *vehicleids])
        if line_break_in(line):
            raise LocalProtocolError("an account or vehicle name holds a CR or LF")
        self._framer = _Framer(None, None)
        self.state = State.ESTABLISHED
        self.login = None
        return line.encode(ENCODING, ERRORS) + CRLF

    def reject(self) -> None:
        """The login failed: the protocol has no error message, the caller just closes."""
        self.state = State.CLOSED
        self.login = None

    def _pending_login(self, kind: type[_L]) -> _L:
        if self.state is not State.AWAIT_AUTH or not isinstance(self.login, kind):
            raise LocalProtocolError(f"no pending {kind.__name__} to decide")
        return self.login


class ClientSession(_LineSession):
    """A car's, app's or batch client's view of its connection (tools and tests)."""

    def __init__(
        self,
        client_type: ClientType,
        vehicleid: str,
        *,
        carpass: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        max_line_length: int = MAX_LINE_LENGTH,
    ) -> None:
        super().__init__(max_line_length)
        if (carpass is None) == (username is None or password is None):
            raise LocalProtocolError("give either carpass (scheme 0) or username+password")
        self.client_type = client_type
        self.vehicleid = vehicleid
        self._carpass = carpass
        self._username = username
        self._password = password
        self.token = token or crypto.make_token()
        self._welcome_sent = False

    def welcome(self) -> bytes:
        """The first line to send."""
        if self._welcome_sent:
            raise LocalProtocolError("welcome already sent")
        fields = [self.vehicleid, self._username or "", self._password or ""]
        if any(" " in f or line_break_in(f) for f in fields):
            raise LocalProtocolError("vehicle id, username and password cannot hold spaces, "
                                     "CR or LF")
        self._welcome_sent = True
        t = self.client_type.value
        if self._carpass is not None:
            digest = crypto.token_digest(self._carpass.encode(ENCODING, ERRORS), self.token)
            line = f"MP-{t} 0 {self.token} {digest} {self.vehicleid}"
        else:
            line = f"MP-{t} 1 {self._username} {self._password} {self.vehicleid}"
        return line.encode(ENCODING, ERRORS) + CRLF

    def next_event(self) -> ClientEvent | _NeedData:
        if self.state is State.ESTABLISHED:
            return self._established_event()
        line = self._next_line()
        if line is None:
            return NEED_DATA
        text = line.decode(ENCODING, ERRORS)
        parts = text.split(" ")
        if parts[0] == "AP-X":
            return ProvisionAnswer(False)
        if parts[0] == "AP-S":
            return ProvisionAnswer(True, tuple(parts[2:]))
        if self._carpass is not None and parts[:2] == ["MP-S", "0"] and len(parts) >= 4:
            secret = self._carpass.encode(ENCODING, ERRORS)
            if not parts[2].isascii():
                raise RemoteProtocolError("server token is not ASCII")
            expected = crypto.hmac_md5(secret, parts[2].encode("ascii"))
            if not crypto.digest_matches(expected, parts[3]):
                raise RemoteProtocolError("server digest does not match the carpass")
            self._framer = _scheme0_framer(self._carpass, parts[2], self.token)
            self.state = State.ESTABLISHED
            return ServerWelcome(0)
        if self._carpass is None and parts[:2] == ["MP-S", "1"] and len(parts) >= 4:
            self._framer = _Framer(None, None)
            self.state = State.ESTABLISHED
            return ServerWelcome(1, tuple(parts[4:]))
        raise RemoteProtocolError("unexpected server welcome")
