"""The OVMS v3 MQTT topic scheme, as the module's server v3 component uses it.

Everything a module publishes lives under ``<prefix>/<owner>/<vehicle id>/``
(the module's default ``topic.prefix`` is ``ovms/<user>/<vehicle id>/``; the
relay's ``--mqtt-prefix`` replaces ``ovms``):

=====================================  =====================================================
``metric/<name>``                      one retained topic per metric, the metric name's dots
                                       as slashes (``v.b.soc`` -> ``metric/v/b/soc``);
                                       ``metric/s/v3/connected`` is also the module's last
                                       will (``no``)
``notify/<type>/<subtype>``            ``info``, ``alert``, ``error``: text notifications
``notify/data/<subtype>/<id>/<age>``   a historical record; ``<age>`` is minus its age in s
``event``, ``event/<name>``            the module's events (the name as payload, or in the
                                       topic with an empty payload)
``client/<id>/active``                 a client's presence, published by the client:
                                       ``1`` (refresh within 120 s) or ``0``/empty
``client/<id>/command/<n>``            a shell command for the module, published by a client
``client/<id>/response/<n>``           the module's output for command ``<n>``
=====================================  =====================================================

``parse_topic`` is the only way in: a topic that is not under the prefix, or
whose segments could be an injection attempt (wildcards, empty or oversized
segments, non-ASCII, control characters, ``.``/``..``), is None and the caller
ignores it.
"""

from __future__ import annotations

import enum
import re
from typing import Final

import attrs

# A topic longer than this is not one a module sends: its longest are metric names
# of vehicle-specific modules (``xmi.v.b.c.voltage.max``, about 60 bytes with a
# typical prefix). MQTT allows 65,535; the bound keeps logs and parsing cheap.
MAX_TOPIC_LENGTH: Final = 512
# One segment: owner names, vehicle ids and client ids are far shorter.
MAX_SEGMENT_LENGTH: Final = 64
# Metric, notify and event names have at most a handful of dotted parts.
MAX_NAME_SEGMENTS: Final = 12

# Printable ASCII without the MQTT wildcards and the separator: anything else in a
# segment (control characters, spaces, non-ASCII) is refused.
_SEGMENT = re.compile(r'[!"$-*,-.0-9:-~]{1,' + str(MAX_SEGMENT_LENGTH) + "}")  # no '#', '+', '/'
# Segments that become parts of a dotted name must not hold a dot themselves, or
# ``metric/v.b/soc`` and ``metric/v/b/soc`` would be the same metric.
_NAME_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1," + str(MAX_SEGMENT_LENGTH) + "}")
# Command numbers we send, and a module's record ids and ages: plain decimal.
_NUMBER = re.compile(r"-?[0-9]{1,9}")


class Kind(enum.Enum):
    METRIC = "metric"
    NOTIFY = "notify"  # notify/info|alert|error/<subtype>
    DATA = "data"  # notify/data/<subtype>/<id>/<age>
    EVENT = "event"
    CLIENT_ACTIVE = "client_active"
    CLIENT_COMMAND = "client_command"
    CLIENT_RESPONSE = "client_response"


NOTIFY_TYPES: Final = frozenset({"info", "alert", "error"})


@attrs.frozen
class V3Topic:
    """One parsed topic. Which fields are set depends on ``kind``:

    - METRIC: ``name`` is the metric name with dots (``v.b.soc``).
    - NOTIFY: ``notify_type`` (info, alert, error) and ``name``, the subtype with dots.
    - DATA: ``name`` (the subtype), ``number`` (the module's entry id) and ``age``
      (seconds before publication the record was made, >= 0).
    - EVENT: ``name``, the event with dots, or "" for the plain ``event`` topic
      (whose payload is the name).
    - CLIENT_*: ``client_id``; COMMAND and RESPONSE also ``number``.
    """

    owner: str
    vehicleid: str
    kind: Kind
    name: str = ""
    notify_type: str = ""
    client_id: str = ""
    number: int | None = None
    age: int | None = None


def _segment_ok(segment: str) -> bool:
    return segment not in (".", "..") and _SEGMENT.fullmatch(segment) is not None


def _name(segments: list[str]) -> str | None:
    if not 1 <= len(segments) <= MAX_NAME_SEGMENTS:
        return None
    if not all(_NAME_SEGMENT.fullmatch(s) for s in segments):
        return None
    return ".".join(segments)


def _prefix_segments(prefix: str) -> list[str]:
    parts = prefix.split("/")
    if not all(_segment_ok(p) for p in parts):
        raise ValueError(f"MQTT prefix {prefix[:64]!r} is not a plain topic prefix")
    return parts


