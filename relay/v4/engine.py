"""The v4 engine: what API v4 does in the background, fed by the router.

``Router`` hands every stored car message to ``car_message`` (never blocks: a
bounded queue; a full one drops the message, logged). One task takes them in
order and, per vehicle, keeps its own copy of the latest messages (so monitors
and trips see the messages in the order the car sent them, even when the task
runs behind), then:

- records telemetry samples (changed values of ``TELEMETRY_PATHS``, at most
  every ``telemetry_interval`` seconds per vehicle);
- feeds the trip builder (``trips.feed``) on ``L``/``D``/``S``; finished trips and
  the builder state are stored, so a trip in progress survives a restart;
- evaluates the vehicle's monitors and hands ready batches to the callback sender.

The same task wakes up every ``monitor_tick`` seconds, and at the next batch or trip
deadline, for what happens without a message: time windows opening, batch windows
closing, parked cars ending their trip. Doing all of it in one task means no two
evaluations of a monitor ever interleave.

The engine's nursery also owns the callback sender and the remote-action tasks.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any

import attrs
import trio

from relay.clock import SYSTEM_CLOCK, Clock, trio_deadline
from relay.commands import CommandFailed, CommandService
from relay.config import Config
from relay.hub import OWNER_GAINED
from relay.hubapi import HubApi
from relay.logsafe import redact_url
from relay.outbound.urlpolicy import UrlPolicy, describe
from relay.store import Store, StoreClosed
from relay.v4 import alerts, datapaths, hal, monitor_model, monitor_parse, monitors, persist, trips
from relay.v4.actions import ActionTable, RemoteActionRecord
from relay.v4.callbacks import CallbackJob, CallbackSender, vin_of
from relay.v4.jsonparse import InvalidRequest
from relay.wanted import WantedVehicles

log = logging.getLogger("relay.v4")

# Recorded for /telemetry: what people plot. Every value is a number (flags as 0/1).
TELEMETRY_PATHS: tuple[str, ...] = (
    "vehicle.energy.electric.level", "vehicle.energy.electric.autonomy",
    "vehicle.energy.electric.temperature", "vehicle.charging.power",
    "vehicle.charging.active", "vehicle.power", "vehicle.speed", "vehicle.odometer",
    "vehicle.battery.12v", "vehicle.temperature.ambient", "vehicle.ignition",
    "vehicle.position.latitude", "vehicle.position.longitude",
)
# A trip in progress is stored at least this often (and at once when it starts, pauses
# or ends): a crash loses at most this much of its distance.
TRIP_SAVE_INTERVAL = 30.0
_ALERT_WRAP = 65536
_TRIP_CODES = frozenset("LDS")
# The notice another process of a cluster gets when a vehicle's monitors changed here.
MONITORS_CHANGED = "v4.monitors"
# Car messages the engine takes from its queue in one go (see _process_batch).
_PER_MESSAGE_CODES = frozenset("LD")
_MAX_BATCH = 1000
_DROP_LOG_EVERY = 10.0  # seconds between "queue full" log lines


@attrs.frozen
class CarMessage:
    vehicleid: str
    code: str
    data: str
    at: float


@attrs.frozen
class Reload:
    """Read a vehicle's monitors and trip state from the store again: another process
    of a cluster changed them (or ran them until now)."""

    vehicleid: str


_Item = CarMessage | Reload | trio.Event


@attrs.define(eq=False)
class MonitorEntry:
    monitorid: str
    vehicleid: str
    owner: str
    monitor: monitor_model.Monitor
    state: monitors.MonitorState
    batch: monitors.Batch
    created: float
    updated: float

    def row(self) -> persist.MonitorRow:
        return persist.MonitorRow(
            self.monitorid, self.vehicleid, self.owner, monitor_parse.monitor_to_json(self.monitor),
            monitors.state_to_json(self.state), monitors.batch_to_json(self.batch),
            self.created, self.updated)


@attrs.define
class EngineStats:
    messages: int = 0
    dropped: int = 0  # car messages lost to a full queue
    events: int = 0  # monitor firings
    trips: int = 0  # trips finished
    samples: int = 0  # telemetry rows written


class V4Engine:
    """Create, then run with ``await nursery.start(engine.run)``."""

    def __init__(self, config: Config, store: Store, commands: CommandService,
                 policy: UrlPolicy | None = None, *, clock: Clock = SYSTEM_CLOCK,
                 wanted: WantedVehicles | None = None) -> None:
        self.config = config
        # Vehicles with monitors: the v3 gateway keeps their modules reporting fast.
        self.wanted = wanted if wanted is not None else WantedVehicles()
        # Monitor windows, trips and actions are wall moments (stored, shown); every
        # wait is on trio's clock: see relay.clock.
        self.clock = clock
        self.store = store
        self.commands = commands
        self.policy = policy or UrlPolicy(config.webhook_allow)
        self.stats = EngineStats()
        self.actions = ActionTable(config.remote_action_max, config.remote_action_ttl)
        self.callbacks = CallbackSender(
            self.policy, timeout=config.callback_timeout, queue_size=config.callback_queue_size,
            workers=config.callback_workers, alerts_for=self.recent_alerts,
            gave_up=self._callback_failed, store=store, clock=clock)
        self.trip_config = trips.TripConfig(end_after=config.trip_end_after,
                                            max_silence=config.trip_max_silence)
        self._send, self._recv = trio.open_memory_channel[_Item](
            max(1, config.v4_queue_size))
        self._snapshots: dict[str, dict[str, str]] = {}
        self._location_at: dict[str, float] = {}
        self._monitors: dict[str, MonitorEntry] = {}
        self._by_vehicle: dict[str, dict[str, MonitorEntry]] = {}
        self._trip_states: dict[str, trips.TripState] = {}
        self._trip_saved: dict[str, float] = {}
        self._sampled: dict[str, tuple[float, dict[str, float]]] = {}
        self._alert_seq = itertools.count(secrets.randbelow(_ALERT_WRAP))
        self._nursery: trio.Nursery | None = None
        self._next_tick = 0.0
        # Wall time of the earliest batch or trip deadline (inf: none). Lowered as
        # deadlines appear, recomputed by a full scan only in _tick: a scan per
        # message would cost O(vehicles) each time.
        self._wake_at = math.inf
        self._dropped_logged = -math.inf
        # A cluster (relay.bus): which vehicles' monitors and trips this process runs
        # (the car's node), and who to tell that a vehicle's monitors changed here.
        self.owns: Callable[[str], bool] = lambda vehicleid: True
        self.on_monitors_changed: Callable[[str], None] = lambda vehicleid: None

    # ------------------------------------------------------------- router side (sync)

    def car_message(self, vehicleid: str, code: str, data: str) -> None:
        """A car message the router stored; never blocks."""
        try:
            self._send.send_nowait(CarMessage(vehicleid, code, data, self.clock.wall()))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.stats.dropped += 1
            now = self.clock.now()
            if now - self._dropped_logged >= _DROP_LOG_EVERY:
                # One line per interval, not per message: a flood must not become a log flood.
                log.warning("vehicle=%s v4 queue full, %s message dropped (%d dropped so far)",
                            vehicleid, code, self.stats.dropped)
                self._dropped_logged = now

    def join(self, hub: HubApi) -> None:
        """Run only the vehicles ``hub`` says this process owns, and keep their monitors
        the same on every process of a cluster (no-ops in one process)."""
        self.owns = hub.owns_vehicle
        self.on_monitors_changed = lambda vehicleid: hub.announce(MONITORS_CHANGED, vehicleid)
        hub.on_notice(MONITORS_CHANGED, self.vehicle_changed)
        hub.on_notice(OWNER_GAINED, self.vehicle_changed)

    def vehicle_changed(self, vehicleid: str) -> None:
        """Another process changed the vehicle's monitors or ran its background work until
        now: read its state afresh (in the engine's task, in order with its messages)."""
        try:
            self._send.send_nowait(Reload(vehicleid))
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.warning("vehicle=%s v4 queue full, its monitors are not reloaded", vehicleid)

    async def drain(self) -> None:
        """Wait until every message queued so far is processed and callbacks are idle."""
        done = trio.Event()
        await self._send.send(done)
        await done.wait()
        await self.callbacks.wait_idle()

    # ------------------------------------------------------------- tasks

    async def run(self, *, task_status: trio.TaskStatus[V4Engine] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        await self._load()
        retention = self.config.telemetry_retention

        def purge(conn: Any, *, now: float, limit: int) -> int:
            return persist.purge_telemetry(conn, now=now, limit=limit, retention=retention)

        self.store.add_purge("v4_telemetry", purge)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.callbacks.run)
                nursery.start_soon(self._loop)
                log.info("API v4 engine running (%d monitors, %d trips in progress)",
                         len(self._monitors),
                         sum(1 for s in self._trip_states.values() if s.open is not None))
                task_status.started(self)
        finally:
            # Trips in progress are saved at most every TRIP_SAVE_INTERVAL: save them
            # all now, so a restart continues them where they were.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._save_open_trips()

    async def _save_open_trips(self) -> None:
        for vehicleid, state in list(self._trip_states.items()):
            if state.open is not None:
                try:
                    await persist.save_trip_state(self.store, vehicleid,
                                                  trips.state_to_json(state), self.clock.wall())
                except StoreClosed:
                    return

    async def _load(self) -> None:
        for row in await persist.load_monitors(self.store):
            try:
                entry = _entry_of(row)
            except (InvalidRequest, ValueError, KeyError, TypeError) as exc:
                log.error("vehicle=%s monitor=%s cannot be loaded, skipped: %s",
                          row.vehicleid, row.monitorid, exc)
                continue
            self._register(entry)
        for vehicleid, data in (await persist.load_trip_states(self.store)).items():
            try:
                self._trip_states[vehicleid] = trips.state_from_json(data)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("vehicle=%s trip state cannot be loaded: %s", vehicleid, exc)

    async def _loop(self) -> None:
        self._next_tick = self.clock.now() + self.config.monitor_tick
        while True:
            items: list[_Item] = []
            with trio.move_on_at(self._deadline()):
                items.append(await self._recv.receive())
            # Take whatever else is already queued: under a burst, a vehicle's messages
            # are applied in order but reacted to once (see _process_batch).
            while items and len(items) < _MAX_BATCH:
                try:
                    items.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await self._process_batch(items)
                if not items or self.clock.now() >= self._next_tick \
                        or self.clock.wall() >= self._wake_at:
                    await self._tick()
            except StoreClosed:
                return
            except Exception:  # one bad message must not stop the engine
                log.exception("v4 engine: processing failed")

    async def _process_batch(self, items: list[_Item]) -> None:
        """Apply each message to its vehicle's snapshot, then react once per vehicle.

        At normal rates a batch holds one message per vehicle and this is exactly
        "react to every message". When the relay outpaces the engine, reacting to the
        vehicle's latest state once per batch keeps up instead of falling behind and
        dropping messages. Positions, ignition changes and monitored vehicles are
        always reacted to per message.
        """
        dirty: dict[str, tuple[float, set[str]]] = {}
        for item in items:
            if isinstance(item, trio.Event):
                await self._react_all(dirty)  # drain() promises everything before it
                item.set()
                continue
            if isinstance(item, Reload):
                await self._react_all(dirty)
                await self._reload(item.vehicleid)
                continue
            self.stats.messages += 1
            snapshot = await self.snapshot(item.vehicleid, as_of=item.at)
            snapshot[item.code] = item.data
            if item.code == "L":
                self._location_at[item.vehicleid] = item.at
            _, codes = dirty.pop(item.vehicleid, (item.at, set()))
            codes.add(item.code)
            if item.code in _PER_MESSAGE_CODES or item.vehicleid in self._by_vehicle:
                # Every position and ignition change counts for a trip's distance and
                # end, and monitors fire on edges (coalescing 40 -> 60 -> 40 would hide
                # one): those are reacted to per message.
                await self._react(item.vehicleid, item.at, codes)
            else:
                dirty[item.vehicleid] = (item.at, codes)
        await self._react_all(dirty)

    async def _react_all(self, dirty: dict[str, tuple[float, set[str]]]) -> None:
        for vehicleid, (at, codes) in dirty.items():
            await self._react(vehicleid, at, codes)
        dirty.clear()

    def _deadline(self) -> float:
        """The trio time of the next thing due without a message."""
        if self._wake_at == math.inf:
            return self._next_tick
        return min(self._next_tick, trio_deadline(self.clock, self._wake_at))

    def _trip_due(self, state: trips.TripState) -> float:
        trip = state.open
        if trip is None:
            return math.inf
        if trip.off_since is not None:
            return trip.off_since + self.trip_config.end_after
        return trip.last_at + self.trip_config.max_silence

    def _batch_due(self, entry: MonitorEntry) -> float:
        due = monitors.batch_deadline(entry.monitor.batch, entry.batch)
        return math.inf if due is None else due

    async def _tick(self) -> None:
        now = self.clock.wall()
        self._next_tick = self.clock.now() + self.config.monitor_tick
        # In a cluster, another process may run a vehicle: only its owner evaluates.
        for vehicleid in list(self._by_vehicle):
            if self.owns(vehicleid):
                snapshot = await self.snapshot(vehicleid)
                await self._evaluate(vehicleid, snapshot, now)
        for vehicleid, state in list(self._trip_states.items()):
            if state.open is not None and self.owns(vehicleid):
                new, ended = trips.tick(state, now, self.trip_config)
                await self._trip_update(vehicleid, state, new, ended, now)
        self.actions.expire(now)
        wake = math.inf
        for entry in self._monitors.values():
            wake = min(wake, self._batch_due(entry))
        for state in self._trip_states.values():
            wake = min(wake, self._trip_due(state))
        self._wake_at = wake

    async def _react(self, vehicleid: str, at: float, codes: set[str]) -> None:
        snapshot = await self.snapshot(vehicleid)
        await self._sample(vehicleid, snapshot, at)
        if not codes.isdisjoint(_TRIP_CODES):
            state = self._trip_states.get(vehicleid, trips.TripState())
            new, ended = trips.feed(state, trips.sample_from_snapshot(at, snapshot),
                                    self.trip_config)
            await self._trip_update(vehicleid, state, new, ended, at)
        if vehicleid in self._by_vehicle:
            await self._evaluate(vehicleid, snapshot, at)

    # ------------------------------------------------------------- vehicle state

    async def snapshot(self, vehicleid: str, as_of: float | None = None) -> dict[str, str]:
        """The engine's copy of the vehicle's latest (readable) messages, code -> data.

        Made from the store on first use; ``as_of`` leaves out what the store got after
        that time (still queued here: it will be applied in its turn).
        """
        snapshot = self._snapshots.get(vehicleid)
        if snapshot is None:
            latest = await self.store.latest(vehicleid)
            snapshot = self._snapshots.setdefault(vehicleid, {
                c: m.data for c, m in latest.items()
                if not m.paranoid and (as_of is None or m.msgtime <= as_of)})
            located = latest.get("L")
            if located is not None and not located.paranoid:
                self._location_at.setdefault(vehicleid, located.msgtime)
        return snapshot

    def location_at(self, vehicleid: str) -> float | None:
        return self._location_at.get(vehicleid)

    async def _sample(self, vehicleid: str, snapshot: dict[str, str], at: float) -> None:
        last = self._sampled.get(vehicleid)
        if last is not None and at - last[0] < self.config.telemetry_interval:
            return
        values: dict[str, float] = {}
        for path in TELEMETRY_PATHS:
            value = datapaths.value_of(path, snapshot)
            if isinstance(value, bool):
                values[path] = 1.0 if value else 0.0
            elif isinstance(value, float):
                values[path] = value
        previous = last[1] if last is not None else {}
        changed = [(p, v) for p, v in values.items() if previous.get(p) != v]
        self._sampled[vehicleid] = (at, values)
        if changed:
            self.stats.samples += len(changed)
            await persist.add_samples(self.store, vehicleid, int(at), changed)

    # ------------------------------------------------------------- trips

    async def _trip_update(self, vehicleid: str, old: trips.TripState, new: trips.TripState,
                           ended: list[trips.Trip], now: float) -> None:
        self._trip_states[vehicleid] = new
        self._wake_at = min(self._wake_at, self._trip_due(new))
        for trip in ended:
            self.stats.trips += 1
            log.info("vehicle=%s trip ended: %.3f km in %.0f s", vehicleid, trip.distance_km,
                     trip.duration_s)
            await persist.add_trip(self.store, vehicleid, trip.start_at, trip.end_at,
                                   trips.trip_to_json(trip))
        if old.open is None and new.open is not None:
            log.info("vehicle=%s trip started", vehicleid)
        changed = (old.open is None) != (new.open is None) or bool(ended) or (
            old.open is not None and new.open is not None
            and old.open.off_since != new.open.off_since)
        due = new.open is not None and now - self._trip_saved.get(vehicleid, 0.0) \
            >= TRIP_SAVE_INTERVAL
        if changed or due:
            self._trip_saved[vehicleid] = now
            await persist.save_trip_state(self.store, vehicleid, trips.state_to_json(new),
                                          self.clock.wall())

    async def _reload(self, vehicleid: str) -> None:
        """``vehicle_changed``: the store's monitors and trip state of the vehicle replace
        ours, and its snapshot is made afresh from the store on next use."""
        self._snapshots.pop(vehicleid, None)
        self._location_at.pop(vehicleid, None)
        for entry in list(self._by_vehicle.get(vehicleid, {}).values()):
            self._unregister(entry)
        for row in await persist.vehicle_monitors(self.store, vehicleid):
            try:
                self._register(_entry_of(row))
            except (InvalidRequest, ValueError, KeyError, TypeError) as exc:
                log.error("vehicle=%s monitor=%s cannot be loaded, skipped: %s",
                          row.vehicleid, row.monitorid, exc)
        data = await persist.vehicle_trip_state(self.store, vehicleid)
        self._trip_states.pop(vehicleid, None)
        if data is not None:
            try:
                self._trip_states[vehicleid] = trips.state_from_json(data)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("vehicle=%s trip state cannot be loaded: %s", vehicleid, exc)
        log.info("vehicle=%s v4 state reloaded (%d monitors)", vehicleid,
                 len(self._by_vehicle.get(vehicleid, {})))

    def trip_state(self, vehicleid: str) -> trips.TripState | None:
        return self._trip_states.get(vehicleid)

    # ------------------------------------------------------------- monitors

    def _register(self, entry: MonitorEntry) -> None:
        self._monitors[entry.monitorid] = entry
        self._by_vehicle.setdefault(entry.vehicleid, {})[entry.monitorid] = entry
        self.wanted.set(entry.vehicleid, True)

    def monitors_of(self, vehicleid: str) -> list[MonitorEntry]:
        return sorted(self._by_vehicle.get(vehicleid, {}).values(),
                      key=lambda e: (e.created, e.monitorid))

    def car_connected(self, vehicleid: str) -> bool:
        return self.commands.hub.car_connected(vehicleid)

    def monitor(self, vehicleid: str, monitorid: str) -> MonitorEntry | None:
        return self._by_vehicle.get(vehicleid, {}).get(monitorid)

    async def put_monitor(self, vehicleid: str, owner: str, monitor: monitor_model.Monitor,
                          monitorid: str | None = None) -> MonitorEntry:
        """Create (or with ``monitorid`` replace) a monitor; stored before it returns.

        Its first evaluation only records the current value (a monitor whose condition
        already holds does not fire)."""
        existing = self.monitor(vehicleid, monitorid) if monitorid else None
        if existing is None and len(self._by_vehicle.get(vehicleid, {})) \
                >= self.config.monitor_max:
            raise InvalidRequest(f"at most {self.config.monitor_max} monitors per vehicle; "
                                 "delete one first")
        now = self.clock.wall()
        snapshot = await self.snapshot(vehicleid)
        state, _ = monitors.evaluate(monitor, monitors.MonitorState(), snapshot, now)
        entry = MonitorEntry(monitorid or secrets.token_hex(6), vehicleid, owner, monitor,
                             state, monitors.Batch(),
                             existing.created if existing else now, now)
        await persist.save_monitor(self.store, entry.row())
        self._register(entry)
        self.on_monitors_changed(vehicleid)
        log.info("vehicle=%s monitor=%s %s (target %s)", vehicleid, entry.monitorid,
                 "replaced" if existing else "created", redact_url(monitor.callback.target))
        return entry

    async def delete_monitor(self, entry: MonitorEntry) -> None:
        await persist.delete_monitor(self.store, entry.monitorid)
        self._unregister(entry)
        self.on_monitors_changed(entry.vehicleid)
        log.info("vehicle=%s monitor=%s deleted", entry.vehicleid, entry.monitorid)

    def _unregister(self, entry: MonitorEntry) -> None:
        self._monitors.pop(entry.monitorid, None)
        by_vehicle = self._by_vehicle.get(entry.vehicleid, {})
        by_vehicle.pop(entry.monitorid, None)
        if not by_vehicle:
            self._by_vehicle.pop(entry.vehicleid, None)
            self.wanted.set(entry.vehicleid, False)
        log.info("vehicle=%s monitor=%s deleted", entry.vehicleid, entry.monitorid)

    async def _evaluate(self, vehicleid: str, snapshot: dict[str, str], now: float) -> None:
        for entry in list(self._by_vehicle.get(vehicleid, {}).values()):
            state, events = monitors.evaluate(entry.monitor, entry.state, snapshot, now)
            if events:
                self.stats.events += len(events)
                log.info("vehicle=%s monitor=%s fired", vehicleid, entry.monitorid)
                batch, ready = monitors.batch_add(entry.monitor.batch, entry.batch, events, now)
            else:
                batch, ready = monitors.batch_poll(entry.monitor.batch, entry.batch, now)
            changed = state != entry.state or batch != entry.batch
            entry.state, entry.batch = state, batch
            self._wake_at = min(self._wake_at, self._batch_due(entry))
            for group in ready:
                self.callbacks.submit(CallbackJob(
                    entry.monitorid, vehicleid, vin_of(snapshot), entry.monitor, group,
                    dict(snapshot), self._location_at.get(vehicleid), now))
            if changed and entry.monitorid in self._monitors:
                await persist.save_monitor_state(self.store, entry.monitorid,
                                                 monitors.state_to_json(state),
                                                 monitors.batch_to_json(batch))

    # ------------------------------------------------------------- alerts

    async def add_server_alert(self, vehicleid: str, key: str, **params: object) -> None:
        now = int(self.clock.wall())
        await self.store.add_historical(
            vehicleid, alerts.SERVER_TYPE, next(self._alert_seq) % _ALERT_WRAP,
            alerts.server_record(key, **params), timestamp=now,
            expires=now + int(self.config.push_history), from_car=False)

    async def alert_records(self, vehicleid: str) -> list[tuple[str, int, int, str]]:
        """(htype, ts, recordnumber, data) of the vehicle's alerts, newest first."""
        out: list[tuple[str, int, int, str]] = []
        for htype in (alerts.PUSH_TYPE, alerts.SERVER_TYPE):
            for rec in await self.store.historical_records(vehicleid, htype):
                out.append((htype, rec.timestamp, rec.recordnumber, rec.data))
        out.sort(key=lambda r: (r[1], r[0], r[2]), reverse=True)
        return out

    async def recent_alerts(self, vehicleid: str, limit: int = 10) -> list[dict[str, Any]]:
        """The latest alerts, for a callback's ``vehicle.alerts`` extended data."""
        found: list[dict[str, Any]] = []
        for htype, ts, number, data in await self.alert_records(vehicleid):
            alert = alerts.alert_from_record(htype, ts, vehicleid, data, None)
            if alert is not None:
                found.append({"id": alerts.alert_id(htype, ts, number), **alert})
            if len(found) >= limit:
                break
        return found

    async def _callback_failed(self, job: CallbackJob, reason: str) -> None:
        await self.add_server_alert(
            job.vehicleid, "monitor.callbackFailed", label=job.monitor.label,
            target=describe(job.monitor.callback.target), attempts=job.failures,
            monitorId=job.monitorid, reason=reason)

    # ------------------------------------------------------------- remote actions

    def start_action(self, record: RemoteActionRecord, command: str) -> None:
        """Send ``command`` in a task of the engine's nursery; it settles ``record``."""
        if self._nursery is None:
            raise RuntimeError("V4Engine.start_action before the engine runs")
        self._nursery.start_soon(self._run_action, record, command)

    async def _run_action(self, record: RemoteActionRecord, command: str) -> None:
        number, _, args = command.partition(",")
        try:
            answer = await self.commands.call(
                record.vehicleid, int(number), args, requester=f"v4/{record.actionid}",
                context=f"v4 owner={record.owner} vehicle={record.vehicleid}")
        except CommandFailed as exc:
            record.settle(exc.status, exc.text, self.clock.wall())
        else:
            status, body = hal.action_outcome(answer.result, answer.text)
            record.settle(status, str(body.get("message", answer.text or "done")),
                          self.clock.wall(), answer.result)
        log.info("vehicle=%s remote action %s (%s): %s", record.vehicleid, record.actionid,
                 record.action, record.status)


def _entry_of(row: persist.MonitorRow) -> MonitorEntry:
    return MonitorEntry(
        row.monitorid, row.vehicleid, row.owner, monitor_parse.monitor_restore(row.definition),
        monitors.state_from_json(row.state), monitors.batch_from_json(row.batch),
        row.created, row.updated)
