"""The bus hub's car directory and node membership: which node holds which car.

A car's login and logout are announced to every node (``CarOnline``/``CarOffline``),
so any node answers ``car_connected`` and routes to the car's node; the newest login
of a vehicle wins and the node holding the older car closes it. A node seen with a
higher restart counter, saying bye or gone silent (``relay.bus.bushub``) loses what
it announced here (docs/cluster-bus.md).
"""

from __future__ import annotations

import logging

import trio

from relay.bus import envelope as env
from relay.bus.groups import GroupsHub
from relay.bus.peercounts import CarAt, LoginWait, NodeState, RemoteCounts
from relay.hub import OWNER_GAINED
from relay.hubapi import Peer, Watcher

log = logging.getLogger("relay.bus")

# Local notices (never on the bus): this node now holds, or no longer holds, the
# vehicle's car (the store caches only such vehicles' latest messages).
CAR_ARRIVED = "bus.car-arrived"
CAR_LEFT = "bus.car-left"


class DirectoryHub(GroupsHub):
    """Logins and logouts announced across nodes; the nodes and the cars they hold."""

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
        since = max(self.clock.wall(), at.since + 0.001 if at is not None else 0.0)
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
        self._leave_groups(peer)

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


__all__ = ["CAR_ARRIVED", "CAR_LEFT", "DirectoryHub"]