def parse_topic(prefix: str, topic: str) -> V3Topic | None:
    """The v3 meaning of ``topic`` under ``prefix`` (e.g. ``ovms`` or ``a/b``, without
    a trailing slash), or None if it is not one of ours or is malformed. Never
    raises on any ``topic``."""
    if len(topic) > MAX_TOPIC_LENGTH:
        return None
    try:
        head = _prefix_segments(prefix)
    except ValueError:
        return None
    parts = topic.split("/")
    if parts[: len(head)] != head:
        return None
    parts = parts[len(head):]
    if len(parts) < 3 or not _segment_ok(parts[0]) or not _segment_ok(parts[1]):
        return None
    owner, vid, section, rest = parts[0], parts[1], parts[2], parts[3:]
    if section == "metric":
        name = _name(rest)
        return None if name is None else V3Topic(owner, vid, Kind.METRIC, name)
    if section == "event":
        if not rest:
            return V3Topic(owner, vid, Kind.EVENT)
        name = _name(rest)
        return None if name is None else V3Topic(owner, vid, Kind.EVENT, name)
    if section == "notify" and rest:
        ntype, rest = rest[0], rest[1:]
        if ntype in NOTIFY_TYPES:
            name = _name(rest)
            return None if name is None else V3Topic(
                owner, vid, Kind.NOTIFY, name, notify_type=ntype)
        if ntype == "data" and len(rest) >= 3:
            name = _name(rest[:-2])
            number, age = _number(rest[-2]), _number(rest[-1])
            if name is None or number is None or number < 0 or age is None or age > 0:
                return None
            return V3Topic(owner, vid, Kind.DATA, name, notify_type="data",
                           number=number, age=-age)
        return None
    if section == "client" and len(rest) >= 2 and _segment_ok(rest[0]):
        client_id, what = rest[0], rest[1:]
        if what == ["active"]:
            return V3Topic(owner, vid, Kind.CLIENT_ACTIVE, client_id=client_id)
        if len(what) == 2 and what[0] in ("command", "response"):
            number = _number(what[1])
            if number is None or number < 0:
                return None
            kind = Kind.CLIENT_COMMAND if what[0] == "command" else Kind.CLIENT_RESPONSE
            return V3Topic(owner, vid, kind, client_id=client_id, number=number)
    return None


def _number(text: str) -> int | None:
    return int(text) if _NUMBER.fullmatch(text) else None


# --- topics the relay builds ---------------------------------------------------------


def _base(prefix: str, owner: str, vid: str) -> str:
    _prefix_segments(prefix)
    for what, value in (("owner", owner), ("vehicle id", vid)):
        if not _segment_ok(value):
            raise ValueError(f"{what} {value[:64]!r} cannot be an MQTT topic segment")
    return f"{prefix}/{owner}/{vid}"


def _client(client_id: str) -> str:
    if not _segment_ok(client_id):
        raise ValueError(f"client id {client_id[:64]!r} cannot be an MQTT topic segment")
    return client_id


def _dotted(name: str) -> str:
    segments = name.split(".")
    if _name(segments) is None:
        raise ValueError(f"name {name[:64]!r} cannot be an MQTT topic")
    return "/".join(segments)


def vehicle_topic(prefix: str, owner: str, vid: str) -> str:
    """``<prefix>/<owner>/<vid>/#``: everything of one vehicle. ValueError on bad segments."""
    return f"{_base(prefix, owner, vid)}/#"


def owner_topic(prefix: str, owner: str) -> str:
    """``<prefix>/<owner>/#``: what an owner's modules may use (the broker's ACL)."""
    _prefix_segments(prefix)
    if not _segment_ok(owner):
        raise ValueError(f"owner {owner[:64]!r} cannot be an MQTT topic segment")
    return f"{prefix}/{owner}/#"


def active_topic(prefix: str, owner: str, vid: str, client_id: str) -> str:
    return f"{_base(prefix, owner, vid)}/client/{_client(client_id)}/active"


def command_topic(prefix: str, owner: str, vid: str, client_id: str, n: int) -> str:
    if n < 0:
        raise ValueError("command number must not be negative")
    return f"{_base(prefix, owner, vid)}/client/{_client(client_id)}/command/{n}"


def response_topic(prefix: str, owner: str, vid: str, client_id: str, n: int) -> str:
    """Where the module answers command ``n`` (the simulator publishes here)."""
    if n < 0:
        raise ValueError("command number must not be negative")
    return f"{_base(prefix, owner, vid)}/client/{_client(client_id)}/response/{n}"


def metric_topic(prefix: str, owner: str, vid: str, metric: str) -> str:
    """``.../metric/v/b/soc`` for ``v.b.soc`` (the simulator publishes here)."""
    return f"{_base(prefix, owner, vid)}/metric/{_dotted(metric)}"


def connected_topic(prefix: str, owner: str, vid: str) -> str:
    """The module's online flag and last will."""
    return metric_topic(prefix, owner, vid, CONNECTED_METRIC)


def notify_topic(prefix: str, owner: str, vid: str, notify_type: str, subtype: str) -> str:
    if notify_type not in NOTIFY_TYPES:
        raise ValueError(f"notify type {notify_type!r} is not one of {sorted(NOTIFY_TYPES)}")
    return f"{_base(prefix, owner, vid)}/notify/{notify_type}/{_dotted(subtype)}"


def data_topic(prefix: str, owner: str, vid: str, subtype: str, entry: int, age: int) -> str:
    """``notify/data/<subtype>/<entry>/<-age>``, as the module publishes a record."""
    if entry < 0 or age < 0:
        raise ValueError("entry and age must not be negative")
    return f"{_base(prefix, owner, vid)}/notify/data/{_dotted(subtype)}/{entry}/{-age}"


def subscription(prefix: str) -> tuple[str, ...]:
    """The relay's subscriptions: what modules publish, for every owner and vehicle.

    Not ``client/+/active`` or ``client/+/command/+``: those are the relay's own
    (and other clients') messages to modules.
    """
    _prefix_segments(prefix)
    return (
        f"{prefix}/+/+/metric/#",
        f"{prefix}/+/+/notify/#",
        f"{prefix}/+/+/event",
        f"{prefix}/+/+/event/#",
        f"{prefix}/+/+/client/+/response/+",
    )


CONNECTED_METRIC: Final = "s.v3.connected"

__all__ = [
    "CONNECTED_METRIC",
    "MAX_SEGMENT_LENGTH",
    "MAX_TOPIC_LENGTH",
    "NOTIFY_TYPES",
    "Kind",
    "V3Topic",
    "active_topic",
    "command_topic",
    "connected_topic",
    "data_topic",
    "metric_topic",
    "notify_topic",
    "owner_topic",
    "parse_topic",
    "response_topic",
    "subscription",
    "vehicle_topic",
]
