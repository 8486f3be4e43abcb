"""The first line a client sends: scheme 0 / scheme 1 login or an auto-provisioning request."""

from __future__ import annotations

import enum

import attrs

from protocol import crypto
from protocol.errors import RemoteProtocolError


class ClientType(enum.Enum):
    CAR = "C"
    APP = "A"
    BATCH = "B"
    SERVER = "S"

    @property
    def label(self) -> str:
        # One shared string per type: log lines, metrics and the login log use it often.
        return _LABELS[self]


_LABELS = {t: t.name.lower() for t in ClientType}


@attrs.frozen
class Scheme0Login:
    """``MP-<type> 0 <token> <digest> <vehicleid>[ <rest>]``: shared-secret login."""

    client_type: ClientType
    token: str
    digest: str  # base64 as received, with or without its "==" padding
    vehicleid: str
    rest: str = ""

    @property
    def digest_bytes(self) -> bytes | None:
        """The 16 digest bytes, or None if ``digest`` is not base64 of 16 bytes."""
        return crypto.decode_digest(self.digest)


@attrs.frozen
class Scheme1Login:
    """``MP-<type> 1 <username> <password> <vehicleid|*>[ <rest>]``: account login."""

    client_type: ClientType
    username: str
    password: str = attrs.field(repr=False)  # never in logs
    vehicleid: str
    rest: str = ""


@attrs.frozen
class ProvisionRequest:
    """``AP-C 0 <apkey>``: a module asking for its auto-provisioning record."""

    apkey: str


Welcome = Scheme0Login | Scheme1Login | ProvisionRequest

_CLIENT_TYPES = {t.value: t for t in ClientType}


def parse_welcome(line: bytes) -> Welcome:
    """Parse a client's first line; anything unexpected is a RemoteProtocolError."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("welcome line is not ASCII") from None
    if "\r" in text or "\n" in text:
        # The server's answer repeats welcome fields (MP-S 1 <username> ...).
        raise RemoteProtocolError("welcome line holds a CR or LF")
    parts = text.split(" ")
    if len(parts) < 2:
        raise RemoteProtocolError("not a welcome line")
    head, scheme = parts[0], parts[1]
    if head == "AP-C":
        if scheme != "0" or len(parts) != 3 or not parts[2]:
            raise RemoteProtocolError("malformed AP-C request")
        return ProvisionRequest(apkey=parts[2])
    if len(head) != 4 or not head.startswith("MP-") or head[3] not in _CLIENT_TYPES:
        raise RemoteProtocolError("not a welcome line")
    client_type = _CLIENT_TYPES[head[3]]
    if scheme not in ("0", "1"):
        raise RemoteProtocolError(f"unknown login scheme {scheme[:8]!r}")
    if len(parts) < 5 or not all(parts[2:5]):
        raise RemoteProtocolError(f"scheme {scheme} welcome has too few fields")
    rest = " ".join(parts[5:])
    vehicleid = parts[4]
    if scheme == "0":
        login = Scheme0Login(client_type, parts[2], parts[3], vehicleid.upper(), rest)
        if login.digest_bytes is None:
            # Not a failed authentication: nothing was checked against a secret.
            raise RemoteProtocolError(
                f"scheme 0 digest for vehicle {login.vehicleid[:32]!r} is malformed "
                "(not base64 of 16 bytes, with or without '=' padding)")
        return login
    if vehicleid != "*":
        vehicleid = vehicleid.upper()
    return Scheme1Login(client_type, parts[2], parts[3], vehicleid, rest)
