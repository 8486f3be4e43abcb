"""``ovms-car``: simulated OVMS car modules on the v2 protocol.

Each car logs in (scheme 0 with the vehicle's carpass, or scheme 1 where the
server allows it) and then behaves as a module in the field does:

- sends its full set (``S D L W Y F V``) right after login, then every
  ``--idle-interval`` seconds while no app watches and every
  ``--connected-interval`` seconds while the last ``Z`` said apps are connected;
  when the peer count rises it sends a full set at once;
- answers pings (``A`` -> ``a``) and commands (``C`` -> ``c``) by changing its own
  state (see ``tools.simulation``);
- logs trips and charges as ``h`` records and resends each one not acknowledged
  within ``--ack-timeout`` seconds (and all of them after a reconnect);
- reconnects after a lost connection or a ``reboot`` command.

Exit status: 0 after ``--duration`` or on Ctrl-C/SIGTERM, 1 when a car cannot
connect or log in (or loses its connection with ``--no-reconnect``), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import ssl
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from protocol import ClientType, Message
from relay.config import ConfigError
from relay.mqtt.url import BrokerUrl
from tools import simulation as sim
from tools.clikit import (
    Counters,
    ModelClock,
    Parser,
    UsageError,
    fail,
    first_leaf,
    until_signal,
)
from tools.v2client import (
    LoginRefused,
    V2Client,
    add_login_arguments,
    client_ssl_context,
    describe_oserror,
    describe_tls_failure,
)

if TYPE_CHECKING:
    from tools.car_v3 import SimModuleV3

log = logging.getLogger("ovms.car")
PROG = "ovms-car"
# How long a rebooting module stays away (real ones take ~20 s; a simulator need not).
REBOOT_DELAY = 1.0
# Logins one process runs at once: thousands of simultaneous connects only fill
# the server's accept queue and time out.
MAX_CONCURRENT_LOGINS = 64


class CarError(Exception):
    """A car could not connect, log in or stay connected (one-line reason)."""


@attrs.define
class CarConfig:
    host: str
    port: int
    vehicleid: str
    carpass: str | None = None
    username: str | None = None
    password: str | None = None
    idle_interval: float = 600.0
    connected_interval: float = 60.0
    ack_timeout: float = 10.0
    # Simulated seconds per real second: 60 makes a one-hour drive last a minute.
    time_scale: float = 1.0
    # None: a lost connection is an error instead of a reason to reconnect.
    reconnect_delay: float | None = 10.0
    login_timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None


@attrs.define
class CarStats(Counters):
    logins: int = 0
    reports: int = 0
    messages_sent: int = 0
    commands: int = 0
    pings: int = 0
    records_sent: int = 0
    records_acked: int = 0
    records_resent: int = 0


@attrs.define
class PendingRecord:
    record: sim.HistoricalRecord
    sent_at: float  # trio time of the last send; -inf: send at the next chance


class SimCar:
    """One simulated module: the vehicle model plus its v2 connection."""

    def __init__(
        self,
        config: CarConfig,
        *,
        index: int = 0,
        route: sim.Route | None = None,
        state: sim.VehicleState | None = None,
        login_limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self.config = config
        self.route = route or sim.Route()
        self.state = state or sim.new_vehicle(index, self.route)
        self.peers = 0
        self.stats = CarStats()
        self.unacked: dict[int, PendingRecord] = {}
        self._ackcodes = itertools.count(1)
        self._limiter = login_limiter or trio.CapacityLimiter(1)
        self._client: V2Client | None = None
        self._send_lock = trio.Lock()
        self._session_scope: trio.CancelScope | None = None
        self._report_scope: trio.CancelScope | None = None
        self._next_report = -math.inf
        self._last_report = -math.inf
        self._clock = ModelClock()
        self._reboot = False

    @property
    def vehicleid(self) -> str:
        return self.config.vehicleid

    @property
    def interval(self) -> float:
        return self.config.connected_interval if self.peers > 0 else self.config.idle_interval

    @property
    def connected(self) -> bool:
        return self._client is not None

    # --- connection lifecycle -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Log in and serve until cancelled; ``started`` after the first successful login."""
        first = True
        while True:
            try:
                client = await self._connect()
            except CarError:
                if first or self.config.reconnect_delay is None:
                    raise
                log.warning("%s: %s; retrying in %.0f s", self.vehicleid,
                            "login failed", self.config.reconnect_delay)
                await trio.sleep(self.config.reconnect_delay)
                continue
            if first:
                task_status.started()
                first = False
            await self._serve(client)
            if self._reboot:
                self._reboot = False
                await trio.sleep(REBOOT_DELAY)
                continue
            if self.config.reconnect_delay is None:
                raise CarError(f"{self.vehicleid}: connection lost")
            log.info("%s: connection lost; reconnecting in %.0f s",
                     self.vehicleid, self.config.reconnect_delay)
            await trio.sleep(self.config.reconnect_delay)

    async def _connect(self) -> V2Client:
        c = self.config
        async with self._limiter:
            try:
                with trio.fail_after(c.login_timeout):
                    client = await V2Client.connect(
                        c.host, c.port, c.vehicleid, client_type=ClientType.CAR,
                        carpass=c.carpass, username=c.username, password=c.password,
                        timeout=c.login_timeout, ssl_context=c.ssl_context)
            except LoginRefused:
                raise CarError(f"{c.vehicleid}: login refused (unknown vehicle, wrong "
                               "password, or scheme 1 not allowed)") from None
            except trio.TooSlowError:
                raise CarError(f"{c.vehicleid}: no login answer within "
                               f"{c.login_timeout:.0f} s") from None
            except OSError as exc:
                raise CarError(f"cannot connect to {c.host}:{c.port}: "
                               f"{describe_oserror(exc)}") from None
            except trio.BrokenResourceError as exc:
                raise CarError(f"TLS with {c.host}:{c.port} failed: "
                               f"{describe_tls_failure(exc)}") from None
        self.stats.logins += 1
        log.info("%s: logged in", self.vehicleid)
        return client

    async def _serve(self, client: V2Client) -> None:
        self._client = client
        self.peers = 0
        # Records still unacknowledged from an earlier connection go out again at once.
        for pending in self.unacked.values():
            pending.sent_at = -math.inf
        try:
            with trio.CancelScope() as scope:
                self._session_scope = scope
                async with trio.open_nursery() as nursery:
                    self._next_report = trio.current_time()  # a full set right after login
                    nursery.start_soon(self._reporter)
                    nursery.start_soon(self._resender)
                    await self._reader(client)
                    nursery.cancel_scope.cancel()
        finally:
            self._client = None
            self._session_scope = None
            self._report_scope = None
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(client.stream)

    async def _send(self, msgs: Sequence[Message]) -> None:
        """Send in order; a broken connection ends the session (the run loop reconnects)."""
        client = self._client
        if client is None or not msgs:
            return
        async with self._send_lock:
            try:
                # Encrypt under the lock: the RC4 stream must see lines in wire order.
                await client.stream.send_all(client.session.send_many(msgs))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self._session_scope is not None:
                    self._session_scope.cancel()
                return
        self.stats.messages_sent += len(msgs)

    # --- tasks of one connection ----------------------------------------------------------

    async def _reader(self, client: V2Client) -> None:
        while True:
            try:
                msg = await client.receive(math.inf)
            except (LoginRefused, trio.BrokenResourceError, trio.ClosedResourceError):
                return
            await self.on_message(msg)

    async def _reporter(self) -> None:
        while True:
            with trio.CancelScope(deadline=self._next_report) as scope:
                self._report_scope = scope
                await trio.sleep_forever()
            self._report_scope = None
            await self.report()

    async def _resender(self) -> None:
        period = max(0.01, min(1.0, self.config.ack_timeout / 4))
        while True:
            await self._resend_due()
            await trio.sleep(period)

    async def _resend_due(self) -> None:
        now = trio.current_time()
        due = [(code, p) for code, p in self.unacked.items()
               if now - p.sent_at >= self.config.ack_timeout]
        if not due:
            return
        msgs = []
        for code, pending in due:
            if pending.sent_at > -math.inf:
                self.stats.records_resent += 1
                log.info("%s: record %s %d not acknowledged, resending", self.vehicleid,
                         pending.record.rtype, pending.record.number)
            pending.sent_at = now
            msgs.append(sim.historical(code, pending.record, self.state.sim_time))
        await self._send(msgs)

    def _reschedule(self, when: float) -> None:
        self._next_report = when
        if self._report_scope is not None:
            self._report_scope.deadline = when

    # --- behaviour --------------------------------------------------------------------------

    def advance(self) -> list[sim.HistoricalRecord]:
        """Run the vehicle model up to now; returns the records it completed."""
        dt = self._clock.step(self.config.time_scale)
        self.state, records = sim.step(self.state, dt, self.route)
        return records

    async def report(self) -> None:
        """Send the full set (and any new records); schedule the next report."""
        records = self.advance()
        now = trio.current_time()
        self._last_report = now
        self._next_report = now + self.interval
        self.stats.reports += 1
        await self._send(sim.messages(self.state))
        for record in records:
            await self.send_record(record)

    def make_record(self, rtype: str, data: str) -> sim.HistoricalRecord:
        """A new record of the car's own log (the next record number)."""
        self.state = attrs.evolve(self.state, records=self.state.records + 1)
        return sim.HistoricalRecord(rtype, self.state.records, data, self.state.sim_time)

    async def send_record(self, record: sim.HistoricalRecord) -> int:
        """Send ``record`` as ``h`` and keep it until acknowledged; returns its ack code."""
        code = next(self._ackcodes)
        self.unacked[code] = PendingRecord(record, trio.current_time())
        self.stats.records_sent += 1
        await self._send([sim.historical(code, record, self.state.sim_time)])
        return code

    async def on_message(self, msg: Message) -> None:
        if msg.code == "Z":
            await self._on_peers(msg.data)
        elif msg.code == "A":
            self.stats.pings += 1
            await self._send([Message("a")])
        elif msg.code == "h":
            try:
                pending = self.unacked.pop(int(msg.data))
            except (ValueError, KeyError):
                log.info("%s: ack for unknown record %r", self.vehicleid, msg.data)
                return
            self.stats.records_acked += 1
            log.debug("%s: record %s %d acknowledged", self.vehicleid,
                      pending.record.rtype, pending.record.number)
        elif msg.code == "C":
            await self._on_command(msg.data)
        # Anything else (a, T, f, ...) needs no answer from a module.

    async def _on_peers(self, data: str) -> None:
        try:
            count = int(data)
        except ValueError:
            log.info("%s: bad peer count %r", self.vehicleid, data)
            return
        rising = count > self.peers
        self.peers = count
        log.info("%s: %d app(s) connected", self.vehicleid, count)
        if rising:
            self._reschedule(trio.current_time())
        else:
            self._reschedule(self._last_report + self.interval)

    async def _on_command(self, data: str) -> None:
        head, *params = data.split(",")
        try:
            number = int(head)
        except ValueError:
            log.info("%s: command without a number: %r", self.vehicleid, data[:40])
            return
        self.stats.commands += 1
        self.advance()
        before = self.state
        result = sim.handle_command(self.state, number, params)
        self.state = result.state
        log.info("%s: command %d (%s) -> %s", self.vehicleid, number,
                 sim.COMMAND_NAMES.get(number, "?"), result.replies[-1] if result.replies else "")
        msgs = [Message("c", r) for r in result.replies]
        msgs += [Message("P", n) for n in result.notifications]
        # Modules report a change at once while someone watches (the app shows it).
        if self.peers > 0 and result.state != before and not result.reboot:
            msgs += [sim.status(self.state), sim.doors(self.state)]
        await self._send(msgs)
        if result.reboot:
            log.info("%s: rebooting", self.vehicleid)
            self._reboot = True
            if self._session_scope is not None:
                self._session_scope.cancel()


