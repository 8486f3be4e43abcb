"""NATS subject names of the bus, all under one configurable prefix.

Per vehicle (a node subscribes only while it holds the vehicle's car or clients):

- ``<prefix>.v.<vehicle>.a``: what the car's node relays to the vehicle's clients
- ``<prefix>.v.<vehicle>.c``: what other nodes send to the car (``E``, commands)
- ``<prefix>.v.<vehicle>.p``: other nodes' client counts, for the car's ``Z``

Per cluster (every node subscribes): ``<prefix>.hb`` (heartbeats), ``<prefix>.cars``
(cars logging in and out: the directory), ``<prefix>.gq`` (group data queries),
``<prefix>.x`` (notices: what every node must act on, e.g. a vehicle deleted).
Per node: ``<prefix>.n.<node>`` (its inbox: answers, counts, directory syncs). Per
group: ``<prefix>.g.<group>`` while a node has a subscriber of the group.

Vehicle ids, node ids and group names are free text; a NATS subject token cannot
hold ``.``, ``*``, ``>`` or white space, so anything beyond ``[A-Za-z0-9_-]`` is
written as ``=`` and the UTF-8 bytes in hex (``=`` cannot start a plain token).
"""

from __future__ import annotations

import re

import attrs

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
# Per-vehicle kinds
APPS = "a"
CAR = "c"
PRESENCE = "p"


def token(text: str) -> str:
    """``text`` as one subject token, the same for the same text on every node."""
    if _PLAIN.fullmatch(text):
        return text
    return "=" + text.encode("utf-8", "surrogatepass").hex()


@attrs.frozen
class Subjects:
    prefix: str = "ovms"

    def __attrs_post_init__(self) -> None:
        parts = self.prefix.split(".")
        if not self.prefix or not all(_PLAIN.fullmatch(p) for p in parts):
            raise ValueError(f"bus subject prefix {self.prefix!r}: dot-separated words of "
                             "letters, digits, - and _")

    def vehicle(self, vehicleid: str, kind: str) -> str:
        return f"{self.prefix}.v.{token(vehicleid)}.{kind}"

    def inbox(self, node: str) -> str:
        return f"{self.prefix}.n.{token(node)}"

    def group(self, group: str) -> str:
        return f"{self.prefix}.g.{token(group)}"

    @property
    def heartbeat(self) -> str:
        return f"{self.prefix}.hb"

    @property
    def cars(self) -> str:
        return f"{self.prefix}.cars"

    @property
    def notices(self) -> str:
        return f"{self.prefix}.x"

    @property
    def group_query(self) -> str:
        return f"{self.prefix}.gq"
