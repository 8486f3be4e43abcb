"""``ovms-car --v3``: simulated OVMS v3 modules publishing to an MQTT broker.

The same moving, charging car as the v2 simulator (``tools.simulation``), as a
module's "server v3" presents it: every metric on its own retained topic under
``<prefix>/<user>/<vehicle id>/metric/...`` (the user is the broker account of
the ``--mqtt`` URL, the vehicle's owner), ``metric/s/v3/connected`` ``yes`` with
``no`` as the connection's last will, a full set after each connect and the
changed metrics every ``--idle-interval`` seconds, or every
``--connected-interval`` while a client's ``client/<id>/active`` is fresh (120 s,
as the firmware counts). Shell commands on ``client/<id>/command/<n>`` run
against the model and their output goes to ``client/<id>/response/<n>``;
completed trips and charges are ``notify/data`` records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import attrs
import trio

from protocol.ovms_v3 import topics
from protocol.ovms_v3.commands import CHARGE_MODE_NAMES
from protocol.ovms_v3.topics import Kind
from relay.mqtt.bridge import MqttBridge, Publish, Received
from relay.mqtt.url import BrokerUrl
from tools import simulation as sim
from tools.clikit import Counters, ModelClock

log = logging.getLogger("ovms.car.v3")

CLIENT_EXPIRY = 120.0  # the firmware forgets a client this long after its "active 1"
REBOOT_DELAY = 1.0
KPA_PER_PSI = 6.894757
_MODE_NUMBERS = {name: int(number) for number, name in CHARGE_MODE_NAMES.items()}


@attrs.define
class V3Config:
    url: BrokerUrl
    vehicleid: str
    prefix: str = "ovms"
    idle_interval: float = 600.0
    connected_interval: float = 60.0
    time_scale: float = 1.0

    @property
    def owner(self) -> str:
        return self.url.username


@attrs.define
class V3Stats(Counters):
    connects: int = 0
    reports: int = 0
    metrics_sent: int = 0
    commands: int = 0
    records_sent: int = 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _n(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def metrics(s: sim.VehicleState) -> dict[str, str]:
    """The model's state as a module's metrics (their own units: km, km/h, degC, kPa)."""
    mode_name = sim.CHARGE_MODES.get(s.charge_mode, sim.CHARGE_MODES[0])[0]
    kpa = [psi * KPA_PER_PSI for psi in s.tyre_psi]
    values = {
        "v.b.soc": _n(s.soc), "v.b.range.ideal": _n(s.ideal_range_km, 0),
        "v.b.range.est": _n(s.ideal_range_km * sim.ESTIMATE_FACTOR, 0),
        "v.b.temp": _n(s.temp_battery), "v.b.12v.voltage": _n(s.v12, 2),
        "v.c.state": s.charge_state, "v.c.mode": mode_name,
        "v.c.charging": _yes(s.charging), "v.c.pilot": _yes(s.charging),
        "v.c.voltage": _n(sim.LINE_VOLTAGE if s.charging else 0.0, 0),
        "v.c.current": _n(s.charge_current, 0), "v.c.climit": str(s.charge_limit_a),
        "v.c.kwh": _n(s.charge_kwh, 2), "v.c.time": str(int(s.charge_minutes * 60)),
        "v.c.temp": _n(s.temp_charger), "v.c.timermode": _yes(bool(s.charge_timer_mode)),
        "v.e.locked": _yes(s.locked), "v.e.valet": _yes(s.valet), "v.e.on": _yes(s.driving),
        "v.e.awake": _yes(s.awake or s.driving), "v.e.temp": _n(s.temp_ambient),
        "v.e.cabintemp": _n(s.temp_cabin), "v.m.temp": _n(s.temp_motor),
        "v.i.temp": _n(s.temp_pem),
        "v.p.latitude": _n(s.latitude, 6), "v.p.longitude": _n(s.longitude, 6),
        "v.p.direction": _n(s.heading, 0), "v.p.altitude": _n(s.altitude, 0),
        "v.p.speed": _n(s.speed_kph, 0), "v.p.gpslock": "yes",
        "v.p.odometer": _n(s.odometer_km), "v.p.trip": _n(s.trip_km),
        "v.tp.fl.p": _n(kpa[0]), "v.tp.fr.p": _n(kpa[1]), "v.tp.rl.p": _n(kpa[2]),
        "v.tp.rr.p": _n(kpa[3]),
        "v.t.pressure": ",".join(_n(p) for p in kpa),
        "v.t.temp": ",".join(_n(t) for t in s.tyre_temp),
        "v.vin": s.vin, "v.type": "SIM", "m.version": s.firmware,
        "m.net.provider": s.network, "m.net.sq": str(-113 + 2 * s.signal),
        "m.hardware": "OVMS WIFI BLE BT cores=2",
    }
    return values


# Shell commands the simulated module knows: pattern -> (v2 command of the model,
# how its arguments become the model's parameters).
_SHELL: tuple[tuple[str, int, Callable[[tuple[str, ...]], list[str]]], ...] = (
    (r"charge mode (\S+)", 10, lambda a: [str(_MODE_NUMBERS.get(a[0], -1))]),
    (r"charge start", 11, lambda a: []),
    (r"charge stop", 12, lambda a: []),
    (r"charge current (\d+)", 15, lambda a: [a[0]]),
    (r"wakeup", 18, lambda a: []),
    (r"lock (\S+)", 20, lambda a: [a[0]]),
    (r"valet (\S+)", 21, lambda a: [a[0]]),
    (r"unlock (\S+)", 22, lambda a: [a[0]]),
    (r"unvalet (\S+)", 23, lambda a: [a[0]]),
    (r"homelink ([123])", 24, lambda a: [str(int(a[0]) - 1)]),
)


class SimModuleV3:
    """One simulated v3 module: the vehicle model plus its broker connection."""

    def __init__(self, config: V3Config, *, index: int = 0, route: sim.Route | None = None,
                 state: sim.VehicleState | None = None) -> None:
        self.config = config
        self.route = route or sim.Route()
        self.state = state or sim.new_vehicle(index, self.route)
        self.stats = V3Stats()
        self.clients: dict[str, float] = {}  # client id -> expiry (trio time)
        self.sent: dict[str, str] = {}  # what the broker holds for each metric
        self._clock = ModelClock()
        self._wake = trio.Event()
        self._reboot = False
        self.base = f"{config.prefix}/{config.owner}/{config.vehicleid}"
        self.bridge = self._bridge()

    @property
    def vehicleid(self) -> str:
        return self.config.vehicleid

    def _bridge(self) -> MqttBridge:
        will = Publish(topics.connected_topic(self.config.prefix, self.config.owner,
                                              self.vehicleid), b"no", 1, True)
        return MqttBridge(self.config.url, (f"{self.base}/client/+/active",
                                            f"{self.base}/client/+/command/+"),
                          client_id=self.client_id, will=will)

    @property
    def client_id(self) -> str:
        """Unique per prefix and vehicle: a broker closes the older of two clients with
        one id."""
        return f"ovms-car-{self.config.prefix.replace('/', '-')}-{self.vehicleid}"

    @property
    def peers(self) -> int:
        now = trio.current_time()
        self.clients = {c: t for c, t in self.clients.items() if t > now}
        return len(self.clients)

    @property
    def interval(self) -> float:
        return self.config.connected_interval if self.peers else self.config.idle_interval

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect and report until cancelled (a ``module reset`` reconnects)."""
        first = True
        while True:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.bridge.run, self)
                if first:
                    task_status.started()
                    first = False
                await self._reporter()
                nursery.cancel_scope.cancel()
            # Rebooted: away for a moment; the broker publishes the will meanwhile.
            self._reboot = False
            await trio.sleep(REBOOT_DELAY)
            self.bridge = self._bridge()

    # --- BrokerHandler ----------------------------------------------------------------

    def on_connected(self) -> None:
        self.stats.connects += 1
        log.info("%s: connected to the broker", self.vehicleid)
        self.sent = {}  # the first report after a connect is the full set
        self.bridge.publish(topics.connected_topic(self.config.prefix, self.config.owner,
                                                   self.vehicleid), b"yes", retain=True)
        self._wake.set()

    def on_disconnected(self) -> None:
        log.info("%s: disconnected from the broker", self.vehicleid)

    async def on_messages(self, batch: list[Received]) -> None:
        for received in batch:
            topic = topics.parse_topic(self.config.prefix, received.topic)
            if topic is None or topic.vehicleid != self.vehicleid:
                continue
            if topic.kind is Kind.CLIENT_ACTIVE:
                self._presence(topic.client_id, received.payload)
            elif topic.kind is Kind.CLIENT_COMMAND and topic.number is not None:
                text = received.payload.decode("utf-8", "replace")
                output = self.shell(text)
                self.bridge.publish(topics.response_topic(
                    self.config.prefix, self.config.owner, self.vehicleid, topic.client_id,
                    topic.number), output.encode())
                self._wake.set()  # a change shows at once, as on a module

    def _presence(self, client_id: str, payload: bytes) -> None:
        before = self.peers
        if payload in (b"", b"0"):
            self.clients.pop(client_id, None)
        else:
            self.clients[client_id] = trio.current_time() + CLIENT_EXPIRY
        if self.peers != before:
            log.info("%s: %d client(s) active", self.vehicleid, self.peers)
            self._wake.set()  # the firmware transmits at once when its peers change

    # --- behaviour --------------------------------------------------------------------

    def advance(self) -> list[sim.HistoricalRecord]:
        dt = self._clock.step(self.config.time_scale)
        self.state, records = sim.step(self.state, dt, self.route)
        return records

    async def _reporter(self) -> None:
        while not self._reboot:
            with trio.move_on_after(self.interval):
                await self._wake.wait()
            self._wake = trio.Event()
            if self.bridge.connected:
                self.report()

    def report(self) -> None:
        """Publish the changed metrics (all after a connect) and completed records."""
        records = self.advance()
        self.stats.reports += 1
        for name, value in metrics(self.state).items():
            if self.sent.get(name) == value:
                continue
            self.sent[name] = value
            self.stats.metrics_sent += 1
            self.bridge.publish(topics.metric_topic(self.config.prefix, self.config.owner,
                                                    self.vehicleid, name),
                                value.encode(), qos=0, retain=True)
        for record in records:
            self.send_record(record)

    def send_record(self, record: sim.HistoricalRecord) -> None:
        age = max(0, round(self.state.sim_time - record.sim_time))
        self.stats.records_sent += 1
        subtype = record.rtype.strip("*-").lower().replace("-", ".") or "record"
        self.bridge.publish(
            topics.data_topic(self.config.prefix, self.config.owner, self.vehicleid,
                              subtype, self.stats.records_sent, age),
            f"{record.rtype},{record.number},{sim.RECORD_LIFETIME_S},{record.data}".encode(),
            qos=2)

    def shell(self, line: str) -> str:
        """Run one shell command line against the model; its output text."""
        self.stats.commands += 1
        line = " ".join(line.split())
        self.advance()
        log.info("%s: command %r", self.vehicleid, line[:80])
        if line == "module reset":
            self._reboot = True
            self._wake.set()
            return "Rebooting..."
        if line in ("stat", "metrics list v.b.soc"):
            s = self.state
            return (f"{s.charge_state.capitalize()}\nSOC: {s.soc:.1f}%\n"
                    f"Ideal range: {s.ideal_range_km:.0f}km\nODO: {s.odometer_km:.1f}km")
        for pattern, number, params in _SHELL:
            match = re.fullmatch(pattern, line)
            if match is None:
                continue
            result = sim.handle_command(self.state, number, params(match.groups()))
            self.state = result.state
            head = result.replies[-1].split(",", 2) if result.replies else ["", "0"]
            if head[1] == str(sim.OK):
                return f"{sim.COMMAND_NAMES.get(number, line).capitalize()}: done"
            if head[1] == str(sim.UNSUPPORTED):
                return "Sorry, this functionality not available"
            return f"Error: {head[2] if len(head) > 2 else 'failed'}"
        return f"Unrecognised command: {line}"


__all__ = ["SimModuleV3", "V3Config", "V3Stats", "metrics"]