# --------------------------------------------------------------------------- fleet


def vehicle_ids(pattern: str, count: int, first: int = 0) -> list[str]:
    """``BENCH{n:04d}`` style patterns; without a placeholder, one car keeps the id as is
    and several get a 4-digit number appended (BENCH0000, BENCH0001, ...)."""
    if "{" in pattern:
        return [pattern.format(n=first + i) for i in range(count)]
    if count == 1:
        return [pattern]
    return [f"{pattern}{first + i:04d}" for i in range(count)]


async def run_fleet(cars: Sequence[SimCar | SimModuleV3], duration: float | None) -> None:
    """Run ``cars`` until ``duration`` passes (or forever); the first error ends all."""
    async with trio.open_nursery() as nursery:
        for car in cars:
            nursery.start_soon(car.run)
        if duration is not None:
            await trio.sleep(duration)
            nursery.cancel_scope.cancel()


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Simulated OVMS car modules (v2, or v3 over MQTT).")
    add_login_arguments(
        p, vehicle_help="vehicle id, or a pattern like 'SIM{n:04d}' with --cars",
        carpass_help="the vehicle's server password (scheme 0)")
    p.add_argument("--cars", type=int, default=1, metavar="N", help="cars in this process")
    p.add_argument("--first", type=int, default=0, metavar="N",
                   help="number of the first car with --cars (default 0)")
    p.add_argument("--idle-interval", type=float, default=600.0, metavar="S",
                   help="seconds between reports while no app watches (default 600)")
    p.add_argument("--connected-interval", type=float, default=60.0, metavar="S",
                   help="seconds between reports while apps are connected (default 60)")
    p.add_argument("--ack-timeout", type=float, default=10.0, metavar="S",
                   help="resend an h record not acknowledged after this long (default 10)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                   help="simulated seconds per real second (default 1)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--reconnect-delay", type=float, default=10.0, metavar="S")
    p.add_argument("--no-reconnect", action="store_true",
                   help="exit with status 1 when a connection is lost")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--v3", action="store_true",
                   help="simulate v3 modules publishing to an MQTT broker (needs --mqtt)")
    p.add_argument("--mqtt", metavar="URL", help="with --v3: mqtt://OWNER:PASSWORD@HOST[:PORT] "
                   "(or mqtts://); the user is the vehicles' owner")
    p.add_argument("--mqtt-prefix", default="ovms", metavar="TOPIC",
                   help="with --v3: topic prefix (default %(default)s)")
    return p


