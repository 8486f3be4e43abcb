"""The hub interface: what connections, REST and v4 need of "who is connected where".

Callers (the v2 connections, the router, REST sessions and control, v4, the
sweeper) type against ``HubApi``, never against an implementation. Today's
implementation is ``relay.hub.Hub``, which keeps every registry in this process.
A bus-backed hub (several relay processes sharing a message bus) implements the
same Protocol: ``register`` / ``deliver`` then reach connections held by other
processes, and nothing above the hub changes.

``Peer`` and ``CommandWaiter`` are the shapes that cross the interface: one
logged-in connection of this process, and a non-connection sender (an HTTP
request) waiting for a car's answer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from protocol import ClientType, Message

if TYPE_CHECKING:
    from relay.outbox import Outbox


def _trio_now() -> float:
    """Trio's clock now; 0 outside a trio run (a peer built by hand for a sync check)."""
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0


class BusStatus(enum.Enum):
    """Where a process stands with the cluster's bus (``/readyz``)."""

    NONE = "none"  # one process: no bus
    JOINING = "joining"  # not yet connected since the process started
    UP = "up"
    LOST = "lost"  # was connected, is not now (nats-py is reconnecting)


@attrs.frozen
class Liveness:
    """When a sweep closes a silent connection and pings a quiet car (PROTOCOL.md
    section 6); durations on trio's clock."""

    timeouts: dict[ClientType, float]  # silence before closing, per client type
    ping_after: float  # a car sent nothing for this long gets ``A``...
    ping_every: float  # ...at most this often


@attrs.define(eq=False)
class Peer:
    """One logged-in connection as the hub sees it."""

    conn_id: str
    owner: str
    vehicleid: str
    client_type: ClientType
    outbox: Outbox  # or anything with send_nowait/close, e.g. a trio.MemorySendChannel
    cancel_scope: trio.CancelScope
    address: str = ""
    # On trio's clock (relay.clock): what the sweeper's timeouts and pings compare.
    last_rx: float = attrs.field(factory=_trio_now)
    last_tx: float = attrs.field(factory=_trio_now)
    last_ping: float = -math.inf  # never: a clock may start at 0 (MockClock does)
    close_reason: str | None = None
    # Bytes read and written since the usage counters were last handed to the store.
    rx_bytes: int = 0
    tx_bytes: int = 0
    # Created on the first ``h`` record: most connections never send one.
    pending_acks: trio.Semaphore | None = None
    # An ordered set, created on the first group (see VehicleLinks): most have none.
    groups: dict[str, None] | None = None
    group_refusals: int = 0  # G or g refused (limits): the 1st, 10th, 100th... are logged

    @property
    def is_car(self) -> bool:
        return self.client_type is ClientType.CAR

    @property
    def is_interactive(self) -> bool:
        """Interactive apps count as peers for the car; batch clients do not."""
        return self.client_type is ClientType.APP

    def context(self) -> str:
        return f"conn={self.conn_id} vehicle={self.vehicleid} type={self.client_type.label}"

    def close(self, reason: str) -> None:
        """Ask the connection to close; the first reason given is the one logged."""
        if self.close_reason is None:
            self.close_reason = reason
        self.cancel_scope.cancel()


class AnswerSink(Protocol):
    """Where a waiter's answers go: a ``trio.MemorySendChannel``, or (with a bus) the
    way back to the node the command came from."""

    def send_nowait(self, value: Message, /) -> None: ...

    def close(self) -> None: ...


@attrs.define(eq=False)
class CommandWaiter:
    """A sender that is not a v2 connection (an HTTP request) waiting for a car's answer.

    Answers arrive on its own bounded ``outbox``. ``gone`` marks a waiter that stopped
    listening (answered, timed out, cancelled): later answers for it are discarded,
    as for a departed connection. The outbox is closed if the car goes away first.
    """

    conn_id: str
    outbox: AnswerSink
    gone: bool = False


# A live watcher's channel (the web console): (vehicle id, message) for each message
# to the vehicle's clients. Watchers never block delivery and do not count as apps.
Watcher = trio.MemorySendChannel[tuple[str, Message]]


class HubApi(Protocol):
    """Who is connected to which vehicle, delivery to them, and app counts for ``Z``."""

    def new_id(self, prefix: str) -> str:
        """A process-unique id for a connection or request, for log lines."""

    # --- watchers (the web console's live pages)
    def watch(self, vehicleid: str, watcher: Watcher) -> None: ...

    def unwatch(self, vehicleid: str, watcher: Watcher) -> None: ...

    # --- who is connected where
    def peers(self) -> Iterable[Peer]:
        """Every logged-in connection of this process (the sweeper's and usage's view)."""

    def vehicle_peers(self, vehicleid: str) -> list[Peer]:
        """The car (first, if connected) and the clients of one vehicle."""

    def car_connected(self, vehicleid: str) -> bool: ...

    def app_count(self, vehicleid: str) -> int:
        """Interactive apps plus REST sessions: the number a car gets in ``Z``."""

    def batch_count(self, vehicleid: str) -> int: ...

    # --- login and logout
    def register(self, peer: Peer) -> None:
        """A logged-in connection; sends the ``Z`` notifications synchronously."""

    def unregister(self, peer: Peer) -> None: ...

    def add_api_session(self, vehicleid: str, session_id: str) -> bool:
        """A REST session counts as an app; True if it is the vehicle's first."""

    def remove_api_session(self, vehicleid: str, session_id: str) -> None: ...

    # --- delivery (never waits: a stalled receiver is closed instead)
    def deliver(self, peer: Peer, msg: Message) -> None: ...

    def to_car(self, vehicleid: str, msg: Message, sender: Peer | None = None) -> bool:
        """False if the vehicle's car is not connected (or ``sender`` floods it)."""

    def to_clients(self, vehicleid: str, *msgs: Message) -> None: ...

    def to_other_clients(self, sender: Peer, msg: Message) -> None:
        """To the sender's vehicle's apps and batch clients, on every process."""

    # --- commands and their answers
    def send_command(self, sender: Peer, command: int, msg: Message) -> bool: ...

    def send_waiter_command(
        self, vehicleid: str, waiter: CommandWaiter, command: int, msg: Message
    ) -> bool: ...

    def command_response(self, vehicleid: str, msg: Message) -> None: ...

    # --- groups
    def group_update(self, car: Peer, group: str, data: str) -> bool: ...

    def group_subscribe(self, peer: Peer, group: str) -> bool: ...

    # --- a cluster's other processes (no-ops in one process)
    def owns_vehicle(self, vehicleid: str) -> bool:
        """This process runs the vehicle's background work: the car's process, or for a
        car connected nowhere one process chosen among the live ones."""

    def announce(self, topic: str, *args: str) -> None:
        """Tell every other process (each runs the handlers ``on_notice`` registered)."""

    def bus_status(self) -> BusStatus:
        """Where this process stands with the cluster's bus: ``/readyz``."""

    def on_notice(self, topic: str, handler: Callable[..., object]) -> None: ...

    # --- liveness
    def sweep(self, now: float, liveness: Liveness) -> None:
        """Close this process's silent connections, ping quiet cars (``now``: trio time)."""
