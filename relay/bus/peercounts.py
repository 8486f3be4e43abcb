"""The bus hub's base: what this node knows of the others, and the peer counts.

Holds the state every layer of ``relay.bus.bushub.BusHub`` shares (the nodes seen
alive, the cars other nodes hold, other nodes' counts of our cars' clients, our
commands waiting on other nodes, the logins waiting for counts) and answers the
``HubApi`` queries from it: is a car connected anywhere, how many apps has a
vehicle across nodes, which node runs a vehicle's background work. It also keeps
the car's node told of this node's counts of a vehicle's clients
(docs/cluster-bus.md, "Peer counts").
"""

from __future__ import annotations

import collections
import hashlib
import itertools
from typing import Protocol

import attrs
import trio

from protocol import Message
from relay.bus import envelope as env
from relay.bus.subjects import Subjects
from relay.clock import SYSTEM_CLOCK, Clock
from relay.hub import GroupLimits, Hub
from relay.hubapi import BusStatus, CommandWaiter, Peer


class BusLink(Protocol):
    """What the hub needs of the bus (``relay.bus.bridge.NatsBridge``)."""

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None: ...

    def subscribe(self, subject: str) -> None: ...

    def unsubscribe(self, subject: str) -> None: ...


@attrs.frozen
class BusSettings:
    heartbeat: float = 2.0
    timeout: float = 10.0
    republish: float = 30.0
    login_wait: float = 1.0


@attrs.define
class NodeState:
    epoch: int
    last_seen: float


@attrs.define
class CarAt:
    """A car held by another node."""

    node: str
    since: float  # wall clock of its login: the newest login of a vehicle wins
    refreshed: float  # trio clock


@attrs.define
class RemoteCounts:
    counts: env.Counts
    refreshed: float


@attrs.define
class PendingCommand:
    vehicleid: str
    sender: Peer | CommandWaiter
    command: int
    car_node: str


@attrs.define
class LoginWait:
    """A car's ``Z`` waits for these nodes' counts (or the deadline)."""

    car: Peer
    nodes: set[str]


