"""The in-process hub: who is connected to which vehicle, and every "deliver to ..." decision.

It is the one explicit registry object of the process. Listeners register
connections here; the router asks it to deliver to the car, to the apps of a
vehicle, or to one peer. ``Hub`` implements ``relay.hubapi.HubApi``, the interface
every caller types against; when ovms-relay runs as several processes sharing a
message bus, a bus-backed hub implements the same interface and the listeners,
the router, REST and v4 do not change.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator

import attrs
import trio

from protocol import CommandResponse, Message
from relay.config import Config
from relay.hubapi import BusStatus, CommandWaiter, Liveness, Peer, Watcher

# Peer and CommandWaiter live with the interface; re-exported for existing importers.
__all__ = ["MAX_WAITING", "OWNER_GAINED", "CommandWaiter", "GroupLimits", "Hub", "Peer",
           "VehicleLinks", "Waiting"]

log = logging.getLogger("relay.hub")

# A local notice (never from the bus): this process now owns the vehicle's background
# work (``owns_vehicle``) and must read its state afresh, as another process ran it.
OWNER_GAINED = "hub.owner-gained"
# Told a notice's arguments (``Hub.on_notice``); runs synchronously, must not block;
# what it returns is ignored.
NoticeHandler = Callable[..., object]

# Commands a car can leave unanswered before the oldest waiting sender is forgotten;
# without a bound a car that never answers would grow the queue forever.
MAX_WAITING = 64


@attrs.define
class Waiting:
    """A client waiting for the car's answer to a command it sent."""

    peer: Peer | CommandWaiter
    command: int


@attrs.frozen
class GroupLimits:
    """Bounds on what one connection can make the hub hold for groups.

    Without them one app subscribing to 60,000 long names, or one car joining as
    many groups, costs the server hundreds of MB.
    """

    groups: int = 32  # per connection: a client's subscriptions, a car's memberships
    name: int = 64  # characters of a group name
    data: int = 4096  # characters of a car's data for one group

    @classmethod
    def from_config(cls, config: Config) -> GroupLimits:
        return cls(config.max_groups, config.max_group_name, config.max_group_data)


@attrs.define
class VehicleLinks:
    """The live connections of one vehicle."""

    # Dicts used as ordered sets (an empty set is 216 bytes, a dict 64), each created
    # when its first member comes and dropped when its last goes: most of the
    # thousands of connected cars have no app, no REST session and no command waiting.
    car: Peer | None = None
    apps: dict[Peer, None] | None = None
    batch: dict[Peer, None] | None = None
    # HTTP API sessions "connected" to the vehicle count as interactive apps.
    api_sessions: dict[str, None] | None = None
    # A list, not a deque: it is almost always empty or one long, and an empty
    # deque costs ~600 bytes for each of thousands of connected cars.
    waiting: list[Waiting] | None = None

    def clients(self) -> Iterator[Peer]:
        if self.apps:
            yield from self.apps
        if self.batch:
            yield from self.batch

    def is_empty(self) -> bool:
        return (
            self.car is None
            and not self.apps
            and not self.batch
            and not self.api_sessions
            and not self.waiting
        )


