"""The bus hub's groups (``g``/``G``): a car's group data published to the group's
subject, a subscriber's first answer asked of every node (docs/cluster-bus.md)."""

from __future__ import annotations

from protocol import Message
from relay.bus import envelope as env
from relay.bus.routing import RoutingHub
from relay.hubapi import Peer

MAX_GROUP_QUERIES = 1024


class GroupsHub(RoutingHub):
    """Groups that span nodes."""

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

    def _leave_groups(self, peer: Peer) -> None:
        """Stop listening to groups no client of this node is subscribed to any more."""
        for group in peer.groups or ():
            if group not in self._group_members and group in self._group_subs:
                self._group_subs.discard(group)
                self.link.unsubscribe(self.subjects.group(group))

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


__all__ = ["MAX_GROUP_QUERIES", "GroupsHub"]
