"""The bus hub's traffic: car messages to the nodes that want them, clients' messages
and commands to the car's node, and the answers back to the node that asked.

The car's node sends its messages to the inboxes of the nodes holding clients of the
vehicle (it has their counts); a command to a car on another node waits here, by
token, until its node answers (``Answer``) or is known gone (docs/cluster-bus.md).
"""

from __future__ import annotations

import logging

from protocol import CommandResponse, Message
from relay.bus import envelope as env
from relay.bus.peercounts import PeerCountsHub, PendingCommand
from relay.hub import OWNER_GAINED, Hub, Waiting
from relay.hubapi import CommandWaiter, Peer

log = logging.getLogger("relay.bus")

# Commands sent to cars on other nodes and not yet fully answered, per node: beyond
# this the oldest is forgotten (its waiter told "no answer"), as MAX_WAITING per car.
MAX_PENDING_COMMANDS = 4 * 1024


class ReplySink:
    """A remote sender's answers: published to its node's inbox (the car's node side)."""

    def __init__(self, hub: PeerCountsHub, node: str, token: int) -> None:
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


class RoutingHub(PeerCountsHub):
    """Delivery and commands across nodes, and the handlers of what they send."""

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

    def announce(self, topic: str, *args: str) -> None:
        self.link.publish(self.subjects.notices, env.pack(env.Notice(self.node, topic, args)))

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


__all__ = ["MAX_PENDING_COMMANDS", "ReplySink", "RoutingHub"]