class Hub:
    """The in-process implementation of ``relay.hubapi.HubApi``."""

    def __init__(self, group_limits: GroupLimits | None = None) -> None:
        self._group_limits = group_limits or GroupLimits()
        self._ids = itertools.count(1)
        self._vehicles: dict[str, VehicleLinks] = {}
        self._peers: set[Peer] = set()
        # group name -> vehicle id -> latest group data from that car
        self._group_data: dict[str, dict[str, str]] = {}
        self._group_members: dict[str, set[Peer]] = {}
        # vehicle id -> live watchers (the web console's event streams): told of every
        # message the vehicle's clients get, never counted as apps.
        self._watchers: dict[str, dict[Watcher, None]] = {}
        self._notice_handlers: dict[str, list[NoticeHandler]] = {}

    def new_id(self, prefix: str) -> str:
        """A process-unique id for a connection or request, for log lines."""
        return f"{prefix}{next(self._ids)}"

    # --- queries -------------------------------------------------------------------

    def peers(self) -> Iterable[Peer]:
        return list(self._peers)

    def vehicle_peers(self, vehicleid: str) -> list[Peer]:
        links = self._vehicles.get(vehicleid)
        if links is None:
            return []
        car = [links.car] if links.car is not None else []
        return car + list(links.clients())

    def car_connected(self, vehicleid: str) -> bool:
        links = self._vehicles.get(vehicleid)
        return links is not None and links.car is not None

    def app_count(self, vehicleid: str) -> int:
        links = self._vehicles.get(vehicleid)
        if links is None:
            return 0
        return len(links.apps or ()) + len(links.api_sessions or ())

    def batch_count(self, vehicleid: str) -> int:
        links = self._vehicles.get(vehicleid)
        return 0 if links is None else len(links.batch or ())

    def _links(self, vehicleid: str) -> VehicleLinks:
        links = self._vehicles.get(vehicleid)
        if links is None:
            links = self._vehicles[vehicleid] = VehicleLinks()
        return links

    def _forget_if_empty(self, vehicleid: str) -> None:
        links = self._vehicles.get(vehicleid)
        if links is not None and links.is_empty():
            del self._vehicles[vehicleid]

    # --- delivery ------------------------------------------------------------------

    def deliver(self, peer: Peer, msg: Message) -> None:
        """Queue ``msg`` for ``peer`` without ever waiting: a stalled peer is dropped."""
        if peer.close_reason is not None:
            return
        try:
            peer.outbox.send_nowait(msg)
        except trio.WouldBlock:
            log.warning("%s: outbound queue full, disconnecting", peer.context())
            peer.close("outbound queue full")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def to_car(self, vehicleid: str, msg: Message, sender: Peer | None = None) -> bool:
        """Deliver to the vehicle's car; ``sender`` is the client it comes from, if any."""
        links = self._vehicles.get(vehicleid)
        if links is None or links.car is None:
            return False
        if sender is not None and not self._room_for_client(links.car, sender):
            return False
        self.deliver(links.car, msg)
        return True

    def _room_for_client(self, car: Peer, sender: Peer) -> bool:
        """Clients may fill the car's queue only halfway.

        The other half stays free for the server's own messages to the car (Z, h
        acks, pings): an app flooding commands is disconnected itself, rather than
        getting the car disconnected for a full queue.
        """
        limit = getattr(car.outbox, "limit", None)
        if limit is None or len(car.outbox) < limit // 2:
            return True
        if sender.close_reason is not None:
            # Already being closed (its reader is still handing over what it had
            # buffered): one warning was enough.
            return False
        log.warning("%s: sending faster than the car reads, disconnecting", sender.context())
        sender.close("flooding the car")
        return False

    def to_clients(self, vehicleid: str, *msgs: Message) -> None:
        """To every app and batch client of the vehicle."""
        self._to_watchers(vehicleid, msgs)
        links = self._vehicles.get(vehicleid)
        if links is None:
            return
        for peer in links.clients():
            for msg in msgs:
                self.deliver(peer, msg)

    def to_other_clients(self, sender: Peer, msg: Message) -> None:
        """To every app and batch client of the sender's vehicle but the sender (an
        app's ``P``, the notify script)."""
        for other in self.vehicle_peers(sender.vehicleid):
            if other is not sender and not other.is_car:
                self.deliver(other, msg)

    # --- other processes (a cluster; none here) -----------------------------------------

    def owns_vehicle(self, vehicleid: str) -> bool:
        """This process runs the vehicle's background work (v4 monitors and trips)."""
        return True

    def announce(self, topic: str, *args: str) -> None:
        """Tell every other process of the cluster (``on_notice``); one process has none."""

    def bus_status(self) -> BusStatus:
        """One process has no bus to lose."""
        return BusStatus.NONE

    def on_notice(self, topic: str, handler: NoticeHandler) -> None:
        """Call ``handler(*args)`` for each notice of ``topic`` another process announces."""
        self._notice_handlers.setdefault(topic, []).append(handler)

    def _notice(self, topic: str, args: Iterable[str]) -> None:
        for handler in self._notice_handlers.get(topic, ()):
            try:
                handler(*args)
            except Exception:
                # A handler's bug costs that notice, never the caller's delivery.
                log.exception("notice %s failed", topic)

    # --- watchers ----------------------------------------------------------------------

    def watch(self, vehicleid: str, watcher: Watcher) -> None:
        self._watchers.setdefault(vehicleid, {})[watcher] = None

    def unwatch(self, vehicleid: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(vehicleid)
        if watchers is not None:
            watchers.pop(watcher, None)
            if not watchers:
                del self._watchers[vehicleid]

    def _to_watchers(self, vehicleid: str, msgs: Iterable[Message]) -> None:
        for watcher in self._watchers.get(vehicleid, ()):
            for msg in msgs:
                try:
                    watcher.send_nowait((vehicleid, msg))
                except trio.WouldBlock:
                    break  # a watcher behind re-reads the vehicle's state anyway
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break

    def _car_state_to_clients(self, vehicleid: str, online: bool) -> None:
        """``Z1``/``Z0`` to the vehicle's clients and watchers: its car came or went."""
        msg = Message("Z", "1" if online else "0")
        self._to_watchers(vehicleid, (msg,))
        links = self._vehicles.get(vehicleid)
        if links is not None:
            for client in links.clients():
                self.deliver(client, msg)

    def _peer_count_to_car(self, vehicleid: str) -> None:
        self.to_car(vehicleid, Message("Z", str(self.app_count(vehicleid))))

    # --- login / logout -------------------------------------------------------------

    def register(self, peer: Peer) -> None:
        """Register a logged-in connection and send the login notifications.

        The caller sends an app's replay right after this, with no await in between,
        so no live message can slip between the ``Z`` and the replay.
        """
        links = self._links(peer.vehicleid)
        self._peers.add(peer)
        if peer.is_car:
            old = links.car
            if old is not None:
                log.info("%s: duplicate car login, closing older %s", peer.context(), old.conn_id)
                self._peers.discard(old)
                old.close("duplicate car login")
            links.car = peer
            self._car_state_to_clients(peer.vehicleid, True)
            self._peer_count_to_car(peer.vehicleid)
            return
        if peer.is_interactive:
            if links.apps is None:
                links.apps = {}
            links.apps[peer] = None
            self._peer_count_to_car(peer.vehicleid)
        else:
            if links.batch is None:
                links.batch = {}
            links.batch[peer] = None
        self.deliver(peer, Message("Z", "1" if self.car_connected(peer.vehicleid) else "0"))

    def unregister(self, peer: Peer) -> None:
        self._peers.discard(peer)
        for group in peer.groups or ():
            members = self._group_members.get(group)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self._group_members[group]
        links = self._vehicles.get(peer.vehicleid)
        if links is None:
            return
        if peer.is_car:
            if links.car is peer:
                links.car = None
                # A new car connection will not answer the old one's commands.
                for waiting in links.waiting or ():
                    if isinstance(waiting.peer, CommandWaiter):
                        waiting.peer.outbox.close()
                links.waiting = None
                self._car_state_to_clients(peer.vehicleid, False)
                self._drop_car_groups(peer.vehicleid)
        elif links.apps and peer in links.apps:
            del links.apps[peer]
            links.apps = links.apps or None
            self._peer_count_to_car(peer.vehicleid)
        elif links.batch:
            links.batch.pop(peer, None)
            links.batch = links.batch or None
        self._forget_if_empty(peer.vehicleid)

    def add_api_session(self, vehicleid: str, session_id: str) -> bool:
        """An HTTP API session "connects" as an app. Returns True if it was the first app."""
        links = self._links(vehicleid)
        first = self.app_count(vehicleid) == 0
        if links.api_sessions is None:
            links.api_sessions = {}
        if session_id not in links.api_sessions:
            links.api_sessions[session_id] = None
            self._peer_count_to_car(vehicleid)
        return first

    def remove_api_session(self, vehicleid: str, session_id: str) -> None:
        links = self._vehicles.get(vehicleid)
        if links is not None and links.api_sessions and session_id in links.api_sessions:
            del links.api_sessions[session_id]
            links.api_sessions = links.api_sessions or None
            self._peer_count_to_car(vehicleid)
            self._forget_if_empty(vehicleid)

    # --- commands ---------------------------------------------------------------------

    def send_command(self, sender: Peer, command: int, msg: Message) -> bool:
        """Forward a client's command to the car and queue the sender for the answer."""
        return self._queue_command(sender.vehicleid, sender, command, msg)

    def send_waiter_command(
        self, vehicleid: str, waiter: CommandWaiter, command: int, msg: Message
    ) -> bool:
        """Like ``send_command`` for a non-connection sender; answers go to its outbox."""
        return self._queue_command(vehicleid, waiter, command, msg)

    def _queue_command(
        self, vehicleid: str, sender: Peer | CommandWaiter, command: int, msg: Message
    ) -> bool:
        links = self._vehicles.get(vehicleid)
        if links is None or links.car is None:
            return False
        if links.waiting is None:
            links.waiting = []
        if len(links.waiting) >= MAX_WAITING:
            dropped = links.waiting.pop(0)
            if isinstance(dropped.peer, CommandWaiter):
                dropped.peer.outbox.close()
            log.warning(
                "vehicle=%s: car left %d commands unanswered, forgetting command %d of %s",
                vehicleid, MAX_WAITING, dropped.command, dropped.peer.conn_id,
            )
        if isinstance(sender, Peer) and not self._room_for_client(links.car, sender):
            return False
        links.waiting.append(Waiting(sender, command))
        self.deliver(links.car, msg)
        return True

    def command_response(self, vehicleid: str, msg: Message) -> None:
        """Route a car's ``c`` answer to the oldest waiting sender (or to everyone)."""
        links = self._vehicles.get(vehicleid)
        if links is None:
            return
        if not links.waiting:
            for peer in links.clients():
                self.deliver(peer, msg)
            return
        waiting = links.waiting[0]
        try:
            last = CommandResponse.parse(msg.data).is_last_line()
        except ValueError:
            last = True
        if last:
            links.waiting.pop(0)
            links.waiting = links.waiting or None
        if isinstance(waiting.peer, CommandWaiter):
            self._to_waiter(vehicleid, waiting, msg)
        elif waiting.peer in self._peers:
            self.deliver(waiting.peer, msg)
        else:
            log.info(
                "vehicle=%s: command %d answer discarded, sender %s has gone",
                vehicleid, waiting.command, waiting.peer.conn_id,
            )
        self._forget_if_empty(vehicleid)

    def _to_waiter(self, vehicleid: str, waiting: Waiting, msg: Message) -> None:
        waiter = waiting.peer
        assert isinstance(waiter, CommandWaiter)
        if not waiter.gone:
            try:
                waiter.outbox.send_nowait(msg)
                return
            except trio.WouldBlock:
                # More answer lines than any real list: stop listening, never block the car.
                waiter.gone = True
                waiter.outbox.close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                waiter.gone = True
        log.info(
            "vehicle=%s: command %d answer discarded, sender %s has gone",
            vehicleid, waiting.command, waiter.conn_id,
        )

    # --- groups -------------------------------------------------------------------------

    # Refusals are not answered (the protocol has no reply for G or g) and do not
    # disconnect: they cost the server nothing, and a real client never meets them.

    def _group_refused(self, peer: Peer, group: str, reason: str) -> bool:
        peer.group_refusals += 1
        count = peer.group_refusals
        if str(count).strip("0") == "1":  # 1, 10, 100, ...: bounded log lines
            log.warning("%s: group %r refused: %s (%d refused on this connection)",
                        peer.context(), group[:32], reason, count)
        return False

    def _group_allowed(self, peer: Peer, group: str) -> bool:
        limits = self._group_limits
        if len(group) > limits.name:
            return self._group_refused(
                peer, group, f"name longer than {limits.name} characters (max_group_name)")
        groups = peer.groups or {}
        if group not in groups and len(groups) >= limits.groups:
            return self._group_refused(
                peer, group, f"already {len(groups)} groups (max_groups)")
        return True

    def group_update(self, car: Peer, group: str, data: str) -> bool:
        """A car's data for a group, relayed to its subscribers; False if refused."""
        if not self._group_allowed(car, group):
            return False
        if len(data) > self._group_limits.data:
            return self._group_refused(
                car, group, f"data longer than {self._group_limits.data} characters "
                            "(max_group_data)")
        self._group_data.setdefault(group, {})[car.vehicleid] = data
        if car.groups is None:
            car.groups = {}
        car.groups[group] = None
        msg = Message("g", f"{car.vehicleid},{group},{data}")
        for peer in self._group_members.get(group, ()):
            self.deliver(peer, msg)
        return True

    def group_subscribe(self, peer: Peer, group: str) -> bool:
        """Subscribe a client to a group and send it the group's data; False if refused."""
        if not self._group_allowed(peer, group):
            return False
        self._group_members.setdefault(group, set()).add(peer)
        if peer.groups is None:
            peer.groups = {}
        peer.groups[group] = None
        for vehicleid, data in self._group_data.get(group, {}).items():
            self.deliver(peer, Message("g", f"{vehicleid},{group},{data}"))
        return True

    def _drop_car_groups(self, vehicleid: str) -> None:
        for group in list(self._group_data):
            members = self._group_data[group]
            members.pop(vehicleid, None)
            if not members:
                del self._group_data[group]

    # --- liveness -------------------------------------------------------------------------

    def sweep(self, now: float, liveness: Liveness) -> None:
        """Close silent connections and ping quiet cars (PROTOCOL.md section 6)."""
        timeouts, ping_after, ping_every = (
            liveness.timeouts, liveness.ping_after, liveness.ping_every)
        for peer in list(self._peers):
            limit = timeouts.get(peer.client_type)
            if limit is not None and now - peer.last_rx > limit:
                log.info("%s: silent for %.0f s, closing", peer.context(), now - peer.last_rx)
                peer.close("timeout")
                continue
            quiet = now - peer.last_tx >= ping_after
            if peer.is_car and quiet and now - peer.last_ping >= ping_every:
                peer.last_ping = now
                self.deliver(peer, Message("A"))
