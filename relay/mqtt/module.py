"""One v3 module as the hub sees it: a car ``Peer`` whose outbox leads to the broker.

A v2 car's outbox feeds its TCP connection; a v3 module's ``ModuleOutbox`` feeds
the gateway's one "to modules" task instead, which turns what the hub sends a car
into MQTT: ``Z`` (app count) into presence, ``C`` into a shell command, ``A``
(the sweeper's ping) into a liveness mark (the broker, through the module's last
will, is the judge of whether a module is there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import attrs
import trio

from protocol import ClientType, Message
from protocol.ovms_v3.state import VehicleState
from relay.hubapi import Peer

if TYPE_CHECKING:
    from relay.outbox import Outbox

log = logging.getLogger("relay.mqtt")

# Commands a module may leave unanswered before the oldest is given up.
MAX_PENDING = 64

# (vehicle id, message) pairs for the gateway's "to modules" task.
ToModules = trio.MemorySendChannel[tuple["V3Module", Message]]


class ModuleOutbox:
    """What a v3 module's car ``Peer`` has as outbox (``send_nowait``/``close``)."""

    def __init__(self, module: V3Module, channel: ToModules) -> None:
        self._module = module
        self._channel = channel
        self.closed = False

    def send_nowait(self, msg: Message) -> None:
        """Raises trio.WouldBlock when the gateway is behind: the hub then closes the
        peer, as for a v2 car that stopped reading."""
        if not self.closed:
            self._channel.send_nowait((self._module, msg))

    def close(self) -> None:
        self.closed = True


@attrs.define
class PendingCommand:
    number: int  # the v2 command number the answer is for
    sent_at: float  # trio time


@attrs.define(eq=False)
class V3Module:
    """One vehicle's module, known since its first valid message."""

    vehicleid: str
    owner: str
    checked_at: float  # trio time its owner was last checked against the store
    state: VehicleState = attrs.field(factory=VehicleState)
    peer: Peer | None = None  # registered with the hub while the module is online
    # A Peer for storing and relaying while the module is offline (retained metrics
    # at startup, a last record before the will): never registered with the hub.
    idle_peer: Peer | None = None
    dirty: set[str] = attrs.field(factory=set)
    # Presence: True while the relay has told the module "active 1".
    active: bool = False
    # The hub's last ``Z`` to the module's peer was not 0 (apps or REST registrations).
    apps: bool = False
    # After the relay reconnects to the broker: an online module must say so again
    # (its retained flag, or its own reconnect) by then (trio time), or it is
    # taken offline: a module that died while the broker was down left no will.
    confirm_by: float | None = None
    next_command: int = 1
    pending: dict[int, PendingCommand] = attrs.field(factory=dict)

    def context(self) -> str:
        return f"vehicle={self.vehicleid} type=car(v3)"

    def new_peer(self, conn_id: str, channel: ToModules) -> Peer:
        return Peer(conn_id=conn_id, owner=self.owner, vehicleid=self.vehicleid,
                    client_type=ClientType.CAR,
                    # Peer.outbox takes anything with send_nowait/close (relay.hubapi);
                    # the hub asks for more (limit, len) only through getattr.
                    outbox=cast("Outbox", ModuleOutbox(self, channel)),
                    cancel_scope=trio.CancelScope(), address=f"mqtt:{self.owner}")

    def sending_peer(self, new_id: Callable[[str], str], channel: ToModules) -> Peer:
        """The peer the router stores and relays this module's messages as."""
        if self.peer is not None:
            return self.peer
        if self.idle_peer is None:
            self.idle_peer = self.new_peer(new_id("v3-"), channel)
        return self.idle_peer

    def add_command(self, number: int, now: float) -> int:
        """A command id for the topic, remembering which v2 command it answers."""
        n = self.next_command
        self.next_command += 1
        self.pending[n] = PendingCommand(number, now)
        return n


__all__ = ["MAX_PENDING", "ModuleOutbox", "PendingCommand", "ToModules", "V3Module"]