class PeerCountsHub(Hub):
    """The state shared by the bus hub's layers; the queries and count bookkeeping."""

    def __init__(self, link: BusLink, node: str, *, subjects: Subjects | None = None,
                 settings: BusSettings | None = None, group_limits: GroupLimits | None = None,
                 epoch: int | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(group_limits)
        self.link = link
        self.node = node
        self.clock = clock
        # The restart counter: a later start of the same node id has a higher one.
        self.epoch = epoch if epoch is not None else int(clock.wall() * 1_000_000)
        self.subjects = subjects or Subjects()
        self.settings = settings or BusSettings()
        self._inboxes: dict[str, str] = {}  # node -> its inbox subject
        self._inbox = self._inbox_of(node)
        self._nodes: dict[str, NodeState] = {}
        self._cars: dict[str, CarAt] = {}  # vehicle id -> car on another node
        self._since: dict[str, float] = {}  # vehicle id -> login time of our car
        self._counts: dict[str, dict[str, RemoteCounts]] = {}  # for our cars
        self._published: dict[str, tuple[int, int, int]] = {}  # our counts, last sent
        self._group_subs: set[str] = set()
        self._tokens = itertools.count(1)
        self._pending: collections.OrderedDict[int, PendingCommand] = (
            collections.OrderedDict())
        self._group_queries: collections.OrderedDict[int, Peer] = collections.OrderedDict()
        self._login_waits: dict[str, LoginWait] = {}
        self._login_deadlines: collections.deque[tuple[float, str, LoginWait]] = (
            collections.deque())
        self._login_wake = trio.Event()
        self._hello_due = False
        self._bus_up = False  # until the bridge's first connection
        self._bus_joined = False  # connected at least once since the start

    # --- queries: this node's connections plus what other nodes announced ------------

    def car_connected(self, vehicleid: str) -> bool:
        return super().car_connected(vehicleid) or vehicleid in self._cars

    def app_count(self, vehicleid: str) -> int:
        remote = self._counts.get(vehicleid)
        extra = sum(r.counts.apps for r in remote.values()) if remote else 0
        return super().app_count(vehicleid) + extra

    def batch_count(self, vehicleid: str) -> int:
        remote = self._counts.get(vehicleid)
        extra = sum(r.counts.batch for r in remote.values()) if remote else 0
        return super().batch_count(vehicleid) + extra

    def bus_status(self) -> BusStatus:
        if self._bus_up:
            return BusStatus.UP
        return BusStatus.LOST if self._bus_joined else BusStatus.JOINING

    def alive_nodes(self) -> list[str]:
        return list(self._nodes)

    def owns_vehicle(self, vehicleid: str) -> bool:
        """The car's node; for a car connected nowhere, the node that rendezvous hashing
        picks among the live ones (each node's view, so they agree once beats settled)."""
        if self._local_car(vehicleid) is not None:
            return True
        if vehicleid in self._cars:
            return False

        def weight(node: str) -> bytes:
            return hashlib.blake2b(f"{node}/{vehicleid}".encode(), digest_size=8).digest()

        return max((self.node, *self._nodes), key=weight) == self.node

    def _local_car(self, vehicleid: str) -> Peer | None:
        links = self._vehicles.get(vehicleid)
        return None if links is None else links.car

    def _local_counts(self, vehicleid: str) -> tuple[int, int, int]:
        links = self._vehicles.get(vehicleid)
        watchers = len(self._watchers.get(vehicleid, ()))
        if links is None:
            return (0, 0, watchers)
        return (len(links.apps or ()) + len(links.api_sessions or ()), len(links.batch or ()),
                watchers)

    def _inbox_of(self, node: str) -> str:
        inbox = self._inboxes.get(node)
        if inbox is None:
            inbox = self._inboxes[node] = self.subjects.inbox(node)
        return inbox

    def _interested(self, vehicleid: str) -> list[str]:
        """The other nodes that want our car's traffic (they hold some of its clients)."""
        remote = self._counts.get(vehicleid)
        if not remote:
            return []
        return [node for node, r in remote.items() if r.counts.interested]

    def _car_inbox(self, vehicleid: str) -> str | None:
        """The inbox of the node holding the vehicle's car, if another node does."""
        at = self._cars.get(vehicleid)
        return None if at is None else self._inbox_of(at.node)

    def _counts_changed(self, vehicleid: str) -> None:
        """Tell the car's node (if another) how many clients of the vehicle we have."""
        inbox = self._car_inbox(vehicleid)
        if inbox is None:
            self._published.pop(vehicleid, None)
            return  # no car, or ours: a car's login asks for counts
        counts = self._local_counts(vehicleid)
        if self._published.get(vehicleid, (0, 0, 0)) == counts:
            return
        self._publish_counts(vehicleid, counts, inbox)

    def _publish_counts(self, vehicleid: str, counts: tuple[int, int, int],
                        subject: str) -> None:
        if any(counts):
            self._published[vehicleid] = counts
        else:
            self._published.pop(vehicleid, None)
        self.link.publish(subject, env.pack(env.Counts(self.node, self.epoch, vehicleid,
                                                       *counts)))

    def _peer_count_to_car(self, vehicleid: str) -> None:
        car = self._local_car(vehicleid)
        if car is not None and vehicleid not in self._login_waits:
            self.deliver(car, Message("Z", str(self.app_count(vehicleid))))

    def _login_done(self, vehicleid: str) -> None:
        self._login_waits.pop(vehicleid, None)
        self._peer_count_to_car(vehicleid)


__all__ = ["BusLink", "BusSettings", "CarAt", "LoginWait", "NodeState", "PeerCountsHub",
           "PendingCommand", "RemoteCounts"]
