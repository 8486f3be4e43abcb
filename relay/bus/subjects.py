"""NATS subject names of the bus, all under one configurable prefix.

Per node: ``<prefix>.n.<node>`` (its inbox: everything addressed to it: messages for
the clients it holds of another node's car, ``E`` and commands for its cars, client
counts, command answers, directory syncs). Per cluster (every node subscribes):
``<prefix>.hb`` (heartbeats), ``<prefix>.cars`` (cars logging in and out: the
directory), ``<prefix>.gq`` (group data queries), ``<prefix>.x`` (notices: what every
node must act on, e.g. a vehicle deleted, and an app's own ``P``). Per group:
``<prefix>.g.<group>`` while a node has a subscriber of the group. There is no
subject per vehicle: the car's node knows which nodes want its traffic (their
counts), the others know the car's node (the directory).

Node ids and group names are free text; a NATS subject token cannot hold ``.``,
``*``, ``>`` or white space, so anything beyond ``[A-Za-z0-9_-]`` is written as ``=``
and the UTF-8 bytes in hex (``=`` cannot start a plain token).
"""

from __future__ import annotations

import re

import attrs

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


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
