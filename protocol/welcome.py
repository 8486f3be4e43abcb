"""The first line a client sends: scheme 0 / scheme 1 login or an auto-provisioning request."""

from __future__ import annotations

import enum

import attrs

from protocol.errors import RemoteProtocolError


class ClientType(enum.Enum):
    CAR = "C"
    APP = "A"
    BATCH = "B"
    SERVER = "S"

    @property
    def label(self) -> str:
        return self.name.lower()


@attrs.frozen
class Scheme0Login:
    """``MP-<type> 0 <token> <digest> <vehicleid>[ <rest>]``: shared-secret login."""

    client_type: ClientType
    token: str
    digest: str
    vehicleid: str
    rest: str = ""


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
        return Scheme0Login(client_type, parts[2], parts[3], vehicleid.upper(), rest)
    if vehicleid != "*":
        vehicleid = vehicleid.upper()
    return Scheme1Login(client_type, parts[2], parts[3], vehicleid, rest)
