"""What travels on the bus: msgpack envelopes, one attrs class per kind.

An envelope is a msgpack array: a kind tag, then the fields in declaration order.
A v2 message is ``[code, data]``. Every envelope about presence carries the
sender's node id and restart counter (``epoch``): a node seen with a higher epoch
has restarted and loses what its previous run had announced.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgpack

from protocol import Message


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this version understands."""


@attrs.frozen
class Relay:
    """The car's node to the vehicle's clients on other nodes."""

    node: str
    vehicleid: str
    msgs: tuple[Message, ...]


@attrs.frozen
class ToCar:
    """A client's message (``E``) for the car, from another node."""

    node: str
    vehicleid: str
    msg: Message


@attrs.frozen
class Command:
    """A client's command for the car; answers go to ``node``'s inbox with ``token``."""

    node: str
    vehicleid: str
    token: int
    command: int
    msg: Message


@attrs.frozen
class Answer:
    """One answer line for command ``token``; ``msg`` None: no more (the car left)."""

    token: int
    msg: Message | None


@attrs.frozen
class Counts:
    """A node's clients of one vehicle: interactive apps (the ``Z`` count), batch
    clients and console watchers (these two only make the node want the traffic)."""

    node: str
    epoch: int
    vehicleid: str
    apps: int
    batch: int
    watchers: int

    @property
    def interested(self) -> bool:
        return self.apps + self.batch + self.watchers > 0


@attrs.frozen
class CarOnline:
    """A car logged in on ``node`` at wall-clock time ``since`` (newest login wins)."""

    node: str
    epoch: int
    vehicleid: str
    since: float


@attrs.frozen
class CarOffline:
    node: str
    epoch: int
    vehicleid: str


@attrs.frozen
class CarList:
    """Some of the cars a node holds: (vehicle id, since) pairs."""

    node: str
    epoch: int
    cars: tuple[tuple[str, float], ...]


@attrs.frozen
class Beat:
    """A node is alive. ``hello``: it (re)joined and asks for everyone's state;
    ``bye``: it is stopping and its entries go now."""

    node: str
    epoch: int
    hello: bool = False
    bye: bool = False


@attrs.frozen
class SyncRequest:
    """Send me your cars and your counts for my cars (a node seen anew)."""

    node: str
    epoch: int


@attrs.frozen
class GroupData:
    """Cars' data for a group: (vehicle id, data) pairs. ``token`` 0: a live update to
    every subscriber; else the answer to a subscriber's query."""

    node: str
    group: str
    items: tuple[tuple[str, str], ...]
    token: int = 0


@attrs.frozen
class GroupQuery:
    node: str
    group: str
    token: int


@attrs.frozen
class Notice:
    """Something every other node must act on (``HubApi.announce``): a vehicle deleted,
    an owner renamed, a vehicle's v4 monitors changed. ``topic`` names the handler."""

    node: str
    topic: str
    args: tuple[str, ...]


Envelope = (Relay | ToCar | Command | Answer | Counts | CarOnline | CarOffline | CarList
            | Beat | SyncRequest | GroupData | GroupQuery | Notice)

_KINDS: tuple[type[Any], ...] = (Relay, ToCar, Command, Answer, Counts, CarOnline,
                                 CarOffline, CarList, Beat, SyncRequest, GroupData,
                                 GroupQuery, Notice)
_TAG = {kind: tag for tag, kind in enumerate(_KINDS)}
_RELAY = _TAG[Relay]


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return [value.code, value.data]
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def pack(env: Envelope) -> bytes:
    fields = [_plain(getattr(env, f.name)) for f in attrs.fields(type(env))]
    data: bytes = msgpack.packb([_TAG[type(env)], *fields], use_bin_type=True)
    return data


def pack_relay(node: str, vehicleid: str, msgs: tuple[Message, ...]) -> bytes:
    """``pack(Relay(...))`` without building the envelope: the hot path."""
    data: bytes = msgpack.packb(
        [_TAG[Relay], node, vehicleid, [[m.code, m.data] for m in msgs]], use_bin_type=True)
    return data


def _message(value: Any) -> Message:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, str) for v in value)):
        raise EnvelopeError("bad message")
    return Message(value[0], value[1])


def _pairs(value: Any, second: type | tuple[type, ...]) -> tuple[tuple[Any, Any], ...]:
    if not isinstance(value, list):
        raise EnvelopeError("bad list")
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], second)):
            raise EnvelopeError("bad pair")
        out.append((item[0], item[1]))
    return tuple(out)


def unpack(data: bytes) -> Envelope:
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EnvelopeError(f"not msgpack: {exc}") from None
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], int):
        raise EnvelopeError("not an envelope")
    tag, fields = raw[0], raw[1:]
    if tag == _RELAY and len(fields) == 3 and isinstance(fields[0], str) \
            and isinstance(fields[1], str) and isinstance(fields[2], list):
        # The hot path: every relayed car message (the same checks as below).
        return Relay(fields[0], fields[1], tuple(_message(v) for v in fields[2]))
    if not 0 <= tag < len(_KINDS):
        raise EnvelopeError(f"unknown envelope kind {tag}")
    kind = _KINDS[tag]
    specs = attrs.fields(kind)
    if len(fields) != len(specs):
        raise EnvelopeError(f"{kind.__name__}: {len(fields)} fields")
    values: list[Any] = []
    for spec, value in zip(specs, fields, strict=True):
        typ = spec.type
        if typ == "Message":
            value = _message(value)
        elif typ == "Message | None":
            value = None if value is None else _message(value)
        elif typ == "tuple[Message, ...]":
            if not isinstance(value, list):
                raise EnvelopeError("bad messages")
            value = tuple(_message(v) for v in value)
        elif typ == "tuple[tuple[str, float], ...]":
            value = _pairs(value, (int, float))
        elif typ == "tuple[tuple[str, str], ...]":
            value = _pairs(value, str)
        elif typ == "tuple[str, ...]":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise EnvelopeError(f"{spec.name}: not a list of strings")
            value = tuple(value)
        elif typ == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise EnvelopeError(f"{spec.name}: not a number")
            value = float(value)
        elif typ in ("int", "str", "bool"):
            expected = {"int": int, "str": str, "bool": bool}[typ]
            if not isinstance(value, expected) or (typ == "int" and isinstance(value, bool)):
                raise EnvelopeError(f"{spec.name}: not {typ}")
        else:  # pragma: no cover - a field type added without its check
            raise EnvelopeError(f"{spec.name}: unchecked type {typ}")
        values.append(value)
    env: Envelope = kind(*values)
    return env
