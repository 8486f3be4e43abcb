"""The bus-backed hub: ``relay.hub.Hub`` for this process's connections, NATS for the rest.

Every decision about local connections stays in ``Hub``; this subclass adds what
crosses nodes (docs/cluster-bus.md draws it):

- **The car directory.** A car's login and logout are announced to every node
  (``CarOnline``/``CarOffline`` on ``<prefix>.cars``), so any node answers
  ``car_connected``, routes ``E`` and commands to the car's node, and tells its
  apps ``Z1``/``Z0`` without waiting: the ``HubApi`` is synchronous and nothing
  above it changes. The newest login wins: the node holding an older car closes it.
- **Peer counts.** Each node owns its counts of a vehicle's clients and publishes
  changes (``Counts`` on the vehicle's presence subject) while the car is on
  another node; the car's node adds them up for ``Z``. A car's login is also the
  question "how many clients of this vehicle do you have?" to the nodes known to
  be alive; its ``Z`` waits for their answers only, at most ``login_wait``.
- **Liveness.** Nodes beat every ``heartbeat`` seconds; one silent for ``timeout``
  (or seen with a higher restart counter, or saying bye) loses its entries: cars
  get corrected ``Z``, apps ``Z0`` for its cars, waiting commands end. Every node
  republishes its cars and counts every ``republish`` seconds and entries not
  refreshed for 2.5 rounds expire, so a lost message heals.
- **Traffic** goes on the bus only to where it is wanted: the car's node sends its
  messages to the inboxes of the nodes that hold clients of the vehicle (it has
  their counts), and clients' messages go to the car's node's inbox (the
  directory says which). No subscription per vehicle: a node subscribes to its
  inbox and the cluster's subjects, so logins cost no subscribe, and one nats-py
  task serves all traffic.

Over 600 lines: each ``HubApi`` method's bus half sits next to the handler of the
envelope it sends, which is what a reader checks them against; a split would cut
those pairs apart.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import time
from typing import Protocol

import attrs
import trio

from protocol import CommandResponse, Message
from relay.bus import envelope as env
from relay.bus.subjects import Subjects
from relay.hub import OWNER_GAINED, GroupLimits, Hub, Waiting
from relay.hubapi import CommandWaiter, Peer, Watcher

log = logging.getLogger("relay.bus")

# Commands sent to cars on other nodes and not yet fully answered, per node: beyond
# this the oldest is forgotten (its waiter told "no answer"), as MAX_WAITING per car.
MAX_PENDING_COMMANDS = 4 * 1024
MAX_GROUP_QUERIES = 1024
# Cars per directory message: ~40 bytes each, well under NATS's 1 MB payload.
CARS_PER_LIST = 500
# Local notices (never on the bus): this node now holds, or no longer holds, the
# vehicle's car (the store caches only such vehicles' latest messages).
CAR_ARRIVED = "bus.car-arrived"
CAR_LEFT = "bus.car-left"


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


class ReplySink:
    """A remote sender's answers: published to its node's inbox (the car's node side)."""

    def __init__(self, hub: BusHub, node: str, token: int) -> None:
        self._hub = hub
        self._subject = hub.subjects.inbox(node)
        self._token = token
        self._closed = False

    def send_nowait(self, value: Message, /) -> None:
        if not self._closed:
            self._hub.link.publish(self._subject, env.pack(env.Answer(self._token, value)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub.link.publish(self._subject, env.pack(env.Answer(self._token, None)))


class BusHub(Hub):
    """``HubApi`` across relay processes; ``run`` beats, expires and republishes."""

    def __init__(self, link: BusLink, node: str, *, subjects: Subjects | None = None,
                 settings: BusSettings | None = None, group_limits: GroupLimits | None = None,
                 epoch: int | None = None) -> None:
        super().__init__(group_limits)
        self.link = link
        self.node = node
        # The restart counter: a later start of the same node id has a higher one.
        self.epoch = epoch if epoch is not None else time.time_ns() // 1000
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

    def bus_ready(self) -> bool:
        return self._bus_up

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

    # --- login and logout -------------------------------------------------------------

    def register(self, peer: Peer) -> None:
        vehicleid = peer.vehicleid
        if not peer.is_car:
            super().register(peer)
            self._counts_changed(vehicleid)
            return
        owned = self.owns_vehicle(vehicleid)
        self._notice(CAR_ARRIVED, (vehicleid,))
        at = self._cars.pop(vehicleid, None)
        # Newer than the car another node holds, whatever the machines' clocks say:
        # that node closes its car when it hears of this one.
        since = max(time.time(), at.since + 0.001 if at is not None else 0.0)
        self._since[vehicleid] = since
        self._counts.pop(vehicleid, None)
        self._published.pop(vehicleid, None)
        if self._nodes:
            wait = LoginWait(peer, set(self._nodes))
            self._login_waits[vehicleid] = wait
            self._login_deadlines.append(
                (trio.current_time() + self.settings.login_wait, vehicleid, wait))
            self._login_wake.set()
        super().register(peer)  # Z to the car waits for the other nodes' counts
        self.link.publish(self.subjects.cars,
                          env.pack(env.CarOnline(self.node, self.epoch, vehicleid, since)))
        if not owned:
            self._notice(OWNER_GAINED, (vehicleid,))

    def unregister(self, peer: Peer) -> None:
        vehicleid = peer.vehicleid
        was_car = peer.is_car and self._local_car(vehicleid) is peer
        super().unregister(peer)
        if was_car:
            self._notice(CAR_LEFT, (vehicleid,))
            self._since.pop(vehicleid, None)
            self._counts.pop(vehicleid, None)
            self._login_waits.pop(vehicleid, None)
            self.link.publish(self.subjects.cars,
                              env.pack(env.CarOffline(self.node, self.epoch, vehicleid)))
        elif not peer.is_car:
            self._counts_changed(vehicleid)
        for group in peer.groups or ():
            if group not in self._group_members and group in self._group_subs:
                self._group_subs.discard(group)
                self.link.unsubscribe(self.subjects.group(group))

    def add_api_session(self, vehicleid: str, session_id: str) -> bool:
        first = super().add_api_session(vehicleid, session_id)
        self._counts_changed(vehicleid)
        return first

    def remove_api_session(self, vehicleid: str, session_id: str) -> None:
        super().remove_api_session(vehicleid, session_id)
        self._counts_changed(vehicleid)

    def watch(self, vehicleid: str, watcher: Watcher) -> None:
        super().watch(vehicleid, watcher)
        self._counts_changed(vehicleid)

    def unwatch(self, vehicleid: str, watcher: Watcher) -> None:
        super().unwatch(vehicleid, watcher)
        self._counts_changed(vehicleid)

    def _car_state_to_clients(self, vehicleid: str, online: bool) -> None:
        # Our car left but another node's took over: our clients keep Z1.
        if online or not self.car_connected(vehicleid):
            super()._car_state_to_clients(vehicleid, online)

    def _peer_count_to_car(self, vehicleid: str) -> None:
        car = self._local_car(vehicleid)
        if car is not None and vehicleid not in self._login_waits:
            self.deliver(car, Message("Z", str(self.app_count(vehicleid))))

    # --- delivery -----------------------------------------------------------------------

    def to_clients(self, vehicleid: str, *msgs: Message) -> None:
        super().to_clients(vehicleid, *msgs)
        nodes = self._interested(vehicleid) if vehicleid in self._counts else ()
        if nodes:
            data = env.pack_relay(self.node, vehicleid, msgs)
            for node in nodes:
                self.link.publish(self._inbox_of(node), data)

    def to_other_clients(self, sender: Peer, msg: Message) -> None:
        super().to_other_clients(sender, msg)
        # Rare (a notify script): to every node, as this one knows only its own clients
        # (the car's node is told the others' counts, and the car may be connected
        # nowhere); a node without clients of the vehicle does nothing with it.
        self.link.publish(self.subjects.notices,
                          env.pack_relay(self.node, sender.vehicleid, (msg,)))

    def to_car(self, vehicleid: str, msg: Message, sender: Peer | None = None) -> bool:
        if self._local_car(vehicleid) is not None:
            return super().to_car(vehicleid, msg, sender)
        inbox = self._car_inbox(vehicleid)
        if inbox is None:
            return False
        self.link.publish(inbox, env.pack(env.ToCar(self.node, vehicleid, msg)))
        return True

    def _queue_command(self, vehicleid: str, sender: Peer | CommandWaiter, command: int,
                       msg: Message) -> bool:
        if self._local_car(vehicleid) is not None:
            return super()._queue_command(vehicleid, sender, command, msg)
        at = self._cars.get(vehicleid)
        if at is None:
            return False
        token = next(self._tokens)
        self._pending[token] = PendingCommand(vehicleid, sender, command, at.node)
        if len(self._pending) > MAX_PENDING_COMMANDS:
            _, dropped = self._pending.popitem(last=False)
            log.warning("vehicle=%s: %d commands to other nodes unanswered, forgetting "
                        "command %d of %s", dropped.vehicleid, MAX_PENDING_COMMANDS,
                        dropped.command, dropped.sender.conn_id)
            self._end_pending(dropped)
        self.link.publish(self._inbox_of(at.node),
                          env.pack(env.Command(self.node, vehicleid, token, command, msg)))
        return True

    def command_response(self, vehicleid: str, msg: Message) -> None:
        links = self._vehicles.get(vehicleid)
        unasked = links is not None and not links.waiting
        super().command_response(vehicleid, msg)
        if unasked:
            nodes = self._interested(vehicleid)
            if nodes:
                data = env.pack_relay(self.node, vehicleid, (msg,))
                for node in nodes:
                    self.link.publish(self._inbox_of(node), data)

    def _end_pending(self, pending: PendingCommand) -> None:
        if isinstance(pending.sender, CommandWaiter):
            pending.sender.outbox.close()

    # --- groups ---------------------------------------------------------------------------

    def group_update(self, car: Peer, group: str, data: str) -> bool:
        if not super().group_update(car, group, data):
            return False
        self.link.publish(self.subjects.group(group), env.pack(
            env.GroupData(self.node, group, ((car.vehicleid, data),))))
        return True

    def group_subscribe(self, peer: Peer, group: str) -> bool:
        if not super().group_subscribe(peer, group):
            return False
        if group not in self._group_subs:
            self._group_subs.add(group)
            self.link.subscribe(self.subjects.group(group))
        token = next(self._tokens)
        self._group_queries[token] = peer
        if len(self._group_queries) > MAX_GROUP_QUERIES:
            self._group_queries.popitem(last=False)
        self.link.publish(self.subjects.group_query,
                          env.pack(env.GroupQuery(self.node, group, token)))
        return True

    # --- notices -------------------------------------------------------------------------

    def announce(self, topic: str, *args: str) -> None:
        self.link.publish(self.subjects.notices, env.pack(env.Notice(self.node, topic, args)))

    # --- from the bus ---------------------------------------------------------------------

    def on_bus_message(self, subject: str, data: bytes) -> None:
        try:
            msg = env.unpack(data)
        except env.EnvelopeError as exc:
            log.warning("bus: message on %s ignored: %s", subject, exc)
            return
        if type(msg) is env.Relay:  # the hot path: no lookup
            Hub.to_clients(self, msg.vehicleid, *msg.msgs)
            return
        handler = getattr(self, f"_on_{type(msg).__name__}")
        handler(msg)

    def _on_Relay(self, msg: env.Relay) -> None:
        Hub.to_clients(self, msg.vehicleid, *msg.msgs)

    def _on_Notice(self, msg: env.Notice) -> None:
        if msg.node != self.node and msg.topic != OWNER_GAINED:
            self._notice(msg.topic, msg.args)

    def _on_ToCar(self, msg: env.ToCar) -> None:
        car = self._local_car(msg.vehicleid)
        if car is not None and self._room(car):
            self.deliver(car, msg.msg)

    def _room(self, car: Peer) -> bool:
        """Other nodes' clients may fill the car's queue only halfway, as local ones."""
        limit = getattr(car.outbox, "limit", None)
        if limit is None or len(car.outbox) < limit // 2:
            return True
        log.warning("%s: other nodes' clients send faster than the car reads, dropping",
                    car.context())
        return False

    def _on_Command(self, msg: env.Command) -> None:
        sink = ReplySink(self, msg.node, msg.token)
        car = self._local_car(msg.vehicleid)
        if car is None or not self._room(car):
            sink.close()
            return
        waiter = CommandWaiter(f"{msg.node}/c{msg.token}", sink)
        super()._queue_command(msg.vehicleid, waiter, msg.command, msg.msg)

    def _on_Answer(self, msg: env.Answer) -> None:
        pending = self._pending.get(msg.token)
        if pending is None:
            return
        if msg.msg is None:
            del self._pending[msg.token]
            self._end_pending(pending)
            return
        try:
            last = CommandResponse.parse(msg.msg.data).is_last_line()
        except ValueError:
            last = True
        if last:
            del self._pending[msg.token]
        sender = pending.sender
        if isinstance(sender, CommandWaiter):
            self._to_waiter(pending.vehicleid, Waiting(sender, pending.command), msg.msg)
        elif sender in self._peers:
            self.deliver(sender, msg.msg)

    def _on_Counts(self, msg: env.Counts) -> None:
        if not self._node_ok(msg.node, msg.epoch):
            return
        vehicleid = msg.vehicleid
        if self._local_car(vehicleid) is None:
            return
        counts = self._counts.setdefault(vehicleid, {})
        old = counts.get(msg.node)
        if msg.interested:
            counts[msg.node] = RemoteCounts(msg, trio.current_time())
        else:
            counts.pop(msg.node, None)
            if not counts:
                del self._counts[vehicleid]
        wait = self._login_waits.get(vehicleid)
        if wait is not None:
            wait.nodes.discard(msg.node)
            if not wait.nodes:
                self._login_done(vehicleid)
        elif old is None or old.counts.apps != msg.apps:
            self._peer_count_to_car(vehicleid)

    def _on_CarOnline(self, msg: env.CarOnline) -> None:
        if not self._node_ok(msg.node, msg.epoch):
            return
        self._car_at(msg.vehicleid, msg.node, msg.since)
        # The car's node asks every node it knows for its counts; all answer, even 0.
        self._publish_counts(msg.vehicleid, self._local_counts(msg.vehicleid),
                             self._inbox_of(msg.node))
        if msg.vehicleid not in self._cars:
            self._published.pop(msg.vehicleid, None)  # our car is the newer one

    def _car_at(self, vehicleid: str, node: str, since: float) -> None:
        """Another node holds the vehicle's car (logged in at ``since``)."""
        now = trio.current_time()
        car = self._local_car(vehicleid)
        if car is not None:
            if self._since.get(vehicleid, 0.0) >= since:
                return  # ours is newer: that node closes its car when it hears of ours
            log.info("%s: duplicate car login on node %s, closing this one",
                     car.context(), node)
            car.close("duplicate car login")
        known = self._cars.get(vehicleid)
        if known is not None and known.node != node and known.since > since:
            return
        self._cars[vehicleid] = CarAt(node, since, now)
        if known is None and car is None:
            self._car_state_to_clients(vehicleid, True)

    def _on_CarOffline(self, msg: env.CarOffline) -> None:
        if not self._node_ok(msg.node, msg.epoch):
            return
        at = self._cars.get(msg.vehicleid)
        if at is not None and at.node == msg.node:
            self._car_gone(msg.vehicleid)

    def _car_gone(self, vehicleid: str) -> None:
        at = self._cars.pop(vehicleid)
        self._published.pop(vehicleid, None)
        for token, pending in list(self._pending.items()):
            if pending.vehicleid == vehicleid and pending.car_node == at.node:
                del self._pending[token]
                self._end_pending(pending)
        self._car_state_to_clients(vehicleid, False)
        if self.owns_vehicle(vehicleid):
            self._notice(OWNER_GAINED, (vehicleid,))

    def _on_CarList(self, msg: env.CarList) -> None:
        if not self._node_ok(msg.node, msg.epoch):
            return
        for vehicleid, since in msg.cars:
            self._car_at(vehicleid, msg.node, since)
            if vehicleid in self._cars and self._cars[vehicleid].node == msg.node:
                self._counts_changed(vehicleid)

    def _on_Beat(self, msg: env.Beat) -> None:
        if msg.bye:
            if msg.node in self._nodes and self._nodes[msg.node].epoch <= msg.epoch:
                log.info("bus: node %s stopped", msg.node)
                self._drop_node(msg.node)
            return
        known = msg.node in self._nodes
        if not self._node_ok(msg.node, msg.epoch):
            return
        if msg.hello:
            self._send_state(msg.node)
        elif not known:
            # A node we had given up on (or one that started while we were cut off).
            self.link.publish(self._inbox_of(msg.node),
                              env.pack(env.SyncRequest(self.node, self.epoch)))

    def _on_SyncRequest(self, msg: env.SyncRequest) -> None:
        if self._node_ok(msg.node, msg.epoch):
            self._send_state(msg.node)

    def _on_GroupData(self, msg: env.GroupData) -> None:
        if msg.token:
            peer = self._group_queries.get(msg.token)
            targets = [peer] if peer is not None and peer in self._peers else []
        else:
            targets = list(self._group_members.get(msg.group, ()))
        for vehicleid, data in msg.items:
            line = Message("g", f"{vehicleid},{msg.group},{data}")
            for peer in targets:
                self.deliver(peer, line)

    def _on_GroupQuery(self, msg: env.GroupQuery) -> None:
        data = self._group_data.get(msg.group)
        if data:
            self.link.publish(self._inbox_of(msg.node), env.pack(
                env.GroupData(self.node, msg.group, tuple(data.items()), msg.token)))

    # --- nodes ------------------------------------------------------------------------------

    def _node_ok(self, node: str, epoch: int) -> bool:
        """Note that ``node`` is alive; False if the message is from a previous run."""
        if node == self.node:
            return False  # our own previous run, or a misconfigured twin
        now = trio.current_time()
        state = self._nodes.get(node)
        if state is None:
            self._nodes[node] = NodeState(epoch, now)
            log.info("bus: node %s joined", node)
            return True
        if epoch < state.epoch:
            return False
        if epoch > state.epoch:
            log.info("bus: node %s restarted, dropping what its previous run announced",
                     node)
            self._drop_node(node)
            self._nodes[node] = NodeState(epoch, now)
            return True
        state.last_seen = now
        return True

    def _drop_node(self, node: str) -> None:
        """Forget everything ``node`` announced: its cars, its counts, our waits on it."""
        self._nodes.pop(node, None)
        self._inboxes.pop(node, None)
        for vehicleid in [v for v, at in self._cars.items() if at.node == node]:
            self._car_gone(vehicleid)
        for token, pending in list(self._pending.items()):
            if pending.car_node == node:
                del self._pending[token]
                self._end_pending(pending)
        for vehicleid, counts in list(self._counts.items()):
            if counts.pop(node, None) is not None:
                if not counts:
                    del self._counts[vehicleid]
                self._peer_count_to_car(vehicleid)
        for vehicleid, wait in list(self._login_waits.items()):
            wait.nodes.discard(node)
            if not wait.nodes:
                self._login_done(vehicleid)

    def _login_done(self, vehicleid: str) -> None:
        self._login_waits.pop(vehicleid, None)
        self._peer_count_to_car(vehicleid)

    def _send_state(self, node: str) -> None:
        """Our cars and our counts for its cars, to a node that (re)joined."""
        inbox = self._inbox_of(node)
        # At once, not at our next beat: a joining node learns who is alive.
        self.link.publish(inbox, env.pack(env.Beat(self.node, self.epoch)))
        for message in self._car_lists():
            self.link.publish(inbox, message)
        for vehicleid, at in self._cars.items():
            if at.node == node and any(self._local_counts(vehicleid)):
                self._publish_counts(vehicleid, self._local_counts(vehicleid), inbox)

    def _car_lists(self) -> list[bytes]:
        cars = list(self._since.items())
        return [env.pack(env.CarList(self.node, self.epoch,
                                     tuple(cars[i:i + CARS_PER_LIST])))
                for i in range(0, len(cars), CARS_PER_LIST)]

    def on_bus_state(self, up: bool) -> None:
        """The bridge's connection came (back) or went."""
        self._bus_up = up
        if up:
            self._hello_due = True
            self._beat()

    def _beat(self) -> None:
        hello, self._hello_due = self._hello_due, False
        self.link.publish(self.subjects.heartbeat,
                          env.pack(env.Beat(self.node, self.epoch, hello=hello)))
        if hello:
            self._republish()

    def _republish(self) -> None:
        for message in self._car_lists():
            self.link.publish(self.subjects.cars, message)
        for vehicleid in list(self._cars):
            counts = self._local_counts(vehicleid)
            if any(counts):
                self._publish_counts(vehicleid, counts, self._inbox_of(
                    self._cars[vehicleid].node))

    def expire(self, now: float) -> None:
        """Drop nodes silent for ``timeout`` and entries not refreshed for 2.5 rounds."""
        for node, state in list(self._nodes.items()):
            if now - state.last_seen > self.settings.timeout:
                log.warning("bus: node %s silent for %.0f s, dropping its cars and clients",
                            node, now - state.last_seen)
                self._drop_node(node)
        stale = now - 2.5 * self.settings.republish
        for vehicleid in [v for v, at in self._cars.items() if at.refreshed < stale]:
            self._car_gone(vehicleid)
        for vehicleid, counts in list(self._counts.items()):
            for node in [n for n, r in counts.items() if r.refreshed < stale]:
                del counts[node]
            if not counts:
                del self._counts[vehicleid]
                self._peer_count_to_car(vehicleid)

    # --- tasks ------------------------------------------------------------------------------

    def subscribe_cluster(self) -> None:
        """The subjects every node listens to, whatever it holds."""
        for subject in (self._inbox, self.subjects.heartbeat, self.subjects.cars,
                        self.subjects.group_query, self.subjects.notices):
            self.link.subscribe(subject)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._beat_loop)
            nursery.start_soon(self._republish_loop)
            nursery.start_soon(self._login_timer)
            task_status.started()

    def bye(self) -> None:
        """Tell the other nodes we stop: they drop our entries now, not after ``timeout``."""
        self.link.publish(self.subjects.heartbeat,
                          env.pack(env.Beat(self.node, self.epoch, bye=True)))

    async def _beat_loop(self) -> None:
        while True:
            self._beat()
            await trio.sleep(self.settings.heartbeat)
            self.expire(trio.current_time())

    async def _republish_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.republish)
            self._republish()

    async def _login_timer(self) -> None:
        deadlines = self._login_deadlines
        while True:
            if not deadlines:
                self._login_wake = trio.Event()
                await self._login_wake.wait()
                continue
            deadline, vehicleid, wait = deadlines[0]
            if trio.current_time() < deadline:
                await trio.sleep_until(deadline)
                continue
            deadlines.popleft()
            if self._login_waits.get(vehicleid) is wait:
                log.info("%s: no counts from node(s) %s within %.1f s",
                         wait.car.context(), ",".join(sorted(wait.nodes)),
                         self.settings.login_wait)
                self._login_done(vehicleid)


__all__ = ["CAR_ARRIVED", "CAR_LEFT", "BusHub", "BusLink", "BusSettings"]
