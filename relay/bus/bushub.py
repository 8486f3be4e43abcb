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

The hub is built in layers, each a module with one job: ``peercounts`` (the shared
state, the queries and the peer counts), ``routing`` (traffic and commands),
``groups``, ``directory`` (the car directory and node membership) and this one
(liveness: beats, expiry, republishing, and the bus's entry point).
"""

from __future__ import annotations

import logging

import trio

from relay.bus import envelope as env
from relay.bus.directory import CAR_ARRIVED, CAR_LEFT, DirectoryHub
from relay.bus.peercounts import BusLink, BusSettings
from relay.hub import Hub

log = logging.getLogger("relay.bus")

# Cars per directory message: ~40 bytes each, well under NATS's 1 MB payload.
CARS_PER_LIST = 500


class _Muted:
    """The link of a node that said bye: publishes nothing, subscribes to nothing."""

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        pass

    def subscribe(self, subject: str) -> None:
        pass

    def unsubscribe(self, subject: str) -> None:
        pass


_MUTED = _Muted()


class BusHub(DirectoryHub):
    """``HubApi`` across relay processes; ``run`` beats, expires and republishes."""

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
            self._bus_joined = True
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
        """Tell the other nodes we stop: they drop our entries now, not after ``timeout``.

        Nothing goes out after it. The bridge still dispatches what arrives until its
        flush is done, and a beat due at the cancellation may still run: an answer
        (a ``SyncRequest`` to a node whose first beat came just now) or a beat after
        the bye would make the others count this node alive again, silent from then
        on, for ``timeout``."""
        self.link.publish(self.subjects.heartbeat,
                          env.pack(env.Beat(self.node, self.epoch, bye=True)))
        self.link = _MUTED

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