def _run_v3(args: argparse.Namespace, ids: list[str]) -> int:
    try:
        # paho-mqtt is an optional extra: only --v3 needs it.
        from tools.car_v3 import SimModuleV3, V3Config, V3Stats
    except ImportError:
        return _fail("--v3 needs paho-mqtt: pip install 'ovms-relay[mqtt]'", 1)
    try:
        url = BrokerUrl.parse(args.mqtt or "")
    except ConfigError as exc:
        return _fail(f"--v3 needs --mqtt: {exc}", 2)
    if not url.username:
        return _fail("--mqtt must name the owner as its user: mqtt://OWNER:PASSWORD@HOST", 2)
    modules = [SimModuleV3(V3Config(
        url=url, vehicleid=vid, prefix=args.mqtt_prefix, idle_interval=args.idle_interval,
        connected_interval=args.connected_interval, time_scale=args.time_scale,
    ), index=args.first + i) for i, vid in enumerate(ids)]
    try:
        trio.run(until_signal, run_fleet, modules, args.duration)
    except* KeyboardInterrupt:
        pass
    total = V3Stats()
    for module in modules:
        total.add(module.stats)
    print(f"{PROG}: {len(modules)} v3 module(s): {total.connects} connects, "
          f"{total.reports} reports, {total.metrics_sent} metrics, {total.commands} commands, "
          f"{total.records_sent} records")
    return 0


