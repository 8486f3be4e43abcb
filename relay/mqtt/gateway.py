"""v3 modules as connected cars: what the broker brings in, and what goes out to modules.

In: each batch from the bridge is parsed (``protocol.ovms_v3.topics``), checked
against the vehicle record (the owner segment must be the vehicle's owner), and
applied: metrics to the vehicle's ``VehicleState``, whose changed v2 messages are
then synthesised once per batch (one ``S`` per burst, not per metric) and handed
to ``Router.from_car`` exactly as a v2 car's messages are: stored as latest,
relayed to the apps, seen by API v4. ``notify/info|alert|error`` becomes the
``P`` a v2 module sends (apps and push subscriptions), ``notify/data`` the ``h``
record (stored durably), a command's response the ``c`` answer. While
``metric/s/v3/connected`` says the module is online, its car ``Peer`` is
registered with the hub: apps get ``Z1``, REST and v4 count it as connected.

Out (one task): the hub's ``Z``, ``C`` and pings to a module's peer become
presence (``client/<id>/active``), shell commands, and liveness marks. Presence
is wanted while the vehicle has apps or REST registrations (the ``Z`` count) or
API v4 monitors (``relay.wanted``). A ticker
task refreshes presence well inside the module's 120 s expiry, gives up commands
a module never answered, and rechecks owners.

In a cluster every node's gateway receives every message (no shared subscription:
the broker would spread a vehicle's messages over the nodes and lose their order)
and keeps every module's ``VehicleState``, but only the node that owns the vehicle
(``HubApi.owns_vehicle``, as for API v4) registers its car, stores, relays and
pushes, and publishes presence and commands. A node that becomes the owner (the
owning node died, or the vehicle's other car left) registers the car from its
up-to-date state and stores that state once (``_take_over``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

import trio

from protocol import Message
from protocol.messages import command_number
from protocol.ovms_v3 import commands, notify, topics
from protocol.ovms_v3.topics import Kind, V3Topic
from relay.hub import OWNER_GAINED
from relay.mqtt.bridge import MqttBridge, Received
from relay.mqtt.module import MAX_PENDING, ToModules, V3Module
from relay.router import Router
from relay.wanted import WantedVehicles

log = logging.getLogger("relay.mqtt")

# The module forgets a client 120 s after its last "active 1".
PRESENCE_REFRESH = 50.0
TICK = 5.0
# An owner check is repeated this often (a vehicle moved to another owner or deleted).
OWNER_RECHECK = 30.0
# Bigger than any topic's own bound (protocol.ovms_v3): refused before decoding.
MAX_PAYLOAD = 65536
# After a broker reconnect, how long an online module has to confirm it (a module
# retries its connection every 60 s; a persistent broker resends the flag at once).
RECONFIRM = 180.0
# Distinct refused (owner, vehicle) pairs remembered, so each is logged once.
MAX_REFUSED = 4096
TO_MODULES_SIZE = 10000
# Records whose broker ack waits for their commit, at most: each holds one of the
# broker's in-flight slots for this client (Mosquitto: 20), which commands'
# answers need too. Beyond it, records are acknowledged on arrival.
MAX_DEFERRED = 8
# Records another node owns are kept this long (at most RECORDS_KEPT per vehicle) and
# stored on taking the vehicle over: those a dead owner never committed are not lost
# (resends of a record are idempotent).
RECORDS_KEPT = 32
RECORD_KEEP = 60.0


class V3Gateway:
    """The ``BrokerHandler`` of the relay's broker connection."""

    def __init__(self, router: Router, bridge: MqttBridge, prefix: str, *,
                 client_id: str = "ovms-relay", command_timeout: float = 30.0,
                 wanted: WantedVehicles | None = None, settle: float = 0.0) -> None:
        """``settle``: in a cluster, how long after the start to own nothing, until the
        bus has told this node which cars other nodes hold (0: one process)."""
        self.router = router
        # Vehicles with v4 monitors: their modules are kept active without an app.
        self.wanted = wanted if wanted is not None else WantedVehicles()
        self.hub = router.hub
        self.store = router.store
        self.bridge = bridge
        self.prefix = prefix
        self.client_id = client_id
        self.command_timeout = command_timeout
        self.modules: dict[str, V3Module] = {}
        # (owner, vehicle id) refused -> when it was last checked (trio time)
        self._refused: dict[tuple[str, str], float] = {}
        self._to_modules: ToModules
        self._to_modules, self._from_hub = trio.open_memory_channel[
            tuple[V3Module, Message]](TO_MODULES_SIZE)
        self._nursery: trio.Nursery | None = None
        # notify/data messages awaiting their record's commit before their ack.
        self._unacked: dict[tuple[str, int], Received] = {}
        self._deferred = False
        self.stats_messages = 0
        self._settle = settle
        self._settled = settle <= 0
        # Vehicles this node may have become the owner of (``_take_over`` checks).
        self._gained: set[str] = set()
        self._gained_wake = trio.Event()
        # One task at a time hands a module's messages to the router (order kept).
        self._lock = trio.Lock()
        self._records: dict[str, deque[tuple[float, Message]]] = {}

    async def run(self, nursery: trio.Nursery, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """``nursery``: the server-wide one the router starts ``h`` acks in."""
        self._nursery = nursery
        self.wanted.listen(self._on_wanted)
        self.hub.on_notice(OWNER_GAINED, self._on_owner_gained)
        try:
            async with trio.open_nursery() as own:
                await own.start(self.bridge.run, self)
                own.start_soon(self._to_modules_task)
                own.start_soon(self._ticker)
                own.start_soon(self._gains_task)
                task_status.started()
        finally:
            self.wanted.unlisten(self._on_wanted)

    # --- from the broker ------------------------------------------------------------

    async def on_messages(self, batch: list[Received]) -> None:
        async with self._lock:
            await self._on_messages(batch)

    async def _on_messages(self, batch: list[Received]) -> None:
        touched: dict[str, V3Module] = {}
        for received in batch:
            self._deferred = False
            try:
                module = await self._one(received)
            finally:
                # Every message is acknowledged to the broker once handled (or
                # refused), a historical record only once it is committed.
                if not self._deferred:
                    self.bridge.ack(received)
            if module is not None and module.dirty:
                touched[module.vehicleid] = module
        for module in touched.values():
            await self._flush(module)

    async def _one(self, received: Received) -> V3Module | None:
        self.stats_messages += 1
        topic = topics.parse_topic(self.prefix, received.topic)
        if topic is None:
            log.info("mqtt: topic %r ignored: not an OVMS v3 topic", received.topic[:128])
            return None
        if topic.kind in (Kind.CLIENT_ACTIVE, Kind.CLIENT_COMMAND):
            return None  # clients' messages to the module (ours among them)
        if len(received.payload) > MAX_PAYLOAD:
            log.info("mqtt: vehicle=%s %s ignored: payload of %d bytes",
                     topic.vehicleid, received.topic[:128], len(received.payload))
            return None
        module = await self._module(topic)
        if module is None:
            return None
        peer = module.sending_peer(self.hub.new_id, self._to_modules)
        peer.last_rx = trio.current_time()
        peer.rx_bytes += len(received.topic) + len(received.payload)
        if topic.kind is Kind.METRIC:
            await self._metric(module, topic, received)
        elif topic.kind is Kind.NOTIFY:
            await self._notify(module, topic, received)
        elif topic.kind is Kind.DATA:
            await self._data(module, topic, received)
        elif topic.kind is Kind.CLIENT_RESPONSE:
            self._response(module, topic, received)
        # Events: nothing of the v2 protocol carries them.
        return module

    async def _module(self, topic: V3Topic) -> V3Module | None:
        """The vehicle's module if ``topic``'s owner owns it; None (logged once) if not.

        Answers from memory between checks: a burst of retained garbage under an
        unknown vehicle costs one store lookup per ``OWNER_RECHECK``, not one each.
        """
        now = trio.current_time()
        key = (topic.owner, topic.vehicleid)
        module = self.modules.get(topic.vehicleid)
        if module is not None and module.owner == topic.owner:
            if now - module.checked_at < OWNER_RECHECK:
                return module
        else:
            refused_at = self._refused.get(key)
            if refused_at is not None and now - refused_at < OWNER_RECHECK:
                return None
        vehicle = await self.store.get_vehicle(topic.vehicleid)
        if vehicle is None or vehicle.owner != topic.owner:
            self._refuse(key, now, "unknown vehicle" if vehicle is None
                         else "the user segment is not the vehicle's owner")
            if module is not None and (vehicle is None or vehicle.owner != module.owner):
                self._forget(module, "vehicle deleted or moved to another owner")
            return None
        self._refused.pop(key, None)
        if module is None or module.owner != topic.owner:
            module = self.modules[topic.vehicleid] = V3Module(
                topic.vehicleid, topic.owner, now)
        module.checked_at = now
        return module

    def _refuse(self, key: tuple[str, str], now: float, reason: str) -> None:
        first = key not in self._refused
        if first and len(self._refused) >= MAX_REFUSED:
            self._refused.pop(next(iter(self._refused)))
        self._refused[key] = now
        if first:
            log.warning("mqtt: messages of vehicle %r under user %r ignored: %s",
                        key[1], key[0], reason)

    async def _metric(self, module: V3Module, topic: V3Topic, received: Received) -> None:
        applied = module.state.apply(topic.name, received.payload)
        if applied.rejected is not None:
            log.info("mqtt: %s metric %s ignored: %s", module.context(), topic.name[:64],
                     applied.rejected)
            return
        module.dirty |= applied.codes
        if topic.name == topics.CONNECTED_METRIC and module.state.online:
            module.confirm_by = None
        if (topic.name == topics.CONNECTED_METRIC and applied.online is None
                and not received.retain and module.active and module.peer is not None):
            # The module connected again (it sends its flag live on every connect) and
            # may have restarted, forgetting its clients: tell it at once, not at the
            # next refresh.
            self._publish_active(module, True)
        if applied.online is not None:
            # Messages synthesised so far belong before the change of state.
            await self._flush(module)
            self._set_online(module, applied.online)

    async def _notify(self, module: V3Module, topic: V3Topic, received: Received) -> None:
        msg = notify.push_message(topic, received.payload)
        if isinstance(msg, notify.Refused):
            log.info("mqtt: %s notify/%s ignored: %s", module.context(), topic.notify_type,
                     msg.reason)
            return
        await self._from_car(module, msg)

    async def _data(self, module: V3Module, topic: V3Topic, received: Received) -> None:
        record = notify.data_record(topic, received.payload)
        if isinstance(record, notify.Refused):
            log.info("mqtt: %s notify/data ignored: %s", module.context(), record.reason)
            return
        # A v2 module's ``h``: stored durably by the router, whose ack (after the
        # commit) acknowledges the message to the broker. Until then the broker
        # holds it (persistent session) and resends it if the relay stops first.
        if not self._owner(module):
            self._keep_record(module.vehicleid, record.to_message())
            return
        key = (module.vehicleid, record.entry)
        if self.bridge.persistent and len(self._unacked) < MAX_DEFERRED \
                and key not in self._unacked:
            self._unacked[key] = received
            self._deferred = True
        await self._from_car(module, record.to_message())

    async def _flush(self, module: V3Module) -> None:
        if not module.dirty:
            return
        codes, module.dirty = module.dirty, set()
        for msg in module.state.messages(codes):
            await self._from_car(module, msg)

    async def _from_car(self, module: V3Module, msg: Message) -> None:
        if not self._owner(module):
            return  # the owning node stores and relays it
        peer = module.sending_peer(self.hub.new_id, self._to_modules)
        assert self._nursery is not None
        await self.router.from_car(peer, msg, self._nursery)

    # --- online state ---------------------------------------------------------------

    def _set_online(self, module: V3Module, online: bool) -> None:
        if online and module.peer is None and self._owner(module):
            peer = module.new_peer(self.hub.new_id("v3-"), self._to_modules)
            module.peer = peer
            module.active = module.apps = False
            # Sends Z to the apps and the app count to the module (presence).
            self.hub.register(peer)
            log.info("%s: v3 module online", peer.context())
        elif not online and module.peer is not None:
            self._unregister(module, "module offline")

    def _unregister(self, module: V3Module, reason: str) -> None:
        peer, module.peer = module.peer, None
        was_active, module.active, module.apps = module.active, False, False
        if peer is None:
            return
        peer.outbox.close()
        if was_active and module.state.online and peer.close_reason is not None:
            # Another car took the vehicle (on this node or another) while the module
            # stays online: it should not stay in its fast mode for us.
            self._publish_active(module, False)
        # Commands it has not answered end with the car, as for a v2 car leaving.
        module.pending.clear()
        self.hub.unregister(peer)
        log.info("%s: v3 module disconnected (%s)", peer.context(),
                 peer.close_reason or reason)

    def _forget(self, module: V3Module, reason: str) -> None:
        self._unregister(module, reason)
        self.modules.pop(module.vehicleid, None)
        self._records.pop(module.vehicleid, None)

    # --- ownership (a cluster) --------------------------------------------------------

    def _owner(self, module: V3Module) -> bool:
        """This node registers, stores, relays and commands the module's vehicle."""
        peer = module.peer
        if peer is not None and peer.close_reason is not None:
            # Closed by the hub (a newer car of the vehicle, here or on another node):
            # that car's node is the owner now; the ticker would notice it later.
            self._unregister(module, peer.close_reason)
            peer = None
        if peer is not None:
            return True
        return self._settled and self.hub.owns_vehicle(module.vehicleid)

    def _on_owner_gained(self, vehicleid: str) -> None:
        if vehicleid in self.modules:
            self._gained.add(vehicleid)
            self._gained_wake.set()

    async def _gains_task(self) -> None:
        if not self._settled:
            await trio.sleep(self._settle)
            self._settled = True
            self._gained.update(self.modules)
        while True:
            if not self._gained:
                self._gained_wake = trio.Event()
                await self._gained_wake.wait()
            gained, self._gained = self._gained, set()
            async with self._lock:
                for vehicleid in gained:
                    module = self.modules.get(vehicleid)
                    if module is not None:
                        await self._take_over(module)

    async def _take_over(self, module: V3Module) -> None:
        """Own the vehicle if this node should and does not yet: its car registered
        (if the module is online and no other car is), its current state stored and
        relayed, the records another owner may not have committed stored."""
        vehicleid = module.vehicleid
        if module.peer is not None or not self._owner(module):
            return
        if self.hub.car_connected(vehicleid):
            return  # a v2 car of the vehicle, on this node: its messages count
        # Stored before the car is registered: an app that sees it connected finds
        # its state.
        records = self._records.pop(vehicleid, None)
        module.dirty |= module.state.codes()
        await self._flush(module)
        now = trio.current_time()
        for at, record in records or ():
            if now - at <= RECORD_KEEP:
                await self._from_car(module, record)
        if module.state.online:
            self._set_online(module, True)

    def _keep_record(self, vehicleid: str, record: Message) -> None:
        kept = self._records.get(vehicleid)
        if kept is None:
            kept = self._records[vehicleid] = deque(maxlen=RECORDS_KEPT)
        kept.append((trio.current_time(), record))

    def on_connected(self) -> None:
        now = trio.current_time()
        for module in self.modules.values():
            if module.peer is not None:
                module.confirm_by = now + RECONFIRM
            # Presence the module may have expired while the relay was away.
            if module.active:
                self._publish_active(module, True)

    def on_disconnected(self) -> None:
        pass  # modules' online state comes from their retained flags after reconnecting

    # --- to modules -----------------------------------------------------------------

    async def _to_modules_task(self) -> None:
        async for module, msg in self._from_hub:
            if msg.code == "h":
                self._record_committed(module, msg.data)
                continue
            if module.peer is None:
                continue  # offline (an idle peer's ack) or gone
            if msg.code == "Z":
                self._presence(module, msg.data)
            elif msg.code == "C":
                self._command(module, msg)
            elif msg.code == "A":
                module.peer.last_rx = trio.current_time()

    def _record_committed(self, module: V3Module, entry: str) -> None:
        try:
            received = self._unacked.pop((module.vehicleid, int(entry)))
        except (KeyError, ValueError):
            return
        self.bridge.ack(received)

    def _presence(self, module: V3Module, count: str) -> None:
        module.apps = count.strip() not in ("", "0")
        self._update_presence(module)

    def _on_wanted(self, vehicleid: str, wanted: bool) -> None:
        module = self.modules.get(vehicleid)
        if module is not None and module.peer is not None:
            self._update_presence(module)

    def _update_presence(self, module: V3Module) -> None:
        wanted = module.apps or self.wanted.wanted(module.vehicleid)
        if wanted != module.active:
            module.active = wanted
            self._publish_active(module, wanted)

    def _publish_active(self, module: V3Module, active: bool) -> None:
        # Not retained: a retained "1" would outlive the relay and make modules
        # report fast for nobody after every reconnect.
        topic = topics.active_topic(self.prefix, module.owner, module.vehicleid, self.client_id)
        self.bridge.publish(topic, b"1" if active else b"0", qos=1)

    def _command(self, module: V3Module, msg: Message) -> None:
        number = command_number(msg.data)
        if number is None:
            return
        params = msg.data.split(",")[1:]
        shell = commands.shell_command(number, params)
        if shell is None:
            self.hub.command_response(module.vehicleid, commands.refusal(number, params))
            return
        if len(module.pending) >= MAX_PENDING:
            self._give_up(module, next(iter(module.pending)), "too many unanswered")
        n = module.add_command(number, trio.current_time())
        topic = topics.command_topic(self.prefix, module.owner, module.vehicleid,
                                     self.client_id, n)
        if not self.bridge.publish(topic, shell.encode(), qos=1):
            self._give_up(module, n, "the broker queue is full")
            return
        log.info("%s: command %d sent as %r (#%d)", module.context(), number, shell, n)

    def _response(self, module: V3Module, topic: V3Topic, received: Received) -> None:
        if topic.client_id != self.client_id or topic.number is None:
            return  # another client's answer
        pending = module.pending.pop(topic.number, None)
        if pending is None:
            log.info("%s: answer to unknown command #%d ignored", module.context(),
                     topic.number)
            return
        # The hub hands answers to waiting senders in order: commands sent before this
        # one and never answered are answered first, as failed, so no sender gets
        # another's answer.
        for older in [n for n in module.pending if n < topic.number]:
            self._give_up(module, older, "no answer")
        text = received.payload.decode("utf-8", "replace")
        self.hub.command_response(module.vehicleid, commands.answer(pending.number, text))

    def _give_up(self, module: V3Module, n: int, why: str) -> None:
        pending = module.pending.pop(n, None)
        if pending is None:
            return
        log.info("%s: command %d (#%d) given up: %s", module.context(), pending.number, n, why)
        self.hub.command_response(
            module.vehicleid, Message("c", f"{pending.number},{commands.FAILED},{why}"))

    # --- ticker ---------------------------------------------------------------------

    async def _ticker(self) -> None:
        last_refresh = trio.current_time()
        while True:
            await trio.sleep(TICK)
            now = trio.current_time()
            refresh = now - last_refresh >= PRESENCE_REFRESH
            if refresh:
                last_refresh = now
            self.tick(now, refresh=refresh)

    def tick(self, now: float, *, refresh: bool) -> None:
        for module in list(self.modules.values()):
            peer = module.peer
            if peer is not None and peer.close_reason is not None:
                # Closed by the hub: a v2 car logged in for the vehicle, or its
                # outbound queue overflowed. The module counts as offline until its
                # online flag is set again.
                self._unregister(module, peer.close_reason)
                continue
            if peer is not None and module.confirm_by is not None and now > module.confirm_by:
                log.info("%s: online flag not confirmed since the broker came back",
                         module.context())
                module.state.online = False
                module.confirm_by = None
                self._unregister(module, "not confirmed after a broker outage")
                continue
            expired = [n for n, p in module.pending.items()
                       if now - p.sent_at > self.command_timeout]
            for n in expired:
                self._give_up(module, n, "no answer from the module")
            if refresh and module.active and module.peer is not None:
                self._publish_active(module, True)
            if (module.peer is None and module.state.online and self._settled
                    and not self.hub.car_connected(module.vehicleid)
                    and self.hub.owns_vehicle(module.vehicleid)):
                # A take-over whose notice this node missed (views that settled late).
                self._on_owner_gained(module.vehicleid)
        stale = now - RECORD_KEEP
        for vehicleid, kept in list(self._records.items()):
            while kept and kept[0][0] < stale:
                kept.popleft()
            if not kept:
                del self._records[vehicleid]

    # --- views for tests and ovms-bench ------------------------------------------------

    def online(self) -> Iterable[str]:
        return (vid for vid, m in self.modules.items() if m.peer is not None)


__all__ = ["PRESENCE_REFRESH", "V3Gateway"]