def _fail(message: str, status: int) -> int:
    return fail(PROG, message, status)


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc), 2)
    if not args.v3 and (args.carpass is None) == (args.username is None
                                                  or args.password is None):
        return _fail("give --carpass, or --username and --password", 2)
    if args.cars < 1 or args.idle_interval <= 0 or args.connected_interval <= 0:
        return _fail("--cars and the intervals must be positive", 2)
    try:
        ids = vehicle_ids(args.vehicle, args.cars, args.first)
    except (KeyError, IndexError, ValueError) as exc:
        return _fail(f"bad --vehicle pattern: {exc}", 2)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.v3:
        return _run_v3(args, ids)
    limiter = trio.CapacityLimiter(MAX_CONCURRENT_LOGINS)
    ssl_context = client_ssl_context(args.tls, args.cafile, args.insecure)
    cars = [
        SimCar(CarConfig(
            host=args.host, port=args.port, vehicleid=vid, carpass=args.carpass,
            username=args.username, password=args.password,
            idle_interval=args.idle_interval, connected_interval=args.connected_interval,
            ack_timeout=args.ack_timeout, time_scale=args.time_scale,
            reconnect_delay=None if args.no_reconnect else args.reconnect_delay,
            ssl_context=ssl_context,
        ), index=args.first + i, login_limiter=limiter)
        for i, vid in enumerate(ids)
    ]
    status = 0
    try:
        trio.run(until_signal, run_fleet, cars, args.duration)
    except* CarError as group:
        status = _fail(str(first_leaf(group)), 1)
    except* KeyboardInterrupt:
        pass
    total = CarStats()
    for car in cars:
        total.add(car.stats)
    if total.logins:
        print(f"{PROG}: {len(cars)} car(s): {total.logins} logins, {total.reports} reports, "
              f"{total.messages_sent} messages, {total.commands} commands, "
              f"{total.records_acked}/{total.records_sent} records acknowledged, "
              f"{total.records_resent} resent")
    return status


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
